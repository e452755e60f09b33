"""``autotelic run --seed N``: one seed reproduces a serial run exactly, another differs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from autotelic.runtime.commands.cli import app

TINY_SERIAL = [
    "model.path=tiny-causal",
    "run.mode=serial",
    "run.max_env_steps=96",
    "run.torch_threads=1",
    "service.mqtt_enabled=false",
    "metrics.enabled=false",
    "eval.enabled=false",
    "env.num_envs=4",
    "algorithm.learning_starts=32",
    "algorithm.batch_size=16",
    "algorithm.update_every=8",
    "algorithm.critic_hidden=[32]",
]
CLOCK_COLUMNS = {"time", "env_steps_per_s", "updates_per_s"}


def run_cli(run_dir: Path, seed: int) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The last progress row without its clock columns, and every stored episode without
    its timestamps."""
    sets = [arg for item in TINY_SERIAL for arg in ("--set", item)]
    result = CliRunner().invoke(app, ["run", "--run-dir", str(run_dir), "--seed", str(seed), *sets])
    assert result.exit_code == 0, result.output
    with (run_dir / "progress.csv").open() as f:
        last = list(csv.DictReader(f))[-1]
    exported = run_dir / "episodes.jsonl"
    export = CliRunner().invoke(
        app, ["replay", "export", "--run", str(run_dir), "-o", str(exported)]
    )
    assert export.exit_code == 0, export.output
    episodes = [json.loads(line) for line in exported.read_text().splitlines()]
    for e in episodes:
        e.pop("started_at"), e.pop("ended_at")
    return {k: v for k, v in last.items() if k not in CLOCK_COLUMNS}, episodes


def test_one_seed_reproduces_a_serial_run_and_another_seed_differs(tmp_path: Path) -> None:
    first_row, first = run_cli(tmp_path / "a", seed=3)
    again_row, again = run_cli(tmp_path / "b", seed=3)
    other_row, other = run_cli(tmp_path / "c", seed=4)
    assert int(first_row["env_steps"]) >= 96 and int(first_row["updates"]) > 0
    assert first_row == again_row and first == again
    assert [e["goal"] for e in first] != [e["goal"] for e in other]
    assert first_row["critic_loss"] != other_row["critic_loss"]
    config = (tmp_path / "c" / "config.yaml").read_text()
    assert config.count("seed: 4") == 4  # run, model, algorithm, curriculum
