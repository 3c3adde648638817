from __future__ import annotations

from pathlib import Path

import pytest

from iptbench.errors import IptbenchError
from iptbench.models import zoo


def test_every_official_task_has_a_finetuned_entry() -> None:
    finetuned = {t for e in zoo.list_zoo() if e.name != "ipt-pretrain" for t in e.tasks}
    assert finetuned == set(zoo.ZOO["ipt-pretrain"].tasks)


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
