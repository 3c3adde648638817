"""The README and weights/README.md name no path of the machine they were written on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:work|root|home|Users|tmp)/")


@pytest.mark.parametrize("name", ["README.md", "weights/README.md"])
def test_no_machine_paths(name: str) -> None:
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    found = [f"{name}:{i}: {line.strip()}" for i, line in enumerate(lines, 1) if MACHINE_PATH.search(line)]
    assert not found, "\n".join(found)
