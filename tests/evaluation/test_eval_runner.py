"""The eval loop on generated data: outputs, resume, missing datasets, broken images, skipped tasks, IPT."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from iptbench.degradations.noise import add_noise_float, noise_digest
from iptbench.errors import IptbenchError
from iptbench.evaluation.model_specs import ModelEntry, parse_model_spec
from iptbench.evaluation.runner import EvalConfig, run_eval
from iptbench.models import baselines
from iptbench.report.tables import write_eval_report
from iptbench.tasks import Task


def _counting(name: str = "count") -> tuple[ModelEntry, list[str]]:
    calls: list[str] = []

    def restore(x: torch.Tensor, task: Task) -> torch.Tensor:
        calls.append(task.name)
        return baselines.bicubic_upscale(x, task.scale)

    return ModelEntry(name, ("sr-x2", "sr-x3", "sr-x4"), restore), calls


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _config(root: Path, out: Path, **kw: object) -> EvalConfig:
    return EvalConfig(suite=kw.pop("suite", "sr"), data_root=root, out=out, progress=False, **kw)  # type: ignore[arg-type]


def test_outputs_and_resume(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root = make_root("Set5")
    out = tmp_path / "run"
    model, calls = _counting()
    result = run_eval(_config(root, out, datasets=["Set5"]), [model])
    assert len(calls) == 15 and len(result.ran) == 3
    with (out / "summary.csv").open() as handle:
        header = handle.readline().strip().split(",")
    assert header[:7] == ["model", "dataset", "task", "profile", "images", "psnr", "ssim"]
    assert header[7:9] == ["lpips", "seconds"]
    summary = _csv(out / "summary.csv")
    assert [(r["task"], r["profile"], r["images"]) for r in summary] == [
        ("sr-x2", "sr", "5"),
        ("sr-x3", "sr", "5"),
        ("sr-x4", "sr", "5"),
    ]
    per_image = _csv(out / "per_image.csv")
    assert list(per_image[0]) == [
        "model", "dataset", "task", "image", "psnr", "ssim", "lpips", "seconds", "psnr_replicated"
    ]  # fmt: skip
    assert len(per_image) == 15 and all(r["lpips"] == "" for r in per_image)
    x2 = [float(r["psnr"]) for r in per_image if r["task"] == "sr-x2"]
    assert float(summary[0]["psnr"]) == pytest.approx(sum(x2) / 5, abs=1e-12)
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("iptbench_version", "git_revision", "command_line", "profiles", "seeds", "inputs_sha256"):
        assert key in manifest
    assert len(manifest["inputs_sha256"]) == 5  # HR only: LR made on the fly
    assert "Metric profile sr:" in write_eval_report(out, result.missing).read_text()
    assert (out / "comparison.png").stat().st_size > 0

    before = (out / "per_image.csv").read_bytes()
    again, calls2 = _counting()
    result = run_eval(_config(root, out, datasets=["Set5"]), [again])
    assert calls2 == [] and len(result.resumed) == 3 and result.ran == []
    assert (out / "per_image.csv").read_bytes() == before

    redo, calls3 = _counting()
    run_eval(_config(root, out, datasets=["Set5"], overwrite=True), [redo])
    assert len(calls3) == 15


def test_profile_change_redoes_cells(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root = make_root("Set5")
    out = tmp_path / "run"
    model, calls = _counting()
    run_eval(_config(root, out, datasets=["Set5"]), [model])
    model2, calls2 = _counting()
    run_eval(_config(root, out, datasets=["Set5"], profile="ipt-legacy"), [model2])
    assert len(calls2) == 15
    assert {r["profile"] for r in _csv(out / "summary.csv")} == {"ipt-legacy"}


def test_missing_datasets_listed_and_strict(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root = make_root("Set5")
    model, _ = _counting()
    result = run_eval(_config(root, tmp_path / "run"), [model])
    assert [m.name for m in result.missing] == ["Set14", "B100", "Urban100"]
    report = write_eval_report(tmp_path / "run", result.missing).read_text()
    assert "`iptbench datasets fetch Urban100`" in report
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["missing"][0]["fetch"] == "iptbench datasets fetch Set14"
    with pytest.raises(IptbenchError, match="--strict.*Set14.*iptbench datasets fetch"):
        run_eval(_config(root, tmp_path / "strict", strict=True), [_counting()[0]])


def test_broken_image_is_reported_and_run_goes_on(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root = make_root("Set5")
    (root / "Set5" / "HR" / "img003.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    out = tmp_path / "run"
    model, calls = _counting()
    result = run_eval(_config(root, out, datasets=["Set5"]), [model])
    assert len(calls) == 12
    assert {(e["image"], e["task"]) for e in result.errors} == {
        ("img003", t) for t in ("sr-x2", "sr-x3", "sr-x4")
    }
    assert [r["images"] for r in _csv(out / "summary.csv")] == ["4", "4", "4"]
    broken = _csv(out / "broken_images.csv")
    assert len(broken) == 3 and broken[0]["path"].endswith("img003.png") and broken[0]["reason"]
    assert len(json.loads((out / "manifest.json").read_text())["errors"]) == 3


def test_model_without_task_is_skipped(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root = make_root("Set5")
    bicubic, identity = parse_model_spec("bicubic"), parse_model_spec("input")
    result = run_eval(_config(root, tmp_path / "run", datasets=["Set5"]), [bicubic, identity])
    assert {(s["model"], s["task"]) for s in result.skipped} == {
        ("input", t) for t in ("sr-x2", "sr-x3", "sr-x4")
    }
    assert {r["model"] for r in _csv(tmp_path / "run" / "summary.csv")} == {"bicubic"}


def test_denoise_input_baseline_scores_float_noise(make_root: Callable[..., Path], tmp_path: Path) -> None:
    from iptbench.images import read_image
    from iptbench.metrics import psnr

    root = make_root("CBSD68", size=(16, 20))
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        run_eval(_config(root, out, suite="denoise", datasets=["CBSD68"]), [parse_model_spec("input")])
    noise = [json.loads((o / "manifest.json").read_text())["noise_sha256"] for o in outs]
    assert noise[0] == noise[1] and len(noise[0]) == 2 * 68
    clean = read_image(root / "CBSD68" / "HR" / "img001.png")
    noisy = add_noise_float(clean, 30)
    assert noise[0]["CBSD68/denoise-30/img001"] == noise_digest(noisy)
    row = next(
        r for r in _csv(outs[0] / "per_image.csv") if r["image"] == "img001" and r["task"] == "denoise-30"
    )
    to_t = lambda a: torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float()  # noqa: E731
    expected = float(psnr(to_t(noisy), to_t(clean), crop=0, channel="rgb")[0])
    assert float(row["psnr"]) == pytest.approx(expected, abs=1e-9)
    assert {r["profile"] for r in _csv(outs[0] / "summary.csv")} == {"denoise"}


def test_ipt_checkpoint_end_to_end(make_root: Callable[..., Path], tmp_path: Path) -> None:
    from iptbench.models import create_model, save_model

    torch.manual_seed(0)
    model = create_model("ipt-tiny", tasks="sr-x2,denoise-30")
    path = tmp_path / "tiny.safetensors"
    save_model(model, path)
    root = make_root("Set5", size=(24, 30))
    restorer = parse_model_spec(f"ipt:{path}", device="cpu")
    assert restorer.name == "ipt:tiny" and set(restorer.tasks) == {"sr-x2", "denoise-30"}
    out = tmp_path / "run"
    result = run_eval(_config(root, out, datasets=["Set5"], save_images=True), [restorer])
    assert result.ran == [("ipt:tiny", "Set5", "sr-x2")]
    assert {(s["model"], s["task"]) for s in result.skipped} == {("ipt:tiny", "sr-x3"), ("ipt:tiny", "sr-x4")}
    rows = _csv(out / "per_image.csv")
    assert len(rows) == 5 and all(np.isfinite(float(r["psnr"])) for r in rows)
    assert len(list((out / "images" / "ipt_tiny" / "Set5" / "sr-x2").glob("*.png"))) == 5
    assert "Δ ipt:tiny vs IPT |" in write_eval_report(out, result.missing).read_text()


@pytest.mark.slow  # two processes importing torch: ~10 s
def test_torchrun_splits_images_and_gathers_on_rank0(make_root: Callable[..., Path], tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    root = make_root("Set5")
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ["eval", "--suite", "sr", "--datasets", "Set5", "--model", "bicubic", "--data-root", str(root)]
    dist = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
         "-m", "iptbench", *args, "--out", str(tmp_path / "dist")],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert dist.returncode == 0, dist.stderr[-2000:]
    run_eval(_config(root, tmp_path / "single", datasets=["Set5"]), [parse_model_spec("bicubic")])
    single, both = _csv(tmp_path / "single" / "per_image.csv"), _csv(tmp_path / "dist" / "per_image.csv")
    assert [(r["task"], r["image"]) for r in both] == [(r["task"], r["image"]) for r in single]
    for a, b in zip(single, both, strict=True):  # metrics run on one thread: same bytes, any world size
        assert (a["psnr"], a["ssim"]) == (b["psnr"], b["ssim"])
    assert json.loads((tmp_path / "dist" / "manifest.json").read_text())["world_size"] == 2


def test_limited_run_is_not_resumed_by_a_full_run(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root, out = make_root("Set5"), tmp_path / "run"
    model, calls = _counting()
    run_eval(_config(root, out, datasets=["Set5"], limit=2), [model])
    assert len(calls) == 6
    full, calls2 = _counting()
    run_eval(_config(root, out, datasets=["Set5"]), [full])
    assert len(calls2) == 15
    assert [r["images"] for r in _csv(out / "summary.csv")] == ["5", "5", "5"]


def test_networks_run_on_all_cores_and_baselines_on_the_chosen_count(
    make_root: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iptbench import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(threads, "cpu_count", lambda: 2)
    before = torch.get_num_threads()
    seen: dict[str, set[int]] = {"network": set(), "baseline": set()}

    def recording(kind: str) -> ModelEntry:
        def restore(x: torch.Tensor, task: Task) -> torch.Tensor:
            seen["network" if kind == "module" else "baseline"].add(torch.get_num_threads())
            return baselines.bicubic_upscale(x, task.scale)

        return ModelEntry(kind, ("sr-x2",), restore, kind=kind)

    try:
        threads.configure(None)  # iptbench's own choice: one thread outside a network's forward pass
        run_eval(
            _config(make_root("Set5"), tmp_path / "run", datasets=["Set5"]),
            [recording("module"), recording("baseline")],
        )
        assert seen == {"network": {2}, "baseline": {1}}
        assert torch.get_num_threads() == 1  # the network's count does not leak into what follows
    finally:
        torch.set_num_threads(before)
        threads._choice.source, threads._choice.threads = "default", 0
