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
    assert "--threads" in threads.describe()


def test_explicit_environment_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.configure(None) == 2
    threads.for_inference()  # inference does not override an explicit choice
    assert torch.get_num_threads() == 2


def test_auto_is_one_thread_and_inference_takes_the_idle_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.configure(None) == 1
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert threads.for_inference() == threads.cpu_count()
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1e6, 0.0, 0.0))
    assert threads.idle_cores() == 1 and threads.for_inference() == 1


def test_loading_weights_leaves_the_thread_count_alone(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Training loads its --init through load_model: a load-dependent count there would change its bytes."""
    from iptbench.models import create_model, load_model, save_model

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    threads.configure(None)
    save_model(create_model("ipt-tiny", "sr-x2"), tmp_path / "w.safetensors")
    load_model(tmp_path / "w.safetensors")
    assert torch.get_num_threads() == 1


def test_zero_threads_is_an_error() -> None:
    from iptbench.errors import IptbenchError

    with pytest.raises(IptbenchError):
        threads.configure(0)
