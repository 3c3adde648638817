from __future__ import annotations

from pathlib import Path

import pytest

from iptbench.errors import IptbenchError
from iptbench.models import zoo


def test_every_official_task_has_a_finetuned_entry() -> None:
    official = [e for e in zoo.list_zoo() if e.source.startswith("huawei-noah")]
    finetuned = {t for e in official if e.name != "ipt-pretrain" for t in e.tasks}
    assert finetuned == set(zoo.load_zoo()["ipt-pretrain"].tasks)


def test_missing_file_says_what_to_put_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPTBENCH_WEIGHTS", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IptbenchError) as info:
        zoo.resolve("ipt-sr2")
    message = str(info.value)
    assert "IPT_sr2.pt" in message and str(tmp_path.resolve()) in message and "\n" not in message


def test_found_in_env_folder_official_or_converted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPTBENCH_WEIGHTS", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "IPT_derain.safetensors").write_bytes(b"x")
    assert zoo.resolve("ipt-derain") == tmp_path / "IPT_derain.safetensors"
    (tmp_path / "IPT_derain.pt").write_bytes(b"x")
    assert zoo.resolve("ipt-derain") == tmp_path / "IPT_derain.pt"


def test_unknown_name_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        zoo.resolve("ipt-nonexistent")


def _manifest(folder: Path, sha256: str, url: str) -> None:
    (folder / "zoo.toml").write_text(
        "[[model]]\n"
        'name = "toy"\nfile = "toy.safetensors"\narchitecture = "ipt-tiny"\ntasks = ["sr-x2"]\n'
        f'sha256 = "{sha256}"\ndata_licence = "CC0"\nsource = "a test"\nurl = "{url}"\n'
    )


@pytest.fixture
def toy_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import hashlib

    payload = b"weights bytes"
    served = tmp_path / "served" / "toy.safetensors"
    served.parent.mkdir()
    served.write_bytes(payload)
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    monkeypatch.setattr(zoo, "bundled_dir", lambda: bundled)
    monkeypatch.setattr(zoo, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IPTBENCH_WEIGHTS", raising=False)
    zoo.load_zoo.cache_clear()
    yield bundled, served, hashlib.sha256(payload).hexdigest()
    zoo.load_zoo.cache_clear()


def test_fetch_checks_sha256_and_keeps_nothing_on_mismatch(toy_zoo) -> None:
    bundled, served, digest = toy_zoo
    _manifest(bundled, "0" * 64, served.as_uri())
    with pytest.raises(IptbenchError, match="sha256"):
        zoo.fetch("toy")
    assert not any((zoo.cache_dir()).iterdir())
    zoo.load_zoo.cache_clear()
    _manifest(bundled, digest, served.as_uri())
    path = zoo.fetch("toy")
    assert path.read_bytes() == served.read_bytes()
    assert zoo.resolve("toy") == path and zoo.verify(zoo.load_zoo()["toy"], path) is True


def test_fetch_offline_is_one_line_saying_where_to_put_it(toy_zoo) -> None:
    bundled, served, digest = toy_zoo
    _manifest(bundled, digest, (served.parent / "absent.safetensors").as_uri())
    with pytest.raises(IptbenchError) as info:
        zoo.fetch("toy")
    assert "\n" not in str(info.value) and "by hand" in str(info.value)


def test_bundled_manifest_lists_the_official_checkpoints_unverified() -> None:
    zoo.load_zoo.cache_clear()
    entries = zoo.load_zoo()
    assert {"ipt-pretrain", "ipt-sr2", "ipt-derain"} <= set(entries)
    assert all(e.page.startswith("https://") for e in entries.values() if e.source.startswith("huawei"))
