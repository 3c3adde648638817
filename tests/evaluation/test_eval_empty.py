"""No empty success: an eval that would evaluate nothing exits 1 with one line saying what to do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iptbench.cli import app
from iptbench.errors import IptbenchError
from iptbench.evaluation.model_specs import parse_model_spec
from iptbench.evaluation.planning import resolve_eval_data_root
from iptbench.evaluation.runner import EvalConfig, run_eval

runner = CliRunner()


def _eval(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["eval", *args], env=env)
    return result.exit_code, result.output


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def test_empty_data_root_is_an_error_not_the_current_folder(tmp_path: Path) -> None:
    code, output = _eval(["--model", "bicubic", "--data-root", "", "--out", str(tmp_path / "o")])
    line = _error_line(output)  # the CLI refuses empty option values before eval sees them
    assert code == 1 and "--data-root" in line and "empty" in line
    assert not (tmp_path / "o").exists()
    with pytest.raises(IptbenchError, match="--data-root is empty"):  # the API says the same
        resolve_eval_data_root(" ")


def test_empty_environment_variable_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPTBENCH_DATA", "")
    with pytest.raises(IptbenchError, match="IPTBENCH_DATA is set but empty"):
        resolve_eval_data_root(None)
    code, output = _eval(["--model", "bicubic", "--out", str(tmp_path / "o")], env={"IPTBENCH_DATA": ""})
    assert code == 1 and "IPTBENCH_DATA is set but empty" in _error_line(output)
    assert resolve_eval_data_root(str(tmp_path)) == tmp_path  # an explicit folder wins


def test_no_data_at_all_says_what_to_do(tmp_path: Path) -> None:
    code, output = _eval(["--model", "bicubic", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    line = _error_line(output)
    assert code == 1 and f"no benchmark data of suite 'all' under {tmp_path}" in line
    assert "pass --data-root, set IPTBENCH_DATA" in line and "iptbench datasets fetch Set5" in line


def test_named_missing_dataset_is_an_error(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root = make_root("Set5")
    args = ["--suite", "sr", "--datasets", "Set5,Set14", "--model", "bicubic", "--data-root", str(root)]
    code, output = _eval([*args, "--out", str(tmp_path / "o")])
    line = _error_line(output)
    assert code == 1 and "Set14" in line and "iptbench datasets fetch Set14" in line


def test_model_without_a_task_of_the_suite(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root = make_root("CBSD68", size=(16, 20))
    args = ["--suite", "denoise", "--datasets", "CBSD68", "--model", "bicubic", "--data-root", str(root)]
    code, output = _eval([*args, "--out", str(tmp_path / "o")])
    line = _error_line(output)
    assert code == 1 and "no model does a task of this plan (denoise-30, denoise-50)" in line
    assert "bicubic does sr-x2, sr-x3, sr-x4" in line


def test_every_image_broken_writes_no_row_and_fails(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root = make_root("Set5")
    for path in (root / "Set5" / "HR").glob("*.png"):
        path.write_bytes(b"not a png")
    cfg = EvalConfig(suite="sr", data_root=root, out=tmp_path / "o", datasets=["Set5"], progress=False)
    with pytest.raises(IptbenchError, match=r"no result row written .* every image to score was unreadable"):
        run_eval(cfg, [parse_model_spec("bicubic")])


def test_unknown_precision_is_one_line(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root = make_root("Set5")
    args = ["--suite", "sr", "--model", "bicubic", "--precision", "fp8", "--data-root", str(root)]
    code, output = _eval([*args, "--out", str(tmp_path / "o")])
    assert code == 1 and "unknown precision 'fp8'; use one of: fp32, bf16, fp16" in _error_line(output)
