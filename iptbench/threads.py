"""How many CPU threads torch uses: iptbench chooses, `--threads N` overrides, `OMP_NUM_THREADS` is respected.

Why not torch's default (one thread per core): intra-op threads spin-wait for each other, so on a machine
whose cores are busy with other work, a small model or a metric chain runs many times slower with several
threads than with one (`python benchmarks/bench_threads.py` measures it). The rule:
- a command starts on one thread (building pairs, whose workers are processes; training; the CLI itself);
- evaluation and restoration (`use_idle_cores`) take the cores that are idle now, measured from the
  kernel's CPU counters over a tenth of a second: all of them on an idle machine, one on a busy one. The
  one-minute load average is not used because it lags: it still counts processes that ended a minute ago;
- a network's forward pass inside them (`for_network`) takes all of this process's cores, busy or not: its
  large matrix products gain more from several threads' share of a busy CPU than spin-waiting costs them
  (ipt-tiny on a loaded 2-core machine: 1.3x faster on two threads than on one), while the classical
  baselines and the metric chains, chains of small ops, are the work that one thread speeds up there;
- training stays on one thread unless told otherwise: CPU kernels sum in an order that depends on the
  thread count, so a load-dependent count would make the same command give different weights.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs since boot, from /proc/stat; None where there is no such file."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 6:
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[3] + ticks[4], sum(ticks)


def idle_cores(window: float = 0.1) -> int:
    """Cores not busy with other work now, at least one: the machine's idle share over `window` seconds
    times its cores, rounded down unless nearly whole (1.8 idle cores count as 2, 1.5 as 1, since a thread
    that must share its core makes the others spin-wait). Without /proc/stat: the one-minute load average."""
    before = _cpu_times()
    if before is None:
        try:
            busy = os.getloadavg()[0]
        except OSError:
            busy = 0.0
        return max(1, min(cpu_count(), int(cpu_count() - busy + 0.5)))
    time.sleep(window)
    after = _cpu_times()
    if after is None:  # the file vanished between reads (a sandbox): take the safe count
        return 1
    total = after[1] - before[1]
    share = (after[0] - before[0]) / total if total > 0 else 1.0
    idle = share * (os.cpu_count() or 1)
    return max(1, min(cpu_count(), int(idle + 0.25)))


def configure(requested: int | None = None) -> int:
    """Set torch's thread count at the start of a command; returns what it is now.

    `requested` (the `--threads` flag) wins; otherwise an explicit OMP_NUM_THREADS (which torch has
    already read) is left alone; otherwise one thread (see the module's rule).
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


def _ranks_here() -> int:
    """torchrun's processes on this machine, which share its cores."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))


def use_idle_cores() -> int:
    """Evaluation and restoration: take the idle cores when iptbench chose the count; an explicit choice
    (`--threads`, `OMP_NUM_THREADS`) stays. Returns the count now."""
    if _choice.source == "auto":
        _choice.threads = max(1, idle_cores() // _ranks_here())
        torch.set_num_threads(_choice.threads)
    return torch.get_num_threads()


@contextmanager
def for_network() -> Iterator[int]:
    """Run a network's forward pass on all of this process's cores (its share under torchrun) when iptbench
    chose the count; an explicit choice stays. Yields the count used; the previous one comes back after."""
    before = torch.get_num_threads()
    if _choice.source == "auto":
        torch.set_num_threads(max(1, cpu_count() // _ranks_here()))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
