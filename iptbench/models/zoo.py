"""The weights zoo: named IPT weights listed in `weights/zoo.toml`, found on disk or fetched (sha256-checked).

Each entry gives a name, the tasks, the architecture, a file name, its sha256 (empty when nobody has
verified one), the licence of the training data, the source and, when a stable address exists, a `url`.
The official PyTorch checkpoints live in one Google Drive folder linked from huawei-noah/Pretrained-IPT's
readme; Drive folders have no stable per-file URLs, so those entries carry only the `page` to download
from by hand. A name resolves to the first match of its file name (or the converted ``.safetensors`` with
the same stem) in: ``$IPTBENCH_WEIGHTS`` (``os.pathsep``-separated folders), ``./weights``, the bundled
weights folder, and ``~/.cache/iptbench/weights`` (where `fetch` writes).
"""

from __future__ import annotations

import os
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from iptbench.errors import IptbenchError

MANIFEST_NAME = "zoo.toml"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    filename: str
    tasks: tuple[str, ...]
    architecture: str
    sha256: str  # "" when never verified
    data_licence: str
    source: str
    note: str = ""
    url: str = ""  # a stable download address; "" when there is none
    page: str = ""  # where a person downloads the file by hand

    @property
    def verified(self) -> bool:
        return bool(self.sha256)


def bundled_dir() -> Path:
    """The `weights/` folder shipped with iptbench: beside the package in a checkout, inside it in a wheel."""
    package = Path(__file__).resolve().parent.parent
    inside = package / "_weights"
    return inside if inside.is_dir() else package.parent / "weights"


def cache_dir() -> Path:
    return Path.home() / ".cache" / "iptbench" / "weights"


def _entry(row: dict[str, object], manifest: Path) -> ZooEntry:
    try:
        return ZooEntry(
            name=str(row["name"]),
            filename=str(row["file"]),
            tasks=tuple(str(t) for t in row["tasks"]),  # type: ignore[attr-defined]
            architecture=str(row["architecture"]),
            sha256=str(row.get("sha256", "")).lower(),
            data_licence=str(row["data_licence"]),
            source=str(row["source"]),
            note=str(row.get("note", "")),
            url=str(row.get("url", "")),
            page=str(row.get("page", "")),
        )
    except KeyError as exc:
        raise IptbenchError(f"{manifest}: a [[model]] entry has no {exc.args[0]!r}") from None


@cache
def load_zoo(manifest: Path | None = None) -> dict[str, ZooEntry]:
    """Name -> entry, from the bundled `zoo.toml` (or the given manifest), in file order."""
    path = manifest or bundled_dir() / MANIFEST_NAME
    try:
        rows = tomllib.loads(path.read_text(encoding="utf-8")).get("model", [])
    except FileNotFoundError:
        raise IptbenchError(f"the zoo manifest {path} is missing; reinstall iptbench") from None
    except tomllib.TOMLDecodeError as exc:
        raise IptbenchError(f"{path} is not valid TOML: {exc}") from None
    entries = [_entry(row, path) for row in rows]
    return {e.name: e for e in entries}


def list_zoo() -> list[ZooEntry]:
    return list(load_zoo().values())


def search_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("IPTBENCH_WEIGHTS", "").split(os.pathsep) if p]
    return [*dirs, Path("weights"), bundled_dir(), cache_dir()]


def find(entry: ZooEntry) -> Path | None:
    stem = Path(entry.filename).stem
    for folder in search_dirs():
        for candidate in (folder / entry.filename, folder / f"{stem}.safetensors"):
            if candidate.is_file():
                return candidate
    return None


def bundled() -> list[ZooEntry]:
    """The zoo entries whose file ships inside iptbench (the weights iptbench trained itself)."""
    return [e for e in list_zoo() if (bundled_dir() / e.filename).is_file()]


def _get(name: str) -> ZooEntry:
    zoo = load_zoo()
    if name not in zoo:
        raise KeyError(name)
    return zoo[name]


def where_to_get(entry: ZooEntry) -> str:
    """One line: where the file comes from and where to put it."""
    if entry.url:
        return f"run `iptbench weights fetch {entry.name}` (or download {entry.url}) into {cache_dir()}"
    # The folder `fetch` writes to: searched from any working directory, unlike ./weights.
    where = search_dirs()[0] if os.environ.get("IPTBENCH_WEIGHTS") else cache_dir()
    return f"download {entry.filename} from {entry.page or entry.source} and put it in {where.resolve()}"


def resolve(name: str) -> Path:
    """Zoo name -> checkpoint path on disk. KeyError for names that are not in the zoo."""
    entry = _get(name)
    path = find(entry)
    if path is None:
        raise IptbenchError(f"{entry.name}: {entry.filename} is not on disk; {where_to_get(entry)}")
    return path


def verify(entry: ZooEntry, path: Path) -> bool | None:
    """True/False: the file matches/contradicts the manifest's sha256; None: nothing to check against.

    A converted `.safetensors` of an official `.pt` is another file: only the exact file name is checked.
    """
    from iptbench.io import sha256_file

    if not entry.verified or path.name != entry.filename:
        return None
    return sha256_file(path) == entry.sha256


def fetch(name: str, dest: Path | None = None, *, timeout: float = 60.0) -> Path:
    """Download an entry's `url` into `dest` (default: the cache), check its sha256, rename into place."""
    from iptbench.io import sha256_file

    entry = _get(name)
    if not entry.url:
        raise IptbenchError(f"{entry.name} has no stable download address; {where_to_get(entry)}")
    if not entry.verified:
        raise IptbenchError(
            f"{entry.name} has no sha256 in the zoo to check a download against; not fetching it"
        )
    folder = dest or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / entry.filename
    partial = target.with_name(target.name + ".partial")
    try:
        with urllib.request.urlopen(entry.url, timeout=timeout) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise IptbenchError(
            f"could not download {entry.name} ({reason}); download {entry.url} by hand and put it in {folder}"
        ) from None
    digest = sha256_file(partial)
    if digest != entry.sha256:
        partial.unlink(missing_ok=True)
        raise IptbenchError(
            f"{entry.name}: the download's sha256 is {digest[:12]}.., the zoo expects {entry.sha256[:12]}..; "
            "nothing was kept"
        )
    os.replace(partial, target)
    return target
