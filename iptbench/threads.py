"""How many CPU threads torch uses: iptbench chooses, `--threads N` overrides, `OMP_NUM_THREADS` is respected.

Why not torch's default (one thread per core): intra-op threads spin-wait for each other, so on a machine
whose cores are busy with other work, a small model or a metric chain runs many times slower with several
threads than with one (`python benchmarks/bench_threads.py` measures it). The rule:
- light work (metric chains, bicubic, data and build workers) runs on one thread: its tensors are too
  small for threads to pay for their synchronisation;
- a network's inference (eval, restore) uses the cores that are idle now (cores minus the one-minute load
  average, at least one): all of them on an idle machine, one on a busy one;
- training stays on one thread unless told otherwise: CPU kernels sum in an order that depends on the
  thread count, so a load-dependent count would make the same command give different weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class _Choice:
    source: str = "default"  # "flag" (--threads), "env" (OMP_NUM_THREADS) or "auto"
    threads: int = 0


_choice = _Choice()


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def idle_cores() -> int:
    """Cores not busy with other work now: cores minus the one-minute load average, at least one."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return max(1, min(cpu_count(), int(cpu_count() - load + 0.5)))


def configure(requested: int | None = None) -> int:
    """Set torch's thread count at the start of a command; returns what it is now.

    `requested` (the `--threads` flag) wins; otherwise an explicit OMP_NUM_THREADS (which torch has
    already read) is left alone; otherwise light work's single thread is set.
    """
    if requested is not None:
        if requested < 1:
            from iptbench.errors import IptbenchError

            raise IptbenchError(f"--threads must be at least 1, got {requested}")
        _choice.source, _choice.threads = "flag", requested
    elif os.environ.get("OMP_NUM_THREADS", "").strip():
        _choice.source, _choice.threads = "env", torch.get_num_threads()
        return _choice.threads
    else:
        _choice.source, _choice.threads = "auto", 1
    torch.set_num_threads(_choice.threads)
    return _choice.threads


def for_inference() -> int:
    """Give a network's inference the idle cores when iptbench chose the count; an explicit choice stays."""
    if _choice.source == "auto":
        torch.set_num_threads(idle_cores())
    return torch.get_num_threads()


def describe() -> str:
    """One phrase for logs and manifests: how many threads, and who chose."""
    who = {"flag": "--threads", "env": "OMP_NUM_THREADS", "auto": "chosen by iptbench"}.get(
        _choice.source, "torch default"
    )
    return f"{torch.get_num_threads()} CPU threads ({who})"
