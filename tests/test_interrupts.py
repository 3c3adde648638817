"""Ctrl-C inside ctrl_c_checkpoints: recorded, raised at the loop's checkpoint, never lost in a callback."""

from __future__ import annotations

import gc
import os
import signal
import weakref

import pytest

from iptbench.interrupts import ctrl_c_checkpoints


def _press_ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)  # the handler runs before the next bytecode of this thread


def test_first_press_waits_for_the_checkpoint_second_raises_at_once() -> None:
    before = signal.getsignal(signal.SIGINT)
    with ctrl_c_checkpoints() as check:
        check()  # nothing pressed yet
        _press_ctrl_c()  # recorded, not raised here
        with pytest.raises(KeyboardInterrupt):
            check()
        with pytest.raises(KeyboardInterrupt):
            _press_ctrl_c()
    assert signal.getsignal(signal.SIGINT) is before


def test_a_press_during_a_weakref_callback_is_not_lost() -> None:
    """Python's own handler would raise inside the callback, where the exception is printed and dropped."""

    class Thing:
        pass

    with ctrl_c_checkpoints() as check:
        thing = Thing()
        ref = weakref.ref(thing, lambda _: _press_ctrl_c())
        del thing
        gc.collect()
        assert ref() is None
        with pytest.raises(KeyboardInterrupt):
            check()


def test_an_ignored_sigint_stays_ignored() -> None:
    """A shell's background job (`cmd &`) starts with SIGINT ignored: the checkpoints keep it so."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with ctrl_c_checkpoints() as check:
            _press_ctrl_c()
            check()
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
