"""Suites -> (dataset, task) plans; missing and optional datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from iptbench.errors import IptbenchError
from iptbench.evaluation.suites import SUITES, build_plan, select_datasets


def test_suite_contents_match_the_issue() -> None:
    assert SUITES["sr"].tasks == ("sr-x2", "sr-x3", "sr-x4")
    assert SUITES["sr"].datasets == ("Set5", "Set14", "B100", "Urban100")
    assert SUITES["sr"].optional == ("Manga109",)
    assert SUITES["denoise"].tasks == ("denoise-30", "denoise-50")
    assert SUITES["denoise"].datasets == ("CBSD68", "Urban100")
    assert set(SUITES["denoise"].optional) == {"Kodak24", "McMaster"}
    assert SUITES["derain"].datasets == ("Rain100L",) and SUITES["derain"].optional == ("Rain100H",)


def test_select_datasets_restricts_and_requires() -> None:
    chosen = select_datasets("all", ["set5", "Kodak24"])
    assert [(s.name, d, req) for s, d, req in chosen] == [("sr", "Set5", True), ("denoise", "Kodak24", True)]
    with pytest.raises(IptbenchError, match="not part of suite 'sr'"):
        select_datasets("sr", ["CBSD68"])
    with pytest.raises(IptbenchError, match="unknown suite"):
        select_datasets("jpeg", None)


def test_plan_lists_missing_with_fetch_command(make_root: Callable[..., Path]) -> None:
    root = make_root("Set5")
    plan = build_plan("sr", None, root)
    assert [(e.dataset, e.task.name) for e in plan.entries] == [
        ("Set5", "sr-x2"),
        ("Set5", "sr-x3"),
        ("Set5", "sr-x4"),
    ]
    assert [m.name for m in plan.missing] == ["Set14", "B100", "Urban100"]
    assert plan.missing[0].fetch_command == "iptbench datasets fetch Set14"
    assert plan.absent_optional == ["Manga109"]  # optional: not reported as missing


def test_plan_all_orders_tasks_and_dedupes(make_root: Callable[..., Path]) -> None:
    root = make_root("Set5", "CBSD68", "Rain100L")
    plan = build_plan("all", None, root)
    tasks = [e.task.name for e in plan.entries]
    assert tasks == ["sr-x2", "sr-x3", "sr-x4", "denoise-30", "denoise-50", "derain"]
    names = [m.name for m in plan.missing]
    assert names.count("Urban100") == 1  # in two suites, listed once
