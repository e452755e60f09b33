"""bench/trace_policy.py: a checkpoint's policy played step by step on named goals."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from autotelic.runtime.config import deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from tests.runtime_fixtures import TINY_SERVICE

ROOT = Path(__file__).resolve().parents[1]


def test_each_step_shows_the_action_its_probability_and_the_entropy(tmp_path: Path) -> None:
    run = tmp_path / "run"
    extra = {"run": {"dir": str(run), "mode": "serial", "max_env_steps": 40}}
    agent = Agent(load_settings(None, **deep_merge(TINY_SERVICE, extra)))
    agent.run_serial()  # ends with a checkpoint
    agent.close()

    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/trace_policy.py"), str(run), "grasp COW",
         "Grow carrot", "--episodes", "2", "--sampled"],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{run} at ") and lines[0].endswith("env steps (sampled)")
    plays = [line for line in lines[1:] if "  " in line]
    assert [p.split("  ")[0] for p in plays] == ["Grasp cow"] * 2 + ["Grow carrot"] * 2
    step = re.compile(r"[^>()]+ \((0\.\d\d|1\.00), H \d\.\d\d\)")
    for play in plays:
        goal, outcome, moves = play.split("  ", 2)
        assert outcome in ("WIN", "fail")
        parts = moves.split(" > ")
        assert all(step.fullmatch(p.strip()) for p in parts), moves
        # The time limit (Grasp 3 steps, Grow plant 6) bounds every episode.
        assert 1 <= len(parts) <= (3 if goal.startswith("Grasp") else 6)
        assert outcome == "WIN" or len(parts) == (3 if goal.startswith("Grasp") else 6)
    summaries = [line for line in lines if line.endswith("reached")]
    assert [s.split(":")[0] for s in summaries] == ["Grasp cow", "Grow carrot"]


def test_precursors_mark_the_steps_played_under_them_until_the_own_goal_takes_over(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    extra = {"run": {"dir": str(run), "mode": "serial", "max_env_steps": 40}}
    agent = Agent(load_settings(None, **deep_merge(TINY_SERVICE, extra)))
    agent.run_serial()
    agent.close()

    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/trace_policy.py"), str(run), "Grow lion",
         "--episodes", "3", "--sampled", "--precursors", "Grasp cow"],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    plays = [line for line in done.stdout.splitlines()[1:] if "  " in line]
    assert len(plays) == 3
    for play in plays:
        marked = [" <Grasp cow> (" in part for part in play.split("  ", 2)[2].split(" > ")]
        assert marked[0], play  # the precursor acts first
        first_own = marked.index(False) if False in marked else len(marked)
        assert all(marked[:first_own]) and not any(marked[first_own:]), play
        assert first_own <= 6  # the precursor's step allowance
