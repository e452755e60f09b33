"""`autotelic goals`: the curriculum's per-goal competence and learning progress, rebuilt
offline from a run directory, and its errors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from autotelic.runtime.commands.cli import app
from autotelic.runtime.config import deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from tests.runtime_fixtures import TINY_SERVICE


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    """A serial run of 300 steps with an injected goal; its final curriculum statistics."""
    run = tmp_path_factory.mktemp("goals") / "run"
    settings = load_settings(
        None,
        **deep_merge(
            TINY_SERVICE,
            {"run": {"dir": str(run), "mode": "serial", "max_env_steps": 300}},
        ),
    )
    agent = Agent(settings)
    try:
        agent.inject("Grasp tiger", episodes=2)
        agent.run_serial()  # ends with a checkpoint
        stats = agent.daemon.stats(detail=True)
    finally:
        agent.close()
    yield run, stats


def test_the_json_export_is_the_curriculum_of_the_last_checkpoint(
    finished_run: tuple[Path, Any],
) -> None:
    run, stats = finished_run
    result = CliRunner().invoke(app, ["goals", "--run", str(run), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["checkpoint"]["env_steps"] == 300
    assert data["checkpoint"]["name"] == "ckpt-000000000300"
    assert data["episodes"] == stats.episodes and data["estimator"] == stats.estimator
    exported = {g["goal"]: g for g in data["goals"]}
    assert set(exported) == {g.goal for g in stats.goals}
    for goal in stats.goals:
        row = exported[goal.goal]
        assert row["competence"] == pytest.approx(goal.competence)
        assert row["lp"] == pytest.approx(goal.lp)
        assert row["probability"] == pytest.approx(goal.probability)
        assert (row["attempts"], row["successes"]) == (goal.attempts, goal.successes)
    assert exported["Grasp tiger"]["source"] == "injected"
    assert exported["Grasp tiger"]["attempts"] >= 2
    assert set(data["categories"]) >= {"grasp", "grow_plant"}


def test_the_table_lists_every_goal_by_learning_progress(finished_run: tuple[Path, Any]) -> None:
    run, stats = finished_run
    result = CliRunner().invoke(app, ["goals", "--run", str(run)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("ckpt-000000000300: 300 env steps")
    assert lines[1].split() == [
        "goal", "category", "source", "competence", "LP", "p(next)", "attempts", "successes",
    ]  # fmt: skip
    body = lines[2:]
    assert len(body) == len(stats.goals)
    lps = [float(line.split()[-4]) for line in body]
    assert lps == sorted(lps, reverse=True)
    by_attempts = CliRunner().invoke(app, ["goals", "--run", str(run), "--sort", "attempts"])
    attempts = [int(line.split()[-2]) for line in by_attempts.output.splitlines()[2:]]
    assert attempts == sorted(attempts, reverse=True) and attempts[0] > 0


def test_a_directory_that_is_not_a_run_or_has_no_checkpoint_gets_a_clear_error(
    tmp_path: Path, finished_run: tuple[Path, Any]
) -> None:
    runner = CliRunner()
    not_run = runner.invoke(app, ["goals", "--run", str(tmp_path)])
    assert not_run.exit_code == 2
    assert f"{tmp_path} is not a run directory (no config.yaml)" in not_run.output
    fresh = tmp_path / "fresh"
    shutil.copytree(finished_run[0], fresh, ignore=shutil.ignore_patterns("checkpoints"))
    none = runner.invoke(app, ["goals", "--run", str(fresh)])
    assert none.exit_code == 2 and "no checkpoint in" in none.output
    bad_sort = runner.invoke(app, ["goals", "--run", str(fresh), "--sort", "fame"])
    assert bad_sort.exit_code == 2 and "'fame' is not one of" in bad_sort.output
