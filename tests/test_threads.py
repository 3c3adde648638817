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
    threads.for_model(10**9)  # a heavy model does not override an explicit choice
    assert torch.get_num_threads() == 2


def test_auto_is_one_thread_and_heavy_models_take_idle_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.configure(None) == 1
    assert threads.for_model(threads.HEAVY_PARAMETERS - 1) == 1
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert threads.for_model(threads.HEAVY_PARAMETERS) == threads.cpu_count()
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1e6, 0.0, 0.0))
    assert threads.idle_cores() == 1


def test_zero_threads_is_an_error() -> None:
    from iptbench.errors import IptbenchError

    with pytest.raises(IptbenchError):
        threads.configure(0)
