"""The `iptbench` command line: a thin layer that parses, calls the library, and prints.

May import every other iptbench package; none imports it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup, TyperOption

from iptbench._version import __version__
from iptbench.cli import (
    build_data,
    datasets,
    evaluate,
    lpips_weights,
    metrics,
    report,
    restore,
    train,
    weights,
)
from iptbench.cli._common import click_exceptions, report_error, set_debug
from iptbench.errors import IptbenchError


def refuse_empty_arguments(argv: Sequence[str]) -> None:
    """An empty argument is almost always an unset shell variable (`--data-root "$IPTBENCH_DATA"`).

    Paths would silently become the current folder and lists would mean "all", so it is an error.
    """
    for i, token in enumerate(argv):
        if token == "--":
            break
        if token.startswith("--") and token.endswith("=") and len(token) > 3:
            name = token[:-1]
        elif token == "":
            name = argv[i - 1] if i and argv[i - 1].startswith("-") else f"argument {i + 1}"
        else:
            continue
        raise IptbenchError(f"empty value for {name} (an unset shell variable?): give it a value")


def _usage_error(exc: click_exceptions.UsageError) -> int:
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return report_error(IptbenchError(exc.format_message().rstrip() + hint))


def _silence_stdout() -> None:
    # Python flushes stdout at exit; into a closed pipe that prints one more error. Point it at devnull.
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class IptbenchGroup(TyperGroup):
    """The root command: every failure, usage mistakes included, ends as one line on stderr."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        set_debug(False)  # the root --debug option turns it on again for this invocation
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        no_args_help = getattr(click_exceptions, "NoArgsIsHelpError", ())
        try:
            refuse_empty_arguments(argv)
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except no_args_help as exc:  # the help is already printed
            code = exc.exit_code
        except click_exceptions.UsageError as exc:
            code = _usage_error(exc)
        except click_exceptions.ClickException as exc:
            code = report_error(IptbenchError(exc.format_message()))
        except typer.Abort:  # click's answer to Ctrl-C or end of input at a prompt
            code = report_error(KeyboardInterrupt())
        except BrokenPipeError:  # `iptbench report ... | head`: the reader left; nothing to say
            _silence_stdout()
            code = 1
        except (SystemExit, typer.Exit):
            raise
        except BaseException as exc:
            code = report_error(exc)
        else:
            code = rv if isinstance(rv, int) else 0
        try:
            sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe prints a warning
        except BrokenPipeError:
            _silence_stdout()
            code = code or 1
        sys.exit(code)


def _hide_flag_types() -> None:
    """Help shows `--augment/--no-augment`, not `--augment <bool>`: flags take no value to describe."""
    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "_iptbench", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if self.is_flag and self.metavar is None:
            return None
        return original(self, ctx)

    display_type_rich._iptbench = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()

app = typer.Typer(
    name="iptbench",
    cls=IptbenchGroup,
    help="The Image Processing Transformer (IPT) end to end: data, models, checkpoints and honest numbers.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version_callback(value: bool) -> None:
    if value:
        print(f"iptbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="On an error, print the full traceback too (or set IPTBENCH_DEBUG=1)."
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads for torch (default: networks in eval and restore use all cores, baselines the "
        "cores idle when they start, metrics and other commands one thread; an explicit OMP_NUM_THREADS is "
        "respected).",
    ),
) -> None:
    """The Image Processing Transformer (IPT) end to end: data, models, checkpoints and honest numbers."""
    from iptbench import threads as thread_choice

    set_debug(debug)
    thread_choice.configure(threads)


for _module in (metrics, lpips_weights, datasets, build_data, weights, restore, evaluate, report, train):
    _module.register(app)


def main() -> None:
    try:
        app()  # IptbenchGroup.main turns every failure into one line and the exit status
    finally:
        # The command is over (its files are written): a Ctrl-C during interpreter shutdown would only
        # print an "Exception ignored" traceback from a weakref callback and change nothing.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
