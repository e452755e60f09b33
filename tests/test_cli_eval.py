"""``autotelic eval``: progress while it runs, episode counts in its table."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotelic.core import env_spec
from autotelic.runtime.commands.cli import app
from autotelic.runtime.config import deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.telemetry.progress import CountProgress
from tests.runtime_fixtures import TINY_SERVICE


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("eval") / "run"
    extra = {
        "run": {"dir": str(run), "mode": "serial", "max_env_steps": 40},
        "eval": {"enabled": False},
    }
    agent = Agent(load_settings(None, **deep_merge(TINY_SERVICE, extra)))
    agent.run_serial()  # ends with a checkpoint
    agent.close()
    return run


def test_eval_shows_progress_and_counts_episodes_in_its_table(run_dir: Path) -> None:
    space = env_spec("autotelic/PlaygroundText-v0").goal_space(load_settings(None).env)
    per_acting = {split: len(space.goals(split)) for split in ("train", "test")}
    total = 2 * sum(per_acting.values())
    result = CliRunner().invoke(app, ["eval", "--run", str(run_dir), "--episodes-per-goal", "1"])
    assert result.exit_code == 0, result.output
    progress = result.stderr.splitlines()
    assert progress[0].startswith("eval episodes: ")
    assert re.fullmatch(
        rf"eval episodes: {total:,}/{total:,} \(\d+\.\d\d/s, ~0s left\)", progress[-1]
    )
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["split", "acting", "episodes"]
    assert "grasp" in header.split()
    assert [row.split()[:3] for row in rows] == [
        [split, acting, str(per_acting[split])]
        for split in ("train", "test")
        for acting in ("greedy", "sampled")
    ]
    counts = [sum(int(n) for n in re.findall(r"\(n=(\d+)\)", row)) for row in rows]
    assert counts == [int(row.split()[2]) for row in rows]


def test_eval_json_carries_the_counts_too(run_dir: Path) -> None:
    result = CliRunner().invoke(
        app, ["eval", "--run", str(run_dir), "--episodes-per-goal", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert all(sum(r["counts"].values()) == r["episodes"] > 0 for r in data)


def test_count_progress_writes_at_most_every_interval_and_the_end_once() -> None:
    stream = io.StringIO()
    progress = CountProgress("things", 10, stream=stream, every=3600)
    for done in (1, 2, 3, 10, 10):
        progress.update(done)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("things: 1/10 (") and lines[0].endswith(" left)")
    assert lines[1].startswith("things: 10/10 (") and lines[1].endswith("~0s left)")
    chatty = io.StringIO()
    every = CountProgress("things", 3, stream=chatty, every=0)
    for done in (1, 1, 2, 3):
        every.update(done)
    assert [line.split(" (")[0] for line in chatty.getvalue().splitlines()] == [
        "things: 1/3",
        "things: 2/3",
        "things: 3/3",
    ]


def test_a_laptop_run_evaluates_every_2000_steps_unless_told_otherwise() -> None:
    """The cpu profile (a concurrent run on the CPU) brings the first evaluation point into
    a first session; serial experiments and a configured interval keep theirs."""
    from autotelic.runtime.loop.profiles import CPU_EVAL_INTERVAL, apply_profile

    assert CPU_EVAL_INTERVAL == 2_000
    assert apply_profile(load_settings(None)).eval.interval_env_steps == 2_000
    told = load_settings(None, eval={"interval_env_steps": 10_000})
    assert apply_profile(told).eval.interval_env_steps == 10_000
    serial = load_settings(None, run={"mode": "serial"})
    assert apply_profile(serial).eval.interval_env_steps == 10_000


@pytest.mark.parametrize("command", [["verify"], ["export", "--out", "-"]])
def test_reading_a_whole_store_shows_its_progress(run_dir: Path, command: list[str]) -> None:
    from autotelic.storage import EpisodeStore

    with EpisodeStore(run_dir / "store", readonly=True) as store:
        total = len(store)
    assert total > 0
    result = CliRunner().invoke(app, ["replay", *command, "--run", str(run_dir)])
    assert result.exit_code == 0, result.output
    progress = [line for line in result.stderr.splitlines() if line.startswith("episodes read")]
    assert progress and re.fullmatch(
        rf"episodes read: {total:,}/{total:,} \(\d+\.\d\d/s, ~0s left\)", progress[-1]
    )
    if command[0] == "export":  # the episodes go to stdout, the progress never does
        assert len(result.stdout.splitlines()) == total and "episodes read" not in result.stdout
