"""`iptbench datasets list|verify|fetch` through the real CLI app."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from iptbench.cli import app
from iptbench.images import write_png

runner = CliRunner(env={"COLUMNS": "200", "IPTBENCH_DATA": None})


def _set5(root: Path, n: int = 5) -> None:
    for i in range(n):
        write_png(root / "Set5" / "HR" / f"{i}.png", np.full((8, 8, 3), i, np.uint8))


def test_list_states(tmp_path: Path) -> None:
    _set5(tmp_path)
    write_png(tmp_path / "set14" / "a.png", np.zeros((4, 4, 3), np.uint8))
    result = runner.invoke(app, ["datasets", "list", "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 3}
    assert "found" in lines["Set5"] and "5/5" in lines["Set5"] and str(tmp_path / "Set5") in lines["Set5"]
    assert "incomplete" in lines["Set14"] and "1/14" in lines["Set14"] and "1 images found" in lines["Set14"]
    assert "missing" in lines["Urban100"] and "iptbench datasets fetch Urban100" in lines["Urban100"]
    assert "by hand: HR/*.png" in lines["Manga109"]


def test_list_uses_env_root(tmp_path: Path) -> None:
    _set5(tmp_path)
    result = CliRunner(env={"COLUMNS": "200", "IPTBENCH_DATA": str(tmp_path)}).invoke(
        app, ["datasets", "list"]
    )
    assert result.exit_code == 0 and f"Benchmarks under {tmp_path}" in result.stdout


def test_verify_pass_and_fail(tmp_path: Path) -> None:
    _set5(tmp_path)
    ok = runner.invoke(app, ["datasets", "verify", "set5", "--data-root", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert "Set5: all checks passed" in ok.stdout and "not checked" in ok.stdout
    (tmp_path / "Set5" / "HR" / "3.png").write_bytes(b"garbage")
    bad = runner.invoke(app, ["datasets", "verify", "Set5", "--data-root", str(tmp_path)])
    assert bad.exit_code == 1
    assert "cannot read image" in bad.stderr and "Set5: 1 problem(s) (readable)" in bad.stderr
    missing = runner.invoke(app, ["datasets", "verify", "Rain100H", "--data-root", str(tmp_path)])
    assert missing.exit_code == 1 and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("error: Rain100H not found under")
    unknown = runner.invoke(app, ["datasets", "verify", "Set6", "--data-root", str(tmp_path)])
    assert unknown.exit_code == 1 and "unknown benchmark 'Set6'" in unknown.stderr


def test_fetch_offline_one_line(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/x.zip"
    result = runner.invoke(app, ["datasets", "fetch", "Set5", "--data-root", str(tmp_path), "--url", url])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: cannot download Set5 from {url}")
    assert f"put Set5 under {tmp_path / 'Set5'}/HR/*.png" in result.stderr


def test_fetch_from_local_archive(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for i in range(24):
        write_png(source / "kodak" / f"kodim{i + 1:02d}.png", np.full((6, 6, 3), i, np.uint8))
    archive = tmp_path / "kodak.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((source / "kodak").iterdir()):
            zf.write(path, f"images-123/kodak/{path.name}")
    root = tmp_path / "root"
    result = runner.invoke(
        app, ["datasets", "fetch", "kodak", "--data-root", str(root), "--archive", str(archive)]
    )
    assert result.exit_code == 0, result.output
    assert "no verified hash in the registry; not checked" in result.stdout
    assert (
        "Kodak24: all checks passed" in result.stdout and (root / "Kodak24" / "HR" / "kodim24.png").is_file()
    )
    again = runner.invoke(app, ["datasets", "fetch", "Kodak24", "--data-root", str(root)])
    assert again.exit_code == 0 and "already complete" in again.stdout


def test_real_list_and_verify(benchmark_root: Path) -> None:
    result = runner.invoke(app, ["datasets", "list", "--data-root", str(benchmark_root)])
    assert result.exit_code == 0
    states = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 3}
    for name in ("Set5", "Set14", "B100", "CBSD68", "Kodak24", "McMaster", "Rain100L"):
        assert " found " in states[name], states[name]
    assert " missing " in states["Urban100"]
    verify = runner.invoke(app, ["datasets", "verify", "Set5", "--data-root", str(benchmark_root)])
    assert verify.exit_code == 0, verify.output
    assert "20/20 files match" in verify.stdout and "Set5: all checks passed" in verify.stdout
