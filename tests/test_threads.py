from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from iptbench import threads


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    threads._choice.source, threads._choice.threads = "default", 0


def test_flag_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.configure(2) == 2 and torch.get_num_threads() == 2


def test_explicit_environment_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.configure(None) == 2
    threads.use_idle_cores()  # evaluation does not override an explicit choice
    assert torch.get_num_threads() == 2


def _counters(monkeypatch: pytest.MonkeyPatch, *readings: tuple[int, int] | None) -> None:
    """/proc/stat as (idle, total) jiffies of all CPUs, one reading per call."""
    values = iter(readings)
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(values))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "cpu_count", lambda: 2)


def test_auto_is_one_thread_and_evaluation_takes_the_idle_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert threads.configure(None) == 1
    _counters(monkeypatch, (1000, 2000), (1196, 2200))  # 98 % idle over the window: both cores
    assert threads.use_idle_cores() == 2 and torch.get_num_threads() == 2
    _counters(monkeypatch, (1000, 2000), (1100, 2200))  # one core busy: 1.0 idle
    assert threads.use_idle_cores() == 1
    _counters(monkeypatch, (1000, 2000), (1150, 2200))  # 1.5 idle: a shared core would spin, so 1
    assert threads.use_idle_cores() == 1
    _counters(monkeypatch, (1000, 2000), (1000, 2200))  # fully busy: still one
    assert threads.use_idle_cores() == 1


def test_idle_cores_are_shared_between_torchrun_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    threads.configure(None)
    _counters(monkeypatch, (1000, 2000), (1200, 2200))
    assert threads.use_idle_cores() == 1


def test_a_network_takes_all_cores_of_its_rank_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(threads, "cpu_count", lambda: 4)
    threads.configure(None)
    with threads.for_network() as count:
        assert count == 4 == torch.get_num_threads()
    assert torch.get_num_threads() == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two torchrun ranks on this machine share its cores
    with threads.for_network() as count:
        assert count == 2
    threads.configure(3)  # --threads 3 is kept inside a network's pass too
    with threads.for_network() as count:
        assert count == 3


def test_without_proc_stat_the_load_average_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    _counters(monkeypatch, None)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert threads.idle_cores() == 2
    _counters(monkeypatch, None)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1e6, 0.0, 0.0))
    assert threads.idle_cores() == 1


def test_the_real_counters_give_a_count_within_the_cores() -> None:
    assert 1 <= threads.idle_cores(window=0.02) <= threads.cpu_count()


def test_loading_weights_leaves_the_thread_count_alone(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Training loads its --init through load_model: a load-dependent count there would change its bytes."""
    from iptbench.models import create_model, load_model, save_model

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads.configure(None)
    save_model(create_model("ipt-tiny", "sr-x2"), tmp_path / "w.safetensors")
    load_model(tmp_path / "w.safetensors")
    assert torch.get_num_threads() == 1


def test_zero_threads_is_an_error() -> None:
    from iptbench.errors import IptbenchError

    with pytest.raises(IptbenchError):
        threads.configure(0)
