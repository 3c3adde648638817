"""What every subcommand shares: consoles, the one-line error contract, small option parsers.

The error contract: whatever goes wrong, the user sees one line on stderr that says what failed, on which
file, and what to do, and the exit status is 1 (130 for Ctrl-C). Library exceptions (OSError, h5py, torch,
PIL, pickle) are translated here, once, into that line; `--debug` or IPTBENCH_DEBUG=1 adds the traceback.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from iptbench.errors import Interrupted, IptbenchError, describe_os_error

try:  # typer >= 0.2x carries its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

console = Console()
err_console = Console(stderr=True)

DEBUG_ENV = "IPTBENCH_DEBUG"
_debug = {"on": False}  # set by the root `--debug` option, reset at the start of every invocation

P = ParamSpec("P")
R = TypeVar("R")

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def set_debug(on: bool) -> None:
    _debug["on"] = on


def debug_enabled() -> bool:
    return _debug["on"] or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def one_line(text: str) -> str:
    """Library messages carry ANSI codes, tabs and newlines: one line of plain text."""
    return " ".join(_ANSI.sub("", text).split())


def _first_line(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _explain_library(exc: BaseException) -> str | None:
    """Known failures of torch, PIL, pickle and imports, as something the user can act on."""
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    first = _first_line(exc)
    if kind.endswith("OutOfMemoryError") and "torch" in kind:
        return "out of GPU memory: lower --window-batch or --batch-size, or use --device cpu"
    if kind in ("_pickle.UnpicklingError", "pickle.UnpicklingError"):
        return (
            "a file is not one iptbench can load safely (it needs code to unpickle); convert it where you "
            "trust it, or export a state dict"
        )
    if kind == "PIL.UnidentifiedImageError":
        return f"{first.replace('cannot identify image file', 'not a recognised image:')}"
    if kind == "PIL.Image.DecompressionBombError":
        return f"image too large for Pillow's safety limit ({first}); downscale it first"
    if "safetensors" in kind:
        return f"cannot read a .safetensors file ({first}): it is damaged or not a safetensors file"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"the Python package {exc.name} is not installed: pip install {exc.name}"
    if isinstance(exc, MemoryError):
        return "out of memory: use fewer --workers, a smaller batch or smaller images"
    if isinstance(exc, RuntimeError) and ("CUDA" in first or "cuDNN" in first):
        return f"CUDA error ({first}); check the GPU driver, or use --device cpu"
    return None


def explain(exc: BaseException) -> tuple[str, int]:
    """(one-line message, exit status) for any exception that ends a command."""
    if isinstance(exc, KeyboardInterrupt):  # Interrupted carries a note on what was kept
        return (one_line(str(exc)) if isinstance(exc, Interrupted) else "") or "interrupted", 130
    if isinstance(exc, IptbenchError):
        return one_line(str(exc)), exc.exit_code
    if isinstance(exc, OSError):
        return one_line(describe_os_error(exc)), 1
    known = _explain_library(exc)
    if known is not None:
        return one_line(known), 1
    detail = one_line(_first_line(exc))
    return f"unexpected {type(exc).__name__}: {detail} (rerun with --debug for the traceback)", 1


def report_error(exc: BaseException) -> int:
    """Print the one line (and, in debug mode, the traceback first); return the exit status."""
    message, code = explain(exc)
    if debug_enabled():
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        sys.stderr.flush()
    # Text, not markup: `[baselines]`, paths with brackets and library text must come out as they are.
    if code == 130:  # "interrupted" or "interrupted: what was kept"
        line = Text(message, style="bold red")
    else:
        line = Text.assemble(("error:", "bold red"), " ", message)
    err_console.print(line, highlight=False, soft_wrap=True)
    return code


def print_note(text: str, style: str = "yellow") -> None:
    """A one-line notice on stderr (skipped file, missing set...), never parsed as markup."""
    err_console.print(Text(one_line(text), style=style), highlight=False, soft_wrap=True)


def _is_control_flow(exc: BaseException) -> bool:
    # typer.Exit / click usage errors / SystemExit are for the command group to handle, not errors here.
    return isinstance(exc, (SystemExit, typer.Exit, typer.Abort, click_exceptions.ClickException))


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Any failure of the command becomes the one error line and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            if _is_control_flow(exc) or isinstance(exc, BrokenPipeError):
                raise  # the command group handles these (a closed pipe ends quietly)
            raise typer.Exit(report_error(exc)) from None

    return wrapper


def parse_list(value: str | None, option: str, example: str) -> list[str] | None:
    """A comma-separated option: None stays None (the default applies); empty items are an error."""
    if value is None:
        return None
    items = [item.strip() for item in value.split(",")]
    if not any(items):
        raise IptbenchError(f"{option} is empty: name at least one, e.g. {option} {example}")
    if not all(items):
        raise IptbenchError(f"{option} {value!r} has an empty item: remove the extra comma")
    return items
