"""Cell identities: written everywhere, reruns reuse only equal ones and say why they redo the others."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from iptbench.errors import IptbenchError
from iptbench.evaluation import identity as ident
from iptbench.evaluation.model_specs import parse_model_spec
from iptbench.evaluation.runner import EvalConfig, EvalResult, run_eval
from iptbench.images import read_image, write_png


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _run(root: Path, out: Path, specs: list[str], **kw: object) -> tuple[EvalResult, str]:
    """One eval of Set5 sr-x2 (a one-task checkpoint) with the console captured."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=400, force_terminal=False)
    ipt = {k: kw.pop(k) for k in ("tile_mode", "self_ensemble", "window_batch", "precision") if k in kw}
    restorers = [parse_model_spec(s, device="cpu", **ipt) for s in specs]  # type: ignore[arg-type]
    cfg = EvalConfig(suite="sr", data_root=root, out=out, datasets=["Set5"], progress=False, **kw)  # type: ignore[arg-type]
    return run_eval(cfg, restorers, console=console), buffer.getvalue()


@pytest.fixture
def tiny(tmp_path: Path) -> Callable[[Path, int], Path]:
    from iptbench.models import create_model, save_model

    def make(path: Path, seed: int = 0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model(create_model("ipt-tiny", tasks="sr-x2", seed=seed), path)
        return path

    return make


def test_identity_is_in_state_summary_and_manifest(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root, out = make_root("Set5"), tmp_path / "run"
    _run(root, out, ["bicubic"])
    state = json.loads((out / "state.json").read_text())
    cell = state["cells"][0]
    assert cell["identity_digest"] == ident.digest(cell["identity"]) and cell["finished_at"].endswith(
        "+00:00"
    )
    assert cell["identity"]["restorer"] == {
        "kind": "baseline",
        "name": "bicubic",
        "params": {"resize": "iptbench imresize matlab_uint8 (rounded after each axis)"},
    }
    assert cell["identity"]["scoring_version"] == ident.SCORING_VERSION
    assert cell["identity"]["profile"]["grey_target"] == "grey" and cell["identity"]["noise"] is None
    row = _csv(out / "summary.csv")[0]
    assert row["identity"] == cell["identity_digest"][:16]
    assert json.loads(row["identity_json"]) == cell["identity"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["cells"][0]["identity"] == cell["identity"]
    assert manifest["cells"][0]["identity_digest"] == cell["identity_digest"]


def test_weights_changed_in_place_redoes_and_says_why(
    make_root: Callable[..., Path], tmp_path: Path, tiny: Callable[[Path, int], Path]
) -> None:
    root, out = make_root("Set5", size=(24, 30)), tmp_path / "run"
    path = tiny(tmp_path / "tiny.safetensors", 0)
    first, _ = _run(root, out, [f"ipt:{path}"])
    old_sha = json.loads((out / "state.json").read_text())["cells"][0]["identity"]["restorer"][
        "weights_sha256"
    ]
    before = _csv(out / "summary.csv")[0]["psnr"]
    tiny(path, 1)  # other weights under the same file name: the silent-reuse case
    again, text = _run(root, out, [f"ipt:{path}"])
    new_sha = json.loads((out / "state.json").read_text())["cells"][0]["identity"]["restorer"][
        "weights_sha256"
    ]
    line = f"ipt:tiny Set5 sr-x2: weights changed (sha256 {old_sha[:8]}.. -> {new_sha[:8]}..), re-evaluating"
    assert line in text
    assert again.ran == [("ipt:tiny", "Set5", "sr-x2")] and again.resumed == []
    assert _csv(out / "summary.csv")[0]["psnr"] != before


@pytest.mark.parametrize(
    ("setting", "phrase"),
    [
        ({"tile_mode": "official"}, "ipt:tiny Set5 sr-x2: tile mode fast -> official, re-evaluating"),
        ({"self_ensemble": True}, "ipt:tiny Set5 sr-x2: self-ensemble off -> on, re-evaluating"),
        ({"precision": "bf16"}, "ipt:tiny Set5 sr-x2: precision fp32 -> bf16, re-evaluating"),
    ],
)
def test_restorer_settings_are_part_of_the_identity(
    make_root: Callable[..., Path],
    tmp_path: Path,
    tiny: Callable[[Path, int], Path],
    setting: dict[str, object],
    phrase: str,
) -> None:
    root, out = make_root("Set5", size=(24, 30)), tmp_path / "run"
    path = tiny(tmp_path / "tiny.safetensors", 0)
    _run(root, out, [f"ipt:{path}"])
    result, text = _run(root, out, [f"ipt:{path}"], **setting)
    assert result.ran == [("ipt:tiny", "Set5", "sr-x2")], text
    assert phrase in text


def test_window_batch_is_not_part_of_the_identity(
    make_root: Callable[..., Path], tmp_path: Path, tiny: Callable[[Path, int], Path]
) -> None:
    root, out = make_root("Set5", size=(60, 64)), tmp_path / "run"
    path = tiny(tmp_path / "tiny.safetensors", 0)
    _run(root, out, [f"ipt:{path}"], window_batch=64)
    result, text = _run(root, out, [f"ipt:{path}"], window_batch=1)
    assert result.ran == [] and result.resumed == [("ipt:tiny", "Set5", "sr-x2")]
    assert "resuming: 1 finished cell(s)" in text and "finished 20" in text and " UTC" in text


def test_changed_input_image_redoes_the_cell(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root, out = make_root("Set5"), tmp_path / "run"
    _run(root, out, ["bicubic"])
    image = root / "Set5" / "HR" / "img002.png"
    write_png(image, 255 - read_image(image))
    result, text = _run(root, out, ["bicubic"])
    assert (
        len(result.ran) == 3
        and "bicubic 3 cells (Set5 sr-x2, Set5 sr-x3, Set5 sr-x4): input images changed" in text
    )


def test_scoring_version_bump_redoes(
    make_root: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, out = make_root("Set5"), tmp_path / "run"
    _run(root, out, ["bicubic"])
    monkeypatch.setattr(ident, "SCORING_VERSION", ident.SCORING_VERSION + 1)
    result, text = _run(root, out, ["bicubic"])
    assert len(result.ran) == 3
    assert f"scoring code changed (version {ident.SCORING_VERSION - 1} -> {ident.SCORING_VERSION})" in text


def test_state_without_identities_is_redone(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root, out = make_root("Set5"), tmp_path / "run"
    _run(root, out, ["bicubic"])
    state = json.loads((out / "state.json").read_text())
    for cell in state["cells"]:  # what iptbench wrote before identities existed
        for key in ("identity", "identity_digest", "finished_at", "source", "rows"):
            cell.pop(key)
    (out / "state.json").write_text(json.dumps(state))
    result, text = _run(root, out, ["bicubic"])
    assert len(result.ran) == 3 and "no identity recorded (finished by an older iptbench)" in text


def test_two_weights_under_one_label_is_an_error(
    make_root: Callable[..., Path], tmp_path: Path, tiny: Callable[[Path, int], Path]
) -> None:
    root, out = make_root("Set5", size=(24, 30)), tmp_path / "run"
    a = tiny(tmp_path / "a" / "tiny.safetensors", 0)
    b = tiny(tmp_path / "b" / "tiny.safetensors", 1)
    _run(root, out, [f"ipt:{a}"])
    with pytest.raises(IptbenchError, match=r"row 'ipt:tiny' .* different model: .*--model tiny-2=ipt:"):
        _run(root, out, [f"ipt:{b}"])
    copy = tmp_path / "c" / "tiny.safetensors"  # the same weights elsewhere: one model, reused
    copy.parent.mkdir()
    shutil.copy(a, copy)
    result, _ = _run(root, out, [f"ipt:{copy}"])
    assert result.resumed == [("ipt:tiny", "Set5", "sr-x2")]
    replaced, text = _run(root, out, [f"ipt:{b}"], overwrite=True)
    assert replaced.ran == [("ipt:tiny", "Set5", "sr-x2")] and "--overwrite" in text


def test_no_empty_progress_bar_when_everything_is_reused(
    make_root: Callable[..., Path], tmp_path: Path
) -> None:
    root, out = make_root("Set5"), tmp_path / "run"
    _run(root, out, ["bicubic"])
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, force_terminal=True)
    cfg = EvalConfig(suite="sr", data_root=root, out=out, datasets=["Set5"], progress=True)
    run_eval(cfg, [parse_model_spec("bicubic")], console=console)
    text = buffer.getvalue()
    assert "resuming: 3 finished cell(s)" in text and "0/0" not in text


def test_describe_change_and_settings_text() -> None:
    base = {"restorer": {"kind": "ipt", "weights_sha256": "a" * 64, "tile_mode": "fast"}, "task": "sr-x2"}
    other = json.loads(json.dumps(base))
    other["restorer"]["weights_sha256"] = "b" * 64
    assert ident.describe_change(base, other) == "weights changed (sha256 aaaaaaaa.. -> bbbbbbbb..)"
    assert ident.differing_fields(base, other) == ["restorer.weights_sha256"]
    settings = {"kind": "ipt", "tile_mode": "official", "self_ensemble": True, "precision": "fp32"}
    assert ident.settings_text({**settings, "device": "cpu"}) == "official tiling, x8"
    assert ident.settings_text({**settings, "device": "cuda"}) == "official tiling, x8, fp32 on cuda"
    assert (
        ident.settings_text({"kind": "ipt", "tile_mode": "fast", "precision": "bf16", "device": "cpu"})
        == "bf16"
    )
    assert ident.settings_text({"kind": "baseline", "name": "bicubic"}) == ""
