"""TOML run configs: file + command-line override, --print-config, the run folder's config.toml, configs/."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iptbench.cli import app
from iptbench.errors import IptbenchError
from iptbench.train import TrainConfig
from iptbench.train.config_file import KEYS, defaults, load_toml, resolve, to_toml

runner = CliRunner()
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_print_config_is_toml_of_the_defaults() -> None:
    result = runner.invoke(app, ["train", "--print-config"])
    assert result.exit_code == 0, result.output
    parsed = tomllib.loads(result.output)
    # every default is printed (None ones commented out), and reads back as the same value
    expected = {k: list(v) if isinstance(v, tuple) else v for k, v in defaults().items() if v is not None}
    assert parsed == expected
    for key in KEYS:
        assert f"{key} =" in result.output


def test_file_plus_flags_resolve_and_are_saved(pairs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    toml = tmp_path / "run.toml"
    toml.write_text(
        f'data = ["{pairs_file}"]\nout = "{out}"\nmodel = "ipt-tiny"\nsteps = 2\n'
        'batch-size = 2\nworkers = 0\nlog_every = 1\ndevice = "cpu"\nlr = 1e-4\ntasks = "sr-x2"\n'
    )
    result = runner.invoke(app, ["train", "--config", str(toml), "--lr", "3e-4", "--steps", "3"])
    assert result.exit_code == 0, result.output
    saved = tomllib.loads((out / "config.toml").read_text())
    # flags win over the file, the file over the defaults, dashes or underscores alike
    assert (saved["lr"], saved["steps"], saved["batch_size"], saved["tasks"]) == (3e-4, 3, 2, ["sr-x2"])
    assert saved["temperature"] == defaults()["temperature"] and "epochs" not in saved
    # the saved file reruns the same run: nothing to refuse, nothing left to train
    again = runner.invoke(app, ["train", "--config", str(out / "config.toml")])
    assert again.exit_code == 0, again.output
    assert "done: step 3/3" in again.output and "resuming at step 3" in again.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("batchsize = 2\n", "unknown key 'batchsize'; did you mean batch_size?"),
        ('batch_size = "2"\n', "batch_size must be an integer"),
        ("batch_size = 2\nbatch-size = 3\n", "set twice"),
        ("tasks = [1]\n", "tasks must be a list of strings"),
        ("ema = true\n", "ema must be a number"),
        ("steps = \n", "not valid TOML"),
    ],
)
def test_bad_config_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(IptbenchError, match=message) as info:
        load_toml(path)
    assert "\n" not in str(info.value)


def test_required_settings_and_cli_errors(tmp_path: Path) -> None:
    with pytest.raises(IptbenchError, match="give at least one DATA.h5"):
        resolve(None, {"out": "x"})
    with pytest.raises(IptbenchError, match="give the run folder with --out"):
        resolve(None, {"data": ("a.h5",)})
    result = runner.invoke(app, ["train", "--config", str(tmp_path / "none.toml"), "x.h5", "-o", "r"])
    assert result.exit_code == 1 and "--config" in result.output and "not found" in result.output


def test_to_toml_round_trips_awkward_strings() -> None:
    values = {**defaults(), "data": ('a "quoted"\\path\x7f.h5', "ü.h5"), "out": "runs/x", "ema": 0.999}
    parsed = tomllib.loads(to_toml(values, "header\nsecond line"))
    assert parsed["data"] == list(values["data"]) and parsed["ema"] == 0.999 and parsed["out"] == "runs/x"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_resolve(path: Path) -> None:
    cfg = TrainConfig(**resolve(path, {}))
    assert cfg.data and cfg.out
    if "finetune" in path.name:
        task = path.stem.removeprefix("ipt-base-finetune-")
        assert cfg.tasks == (task,) and cfg.init and cfg.lr == 2e-5 and cfg.epochs == 30
        assert cfg.contrastive == 0.0 and cfg.val


def test_paper_recipe_covers_six_tasks() -> None:
    names = {p.stem.removeprefix("ipt-base-finetune-") for p in CONFIGS.glob("ipt-base-finetune-*.toml")}
    assert names == {"sr-x2", "sr-x3", "sr-x4", "denoise-30", "denoise-50", "derain"}
    pre = TrainConfig(**resolve(CONFIGS / "ipt-base-pretrain.toml", {}))
    assert (pre.model, pre.epochs, pre.lr, pre.lr_milestones) == ("ipt-base", 300, 5e-5, (200,))
    assert pre.batch_size == 32 and pre.val == ("Set5", "CBSD68", "Rain100L")


def test_help_has_examples_and_flag_pairs() -> None:
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert result.output.count("Example:") == 3 and "--print-config" in result.output
    assert "--augment" in result.output and "--no-augment" in result.output and "<bool>" not in result.output
    assert "(>= 1)" in result.output  # numeric options state their range


def test_a_budget_flag_replaces_the_files_budget_in_the_other_unit() -> None:
    """configs/ give epochs; `--steps N` on the command line is the budget then, not a conflict."""
    paper = CONFIGS / "ipt-base-pretrain.toml"
    assert load_toml(paper).get("epochs") and not load_toml(paper).get("steps")
    values = resolve(paper, {"steps": 5})
    assert values["steps"] == 5 and values["epochs"] is None
    cfg = TrainConfig(**values)
    assert cfg.steps == 5
    assert resolve(paper, {"epochs": 2})["epochs"] == 2
    with pytest.raises(IptbenchError, match="not both"):
        TrainConfig(**resolve(paper, {"steps": 5, "epochs": 2}))
