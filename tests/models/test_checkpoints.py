"""Checkpoints: our safetensors format, official .pt conversion, strict loading errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from iptbench.errors import IptbenchError
from iptbench.models import IPT, checkpoint_info, convert_weights, create_model, load_model, save_model
from iptbench.models.checkpoints import infer_official_config, load_state_dict_strict
from iptbench.tasks import OFFICIAL_TASK_NAMES

TINY_HEADS = 4  # ipt-tiny's heads; official files cannot tell, so conversion is told


def _window() -> torch.Tensor:
    return torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(3)) * 255


def _outputs(model: IPT) -> dict[str, torch.Tensor]:
    model.eval()
    with torch.inference_mode():
        return {t: model(_window(), t) for t in model.tasks}


def _save_official(model: IPT, path: Path, *, out_bias: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a file the way the official code does: torch.save of a plain state dict, official keys."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state.update(out_bias or {})
    torch.save(state, path)
    return path


def test_safetensors_round_trip(tmp_path: Path) -> None:
    model = create_model("ipt-tiny", tasks="sr-x3,denoise-50", seed=5)
    path = save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert loaded.tasks == ("sr-x3", "denoise-50") and not loaded.training
    got = _outputs(loaded)
    for task, want in _outputs(model).items():
        assert torch.equal(got[task], want)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["tasks"]) == ["sr-x3", "denoise-50"]
    assert json.loads(meta["config"])["n_feats"] == 16


@pytest.mark.parametrize(
    ("tasks", "filename"),
    [
        ("sr-x4", "IPT_sr4.pt"),
        ("denoise-30", "IPT_denoise30.pt"),
        ("derain", "IPT_derain.pt"),
        (None, "IPT_pretrain.pt"),
    ],
)
def test_convert_official_then_load_gives_identical_outputs(
    tmp_path: Path, tasks: str | None, filename: str
) -> None:
    model = create_model("ipt-tiny", tasks=tasks, seed=7)
    src = _save_official(model, tmp_path / filename)
    dst = tmp_path / "converted.safetensors"
    converted = convert_weights(src, dst, num_heads=TINY_HEADS)
    assert converted.tasks == model.tasks  # inferred from tail shapes, file name, or the six-task layout
    reloaded = load_model(dst)
    direct = load_model(src, num_heads=TINY_HEADS)  # official files load directly too
    want = _outputs(model)
    for m in (reloaded, direct):
        got = _outputs(m)
        assert all(torch.equal(got[t], want[t]) for t in want)
    info = checkpoint_info(dst)
    assert info.num_parameters == model.num_parameters() and len(info.sha256) == 64
    assert info.metadata["source"] == filename


def test_out_proj_bias_keys_are_kept(tmp_path: Path) -> None:
    """Files saved by PyTorch 1.6-1.8 carry attention out_proj.bias; they load and are used."""
    ref = create_model("ipt-tiny", tasks="sr-x2", out_proj_bias=True, seed=2)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("out_proj.bias"):
                p.normal_()
    src = _save_official(ref, tmp_path / "IPT_sr2.pt")
    model = load_model(src, num_heads=TINY_HEADS)
    assert model.config.out_proj_bias
    assert torch.equal(_outputs(model)["sr-x2"], _outputs(ref)["sr-x2"])


def test_inference_of_config_from_shapes() -> None:
    state = create_model("ipt-small", tasks="sr-x3", seed=0).state_dict()
    cfg = infer_official_config(state, num_heads=6)
    assert (cfg.n_feats, cfg.patch_dim, cfg.patch_size, cfg.num_layers, cfg.tasks) == (
        32,
        3,
        48,
        4,
        ("sr-x3",),
    )
    base = create_model("ipt-base", device="meta").state_dict()
    cfg = infer_official_config(base)
    assert cfg.tasks == OFFICIAL_TASK_NAMES and cfg.name == "ipt-base" and cfg.num_heads == 12


def test_task_naming_errors(tmp_path: Path) -> None:
    state = create_model("ipt-tiny", tasks="denoise-50").state_dict()
    with pytest.raises(IptbenchError, match="pass --tasks"):
        infer_official_config(state, num_heads=4, path=tmp_path / "weights.pt")
    cfg = infer_official_config(state, num_heads=4, tasks=["denoise-50"])
    assert cfg.tasks == ("denoise-50",)
    with pytest.raises(IptbenchError, match="scale"):
        infer_official_config(state, num_heads=4, tasks=["sr-x2"])
    with pytest.raises(IptbenchError, match="divisible"):
        infer_official_config(state, num_heads=5, tasks=["derain"])


def test_strict_loading_lists_problems() -> None:
    model = create_model("ipt-tiny", tasks="sr-x2")
    good = model.state_dict()
    extra = {**good, "body.encoder.layers.9.linear1.weight": torch.zeros(1), "foo.bar": torch.zeros(1)}
    with pytest.raises(
        IptbenchError, match=r"2 unused keys: body\.encoder\.layers\.9\.linear1\.weight, foo\.bar"
    ):
        load_state_dict_strict(model, extra)
    missing = {k: v for k, v in good.items() if not k.startswith("tail.")}
    with pytest.raises(IptbenchError, match=r"missing keys: tail\.0\.0\.0\.bias"):
        load_state_dict_strict(model, missing)
    shapes = {**good, "body.query_embed.weight": torch.zeros(6, good["body.query_embed.weight"].shape[1])}
    with pytest.raises(
        IptbenchError, match=r"wrong shapes: body\.query_embed\.weight \(6, 36864\) vs model \(1, 36864\)"
    ):
        load_state_dict_strict(model, shapes)


def test_missing_position_ids_buffer_is_filled(tmp_path: Path) -> None:
    model = create_model("ipt-tiny", tasks="sr-x2", seed=1)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    torch.save(state, tmp_path / "IPT_sr2.pt")
    loaded = load_model(tmp_path / "IPT_sr2.pt", num_heads=TINY_HEADS)
    assert torch.equal(_outputs(loaded)["sr-x2"], _outputs(model)["sr-x2"])


def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(IptbenchError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(IptbenchError, match="cannot load"):
        load_model(junk)
    torch.save({"weights": [1, 2, 3]}, tmp_path / "odd.pt")
    with pytest.raises(IptbenchError, match="plain state dict"):
        load_model(tmp_path / "odd.pt")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(IptbenchError, match="without iptbench model metadata"):
        load_model(tmp_path / "foreign.safetensors")
