"""Curriculum state in the run's real LMDB episode store and a checkpoint: saved, crashed,
restored. The store keeps goals and injections; the checkpoint the learning state."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import msgpack
import numpy as np
import numpy.typing as npt
import pytest

from autotelic.goals import (
    CurriculumConfig,
    EpisodeOutcome,
    GoalDaemon,
    MemoryStateStore,
    StateStore,
)
from autotelic.storage import EpisodeStore
from autotelic.testing.simulated import SimulatedLearner, playground_sim_goals, simulate
from tests.goals_fixtures import PLAYGROUND, ManualClock

SIM = playground_sim_goals()
TEXTS = [g.text for g in SIM]
REPO = Path(__file__).resolve().parents[1]


def words(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """A small deterministic text embedding: hashed words (no model needed here)."""
    out = np.zeros((len(texts), 32), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            out[row, sum(map(ord, word)) % 32] += 1.0
    normalised: npt.NDArray[np.float32] = out / np.linalg.norm(out, axis=1, keepdims=True)
    return normalised


def test_the_lmdb_store_satisfies_the_state_protocol(tmp_path: Path) -> None:
    with EpisodeStore(tmp_path / "run") as store:
        assert isinstance(store, StateStore)
    assert isinstance(MemoryStateStore(), StateStore)


@pytest.mark.parametrize("estimator", ["goal", "bucket", "embedding"])
def test_restart_from_the_lmdb_store_and_a_checkpoint_restores_everything(
    tmp_path: Path, estimator: str
) -> None:
    clock = ManualClock()
    config = CurriculumConfig(configured_goals=TEXTS, estimator=estimator)
    with EpisodeStore(tmp_path / "run") as store:
        daemon = GoalDaemon(config, store=store, embed=words, clock=clock, goal_space=PLAYGROUND)
        simulate(daemon, SimulatedLearner(SIM, seed=4), episodes=500)
        daemon.report(
            EpisodeOutcome("Grow cow", "configured", None, True, 8, ["Grow cow", "Grow tiger"], 9)
        )
        kept = daemon.inject("Grow lion", episodes=4, priority=3, ttl=600)
        daemon.next_goals(2)  # two Grow lion episodes in flight, never reported
        daemon.persist()
        checkpoint = msgpack.unpackb(msgpack.packb(daemon.state_dict()), strict_map_key=False)
        probabilities = daemon.probabilities()
        goals = daemon.goals()
        stats = daemon.stats(detail=True)
        upcoming = [(a.goal, a.injection_id) for a in daemon.next_goals(40)]
    with EpisodeStore(tmp_path / "run") as store:
        restored = GoalDaemon(config, store=store, embed=words, clock=clock, goal_space=PLAYGROUND)
        assert restored.goals() == goals
        assert restored.episodes == 0  # the store alone: goals, but no learning state
        restored.load_state_dict(checkpoint)
        assert "Grow tiger" in [r.text for r in goals]
        assert restored.probabilities() == pytest.approx(probabilities, rel=1e-6)
        after = restored.stats(detail=True)
        assert (after.episodes, after.categories, after.goals) == (
            stats.episodes,
            stats.categories,
            stats.goals,
        )
        assert (stats.injected_episodes_pending, after.injected_episodes_pending) == (2, 4)
        # The in-flight episodes are served again: nothing accepted is lost.
        replay = [(a.goal, a.injection_id) for a in restored.next_goals(40)]
        assert replay[:4] == [("Grow lion", kept.id)] * 4
        assert replay[4:] == [g for g in upcoming if g[1] is None][: len(replay) - 4]


CRASHING_CHILD = textwrap.dedent(
    """
    import os, sys
    from autotelic.envs.playground import PlaygroundGoalSpace
    from autotelic.goals import CurriculumConfig, EpisodeOutcome, GoalDaemon
    from autotelic.storage import EpisodeStore

    store = EpisodeStore(sys.argv[1])
    config = CurriculumConfig(configured_goals=["Grow cow"])
    daemon = GoalDaemon(config, store=store, goal_space=PlaygroundGoalSpace())
    daemon.report(EpisodeOutcome("Grow cow", "configured", None, True, 8, ["Grasp carrot"], 1))
    injection = daemon.inject("Grow lion", episodes=2)
    print(injection.id, flush=True)
    os._exit(0)  # killed: no persist(), no close()
    """
)


def test_discoveries_and_injections_survive_a_crash(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_CHILD, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    injection_id = result.stdout.strip()
    with EpisodeStore(tmp_path / "run") as store:
        daemon = GoalDaemon(
            CurriculumConfig(configured_goals=["Grow cow"]), store=store, goal_space=PLAYGROUND
        )
        texts = {r.text: r.source for r in daemon.goals()}
        assert texts == {
            "Grow cow": "configured",
            "Grasp carrot": "discovered",
            "Grow lion": "injected",
        }
        assert [a.injection_id for a in daemon.next_goals(2)] == [injection_id] * 2
