"""`iptbench weights convert` and `iptbench weights info`."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

from iptbench.cli import app
from iptbench.models import create_model, load_model

runner = CliRunner()


def test_convert_then_info(tmp_path: Path) -> None:
    model = create_model("ipt-tiny", tasks="sr-x2", seed=4)
    src = tmp_path / "IPT_sr2.pt"
    torch.save(model.state_dict(), src)  # the official layout: a plain state dict
    dst = tmp_path / "sr2.safetensors"
    result = runner.invoke(app, ["weights", "convert", str(src), str(dst), "--num-heads", "4"])
    assert result.exit_code == 0, result.output
    assert "sr-x2" in result.output
    x = torch.rand(1, 3, 48, 48) * 255
    with torch.inference_mode():
        assert torch.equal(load_model(dst)(x, "sr-x2"), model.eval()(x, "sr-x2"))

    info = runner.invoke(app, ["weights", "info", str(dst)])
    assert info.exit_code == 0, info.output
    import hashlib

    digest = hashlib.sha256(dst.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in info.output
    assert (
        f"{model.num_parameters():,}" in info.output and "sr-x2" in info.output and "n_feats" in info.output
    )

    again = runner.invoke(app, ["weights", "convert", str(src), str(dst), "--num-heads", "4"])
    assert again.exit_code == 1 and "--force" in again.output


def test_convert_errors(tmp_path: Path) -> None:
    missing = runner.invoke(
        app, ["weights", "convert", str(tmp_path / "nope.pt"), str(tmp_path / "o.safetensors")]
    )
    assert missing.exit_code == 1 and "does not exist" in missing.output
    model = create_model("ipt-tiny", tasks="denoise-30", seed=4)
    src = tmp_path / "finetuned.pt"
    torch.save(model.state_dict(), src)
    out = tmp_path / "o.safetensors"
    ambiguous = runner.invoke(app, ["weights", "convert", str(src), str(out), "--num-heads", "4"])
    assert ambiguous.exit_code == 1 and "--tasks" in ambiguous.output
    named = runner.invoke(
        app, ["weights", "convert", str(src), str(out), "--num-heads", "4", "--tasks", "denoise-30"]
    )
    assert named.exit_code == 0, named.output
    wrong_heads = runner.invoke(
        app, ["weights", "info", str(src), "--num-heads", "5", "--tasks", "denoise-30"]
    )
    assert wrong_heads.exit_code == 1 and "heads" in wrong_heads.output
    official_info = runner.invoke(
        app, ["weights", "info", str(src), "--num-heads", "4", "--tasks", "denoise-30"]
    )
    assert official_info.exit_code == 0 and "official format" in official_info.output


def test_convert_half_stores_float16_and_loads_as_float32(tmp_path: Path) -> None:
    from safetensors import safe_open

    from iptbench.models import save_model

    model = create_model("ipt-tiny", tasks="denoise-30", seed=5)
    ours = save_model(model, tmp_path / "run.safetensors")
    half = tmp_path / "half.safetensors"
    result = runner.invoke(app, ["weights", "convert", str(ours), str(half), "--half"])
    assert result.exit_code == 0, result.output
    assert half.stat().st_size < 0.6 * ours.stat().st_size
    with safe_open(str(half), framework="pt") as f:
        floats = {f.get_tensor(k).dtype for k in f.keys() if f.get_tensor(k).is_floating_point()}  # noqa: SIM118
    assert floats == {torch.float16}
    loaded = load_model(half)
    for name, value in model.state_dict().items():
        got = loaded.state_dict()[name]
        if not value.is_floating_point():  # position ids stay integers
            assert torch.equal(got, value), name
            continue
        assert got.dtype == torch.float32
        assert torch.equal(got, value.half().float()), name  # exactly the float16 rounding, nothing else
