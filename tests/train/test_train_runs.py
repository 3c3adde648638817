"""`iptbench train` end to end: CLI, byte-identical reruns, resume after a stop, fine-tuning, errors."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import iptbench
from iptbench.cli import app
from iptbench.errors import IptbenchError
from iptbench.models import create_model
from iptbench.models.checkpoints import keep_tasks
from iptbench.pairs.patches import PatchDataset, TaskBatchSampler
from iptbench.train import TrainConfig, clip_per_tensor, l1_loss, load_checkpoint, supcon_loss, train

runner = CliRunner()
ARGS = ["--model", "ipt-tiny", "--steps", "4", "--batch-size", "2", "--workers", "0", "--save-every", "3"]
ARGS += ["--log-every", "1", "--device", "cpu"]


def _config(data_file: Path, out: Path, **changes: object) -> TrainConfig:
    base = TrainConfig(
        data=(str(data_file),), out=str(out), model="ipt-tiny", steps=4, batch_size=2, workers=0,
        save_every=3, log_every=1, device="cpu",
    )  # fmt: skip
    return replace(base, **changes)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def cli_run(pairs_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "cli"
    result = runner.invoke(app, ["train", str(pairs_file), "--out", str(out), *ARGS])
    assert result.exit_code == 0, result.output
    assert "done: step 4/4" in result.output
    return out


def test_cli_writes_a_loadable_model_and_run_files(cli_run: Path) -> None:
    model = iptbench.load_model(cli_run / "model.safetensors")
    assert model.tasks == ("sr-x2", "denoise-30") and model.config.name == "ipt-tiny"
    rows = _rows(cli_run / "log.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"]
    assert {r["task"] for r in rows} <= {"sr-x2", "denoise-30"}
    assert all(float(r["contrastive"]) > 0 and float(r["lr"]) == 5e-5 for r in rows)
    stored = json.loads((cli_run / "config.json").read_text())
    identity = stored["identity"]
    assert identity["contrastive"] == 0.1 and identity["temperature"] == 0.07
    assert "steps" not in identity and stored["details"]["total_steps"] == 4  # a budget, not identity
    ck = load_checkpoint(cli_run / "last.pt")  # weights_only load
    assert (ck["step"], ck["epoch"], ck["position"]) == (4, 0, 4)
    torch.testing.assert_close(ck["model"]["body.query_embed.weight"], model.body.query_embed.weight)


def test_same_command_twice_gives_identical_bytes(cli_run: Path, pairs_file: Path, tmp_path: Path) -> None:
    result = train(_config(pairs_file, tmp_path / "again", workers=1))  # workers do not change results
    assert result.model_path is not None
    assert result.model_path.read_bytes() == (cli_run / "model.safetensors").read_bytes()
    assert _rows(result.model_path.parent / "log.csv") == _rows(cli_run / "log.csv")


def test_stopped_then_resumed_equals_uninterrupted(cli_run: Path, pairs_file: Path, tmp_path: Path) -> None:
    cfg = _config(pairs_file, tmp_path / "resumed")
    first = train(cfg, stop_at=2)
    assert first.model_path is None and first.step == 2
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    with open(tmp_path / "resumed" / "log.csv", "a") as f:
        f.write("3,0,sr-x2,1,1,0,5e-05,9.9\n")  # a row a killed process wrote after its last save
    second = train(cfg)
    assert second.resumed_from == 2 and second.step == 4
    assert second.model_path is not None
    assert second.model_path.read_bytes() == (cli_run / "model.safetensors").read_bytes()
    assert _rows(tmp_path / "resumed" / "log.csv") == _rows(cli_run / "log.csv")
    again = train(cfg)  # a finished run: nothing to train, same weights
    assert again.resumed_from == 4 and again.final is None
    assert second.model_path.read_bytes() == (cli_run / "model.safetensors").read_bytes()


def test_other_settings_in_a_run_folder_are_refused(cli_run: Path, pairs_file: Path) -> None:
    result = runner.invoke(app, ["train", str(pairs_file), "--out", str(cli_run), *ARGS, "--lr", "1e-4"])
    assert result.exit_code == 1
    assert "holds a run with other settings (lr 5e-05 -> 0.0001)" in result.output
    assert len(result.output.strip().splitlines()) <= 2  # one line (rich may wrap it)


def test_no_resume_starts_over(pairs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "over"
    train(_config(pairs_file, out, steps=1))
    (out / "last.pt").write_bytes(b"garbage")
    with pytest.raises(IptbenchError, match="cannot read .* as a training checkpoint"):
        train(_config(pairs_file, out, steps=1))
    result = train(_config(pairs_file, out, steps=1, resume=False))
    assert result.resumed_from is None and result.step == 1


def test_fine_tuning_keeps_one_head_and_tail(cli_run: Path, pairs_file: Path, tmp_path: Path) -> None:
    source = iptbench.load_model(cli_run / "model.safetensors")
    kept = keep_tasks(source, ["denoise-30"], "test")
    assert kept.tasks == ("denoise-30",) and len(kept.head) == len(kept.tail) == 1
    state, src = kept.state_dict(), source.state_dict()
    torch.testing.assert_close(state["head.0.0.weight"], src["head.1.0.weight"], rtol=0, atol=0)
    torch.testing.assert_close(state["tail.0.1.weight"], src["tail.1.1.weight"], rtol=0, atol=0)
    torch.testing.assert_close(state["body.query_embed.weight"][0], src["body.query_embed.weight"][1])
    x = torch.rand(1, 3, 48, 48) * 255
    with torch.no_grad():
        torch.testing.assert_close(kept(x, "denoise-30"), source(x, "denoise-30"))

    out = tmp_path / "ft"
    cfg = _config(pairs_file, out, model=None, init=str(cli_run / "model.safetensors"), tasks=("denoise-30",))
    result = train(replace(cfg, steps=1))
    tuned = iptbench.load_model(out / "model.safetensors")
    assert tuned.tasks == ("denoise-30",) and tuned.body.query_embed.weight.shape[0] == 1
    identity = json.loads((out / "config.json").read_text())["identity"]
    assert identity["contrastive"] == 0.0 and identity["lr"] == 2e-5
    assert identity["init"]["tasks"] == ["sr-x2", "denoise-30"] and result.final is not None
    assert result.final.task == "denoise-30" and result.final.contrastive == 0.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"data": ("missing.h5",)}, "data file missing.h5 not found"),
        ({"tasks": ("derain",)}, "task derain is not in the data files"),
        ({"batch_size": 9}, "no full batch"),
        ({"steps": 1, "epochs": 1}, "not both"),
        ({"model": "ipt-small", "init": "INIT"}, "is not shaped like ipt-small"),
        ({"init": "INIT", "tasks": ("sr-x2", "sr-x4")}, "task sr-x4 is not in the data"),
    ],
)
def test_bad_input_is_one_line_error(
    cli_run: Path, pairs_file: Path, tmp_path: Path, changes: dict, message: str
) -> None:
    if changes.get("init") == "INIT":
        changes = {**changes, "init": str(cli_run / "model.safetensors")}
    with pytest.raises(IptbenchError, match=message) as info:
        train(_config(pairs_file, tmp_path / "bad", **changes))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "bad").exists()  # nothing written before the inputs are checked


def test_cli_bad_input_exits_non_zero(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "r"), *ARGS])
    assert result.exit_code == 1 and "error:" in result.output and "not found" in result.output


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(pairs_file: Path) -> None:
    ds = PatchDataset(pairs_file, ["sr-x2"], augment=False)
    batch = [ds[i] for i in range(4)]
    x = torch.stack([b["input"] for b in batch]).float()
    y = torch.stack([b["target"] for b in batch]).float()
    sources = torch.tensor([b["source"] for b in batch])
    model = create_model("ipt-tiny", "sr-x2", seed=0)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=5e-4)
    losses = []
    for _ in range(8):
        out, tokens = model(x, "sr-x2", return_features=True)
        loss = l1_loss(out, y) + 0.1 * supcon_loss(tokens, sources)
        loss.backward()
        clip_per_tensor(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_sampler_shards_give_disjoint_equal_same_task_batches(pairs_file: Path) -> None:
    ds = PatchDataset(pairs_file)
    whole = list(TaskBatchSampler(ds, 2, seed=4))
    assert whole == list(TaskBatchSampler(ds, 2, seed=4, rank=0, world_size=1))
    shards = [list(TaskBatchSampler(ds, 2, seed=4, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(TaskBatchSampler(ds, 2, rank=1, world_size=2)) == 4
    seen = [i for shard in shards for batch in shard for i, _ in batch]
    assert len(seen) == len(set(seen)) == 16
    for a, b in zip(*shards, strict=True):  # the global batch of each step is one task
        assert {ds.locate(i)[0] for i, _ in a + b} == {ds.locate(a[0][0])[0]}
    with pytest.raises(ValueError):
        TaskBatchSampler(ds, 2, rank=2, world_size=2)


def test_return_features_adds_tokens_and_keeps_the_output() -> None:
    model = create_model("ipt-tiny", "sr-x2,derain", seed=1).eval()
    x = torch.rand(2, 3, 48, 48) * 255
    with torch.no_grad():
        plain = model(x, "derain")
        out, tokens = model(x, "derain", return_features=True)
    assert torch.equal(out, plain)
    assert tokens.shape == (2, 256, model.config.embedding_dim)
