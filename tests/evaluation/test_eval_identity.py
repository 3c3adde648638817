"""Cell identities: written everywhere, reruns reuse only equal ones and say why they redo the others."""

from __future__ import annotations

import csv
import dataclasses
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


# Digests of a fixed cell (bicubic baseline, all-zero inputs hash) per official task under its default
# profile, as computed before the corruption version moved into the task kinds: they must never move.
OFFICIAL_DIGESTS = {
    "sr-x2": "8a59f7eddcd27f89822fb1eb01aec20e22e08ff8e5c8b45c4684b5d78ebe3b4d",
    "sr-x3": "ec85d08a1f0c95298a4957d423c24ffbba3529a22828bfd22db1283be96fad90",
    "sr-x4": "46b36eb4b2f9b00df7c65d05d06e8927a6a5c1a41fa43cb0d0147a66887a1108",
    "derain": "f8c738e71bc586c49b84a09a124f201f7975223691cae5999e9db2997812c020",
    "denoise-30": "663b6b62de55295013e653236718a1d6bc4464457dfb9bd68ef96f9c6d3b6032",
    "denoise-50": "db9a2bb39792dd007b2e84d5a9fc27dd526f913cbf26d92076fc2fef8fa6ab45",
}
LEGACY_DENOISE_30 = "bad40aa7812ee2ddac821132a7e3581502782005fe314cc97de8a9f7120d91c1"
BICUBIC = {"kind": "baseline", "name": "bicubic", "params": {}}


def _digest(task_name: str, profile_name: str | None = None) -> str:
    from iptbench.metrics.profiles import default_profile_for, get_profile
    from iptbench.tasks import get_task

    task = get_task(task_name)
    profile = get_profile(profile_name) if profile_name else default_profile_for(task)
    return ident.digest(ident.cell_identity(BICUBIC, task, profile, "0" * 64, lpips=None, limit=None))


def test_official_digests_are_unchanged() -> None:
    assert {t: _digest(t) for t in OFFICIAL_DIGESTS} == OFFICIAL_DIGESTS
    assert _digest("denoise-30", "ipt-legacy") == LEGACY_DENOISE_30


def test_noise_algorithm_comes_from_the_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    from iptbench import tasks as registry
    from iptbench.degradations.noise import NOISE_ALGORITHM
    from iptbench.metrics.profiles import get_profile

    task, profile = registry.get_task("denoise-30"), get_profile("denoise")
    assert registry.get_kind("denoise").eval_version == NOISE_ALGORITHM
    assert ident.noise_identity(profile, task)["algorithm"] == NOISE_ALGORITHM  # type: ignore[index]
    bumped = dataclasses.replace(registry.get_kind("denoise"), eval_version="other-noise-v2")
    monkeypatch.setitem(registry.KINDS, "denoise", bumped)
    assert ident.noise_identity(profile, task)["algorithm"] == "other-noise-v2"  # type: ignore[index]
    assert _digest("denoise-30") != OFFICIAL_DIGESTS["denoise-30"]


def test_clean_kind_corruption_version_is_in_the_identity() -> None:
    """A kind whose eval input is its corruption of the clean image: a new corruption version redoes it."""
    from iptbench import tasks as registry

    blur = registry.TaskKind(
        "blurry", "Blur ({name})", registry.corrupt_sr, "clean", "denoise", "denoise", ("mini",)
    )
    registry.register_kind(blur)
    try:
        task = registry.register_task(registry.Task("blurry-1", "blurry", 1, None, registry.next_index()))
        first = ident.cell_identity(BICUBIC, task, _profile(), "0" * 64, lpips=None, limit=None)
        assert first["corruption"] == {"kind": "blurry", "version": "1", "seed": [0, task.official_index]}
        assert first["noise"] is None
        registry.unregister_kind("blurry")
        registry.register_kind(dataclasses.replace(blur, eval_version="2"))
        second = ident.cell_identity(BICUBIC, task, _profile(), "0" * 64, lpips=None, limit=None)
        assert ident.digest(first) != ident.digest(second)
        assert ident.describe_change(first, second) == "eval input corruption changed (version 1 -> 2)"
    finally:
        registry.unregister_task("blurry-1")
        registry.unregister_kind("blurry")
    assert "corruption" not in ident.cell_identity(
        BICUBIC, registry.get_task("sr-x2"), _profile(), "0" * 64, lpips=None, limit=None
    )


def _profile() -> object:
    from iptbench.metrics.profiles import get_profile

    return get_profile("denoise")
