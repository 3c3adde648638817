"""Ctrl-C that a long loop cannot lose.

Python raises KeyboardInterrupt wherever the main thread happens to be when SIGINT arrives. When that is
a weakref callback run by the garbage collector (h5py and multiprocessing create many), the exception is
printed as "Exception ignored in: ..." and dropped, and the loop runs on as if nothing was pressed. Inside
`ctrl_c_checkpoints()` a first Ctrl-C only records the press, and the loop raises it at its next safe
point by calling `check()`; a second Ctrl-C raises at once, for a loop that stopped reaching its
checkpoints.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


def _never() -> None:
    return None


@contextmanager
def ctrl_c_checkpoints() -> Iterator[Callable[[], None]]:
    """Yield `check`, which raises KeyboardInterrupt once Ctrl-C was pressed. Outside the main thread (no
    signal reaches it) and where SIGINT is ignored (a shell's background job), `check` never raises."""
    if threading.current_thread() is not threading.main_thread():
        yield _never
        return
    pressed: list[bool] = []

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if pressed:
            raise KeyboardInterrupt
        pressed.append(True)

    def check() -> None:
        if pressed:
            raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        yield _never
        return
    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)
