"""`iptbench eval` end to end: generated data always, the real benchmark numbers when IPTBENCH_DATA is set."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from iptbench.cli import app
from iptbench.images import write_png

runner = CliRunner()


def _set5(root: Path) -> Path:
    rng = np.random.RandomState(0)
    for i in range(5):
        coarse = rng.randint(0, 256, size=(10, 12, 3)).astype(np.float64)
        write_png(root / "Set5" / "HR" / f"im{i}.png", np.kron(coarse, np.ones((3, 3, 1))).astype(np.uint8))
    return root


def _summary(out: Path) -> dict[str, dict[str, str]]:
    with (out / "summary.csv").open(newline="") as handle:
        return {f"{r['model']}/{r['dataset']}/{r['task']}": r for r in csv.DictReader(handle)}


def test_eval_writes_results_and_resumes(tmp_path: Path) -> None:
    root, out = _set5(tmp_path / "data"), tmp_path / "run"
    args = [
        "eval",
        "--suite",
        "sr",
        "--datasets",
        "Set5",
        "--model",
        "bicubic",
        "--data-root",
        str(root),
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert set(_summary(out)) == {"bicubic/Set5/sr-x2", "bicubic/Set5/sr-x3", "bicubic/Set5/sr-x4"}
    for name in ("per_image.csv", "report.md", "manifest.json", "broken_images.csv", "comparison.png"):
        assert (out / name).is_file(), name
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "resuming: 3 finished cell(s)" in again.output


def test_eval_missing_dataset_goes_on_unless_strict(tmp_path: Path) -> None:
    root, out = _set5(tmp_path / "data"), tmp_path / "run"
    base = ["eval", "--suite", "sr", "--model", "bicubic", "--data-root", str(root), "--out", str(out)]
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "iptbench datasets fetch Set14" in result.output
    strict = runner.invoke(app, [*base, "--strict"])
    assert strict.exit_code == 1
    assert "error:" in strict.output and "iptbench datasets fetch B100" in strict.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--suite", "jpeg"], "unknown suite"),
        (["--model", "waifu2x"], "unknown model"),
        (["--profile", "nope"], "nope"),
        (["--model", "ipt:/no/such/file.pt"], "no checkpoint file"),
    ],
)
def test_eval_user_errors_are_one_line(tmp_path: Path, extra: list[str], message: str) -> None:
    args = ["eval", "--model", "bicubic", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "error:" in result.output and message in result.output
    assert "Traceback" not in result.output


# -- with the real benchmark images (IPTBENCH_DATA) --


def test_set5_bicubic_reproduces_published_numbers(benchmark_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "set5"
    result = runner.invoke(
        app,
        [
            "eval",
            "--suite",
            "sr",
            "--datasets",
            "Set5",
            "--model",
            "bicubic",
            "--data-root",
            str(benchmark_root),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = _summary(out)
    expected = {"sr-x2": (33.67, 0.9303), "sr-x3": (30.40, 0.8689), "sr-x4": (28.43, 0.8111)}
    for task, (psnr, ssim) in expected.items():
        row = summary[f"bicubic/Set5/{task}"]
        assert row["images"] == "5" and row["profile"] == "sr"
        assert float(row["psnr"]) == pytest.approx(psnr, abs=0.01)
        assert float(row["ssim"]) == pytest.approx(ssim, abs=0.0005)


def test_rain100l_input_psnr(benchmark_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "rain"
    result = runner.invoke(
        app,
        [
            "eval",
            "--suite",
            "derain",
            "--model",
            "input",
            "--data-root",
            str(benchmark_root),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    row = _summary(out)["input/Rain100L/derain"]
    assert row["images"] == "100" and row["channel"] == "y"
    assert float(row["psnr"]) == pytest.approx(26.90, abs=0.01)


def test_real_noise_matches_kair_on_every_image(benchmark_root: Path) -> None:
    from iptbench.degradations.noise import noise_digest, noise_for_profile
    from iptbench.images import read_image
    from iptbench.metrics import get_profile

    profile = get_profile("denoise")
    for path in sorted((benchmark_root / "McMaster" / "HR").glob("*.tif")):
        clean = read_image(path)
        for sigma in (30, 50):
            first = noise_digest(noise_for_profile(clean, sigma, profile))
            assert noise_digest(noise_for_profile(clean, sigma, profile)) == first
            noisy = np.float32(clean / 255.0)  # independent KAIR-style statement
            np.random.seed(seed=0)
            noisy += np.random.normal(0, sigma / 255.0, noisy.shape)
            assert noise_digest(noisy * np.float32(255.0)) == first


@pytest.mark.slow
def test_real_noise_identical_between_eval_runs(benchmark_root: Path, tmp_path: Path) -> None:
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = runner.invoke(
            app,
            [
                "eval",
                "--suite",
                "denoise",
                "--datasets",
                "McMaster",
                "--model",
                "input",
                "--data-root",
                str(benchmark_root),
                "--out",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        digests.append(json.loads((out / "manifest.json").read_text())["noise_sha256"])
    assert digests[0] == digests[1] and len(digests[0]) == 36
