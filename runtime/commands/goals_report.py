"""Per-goal competence and learning progress of a run, read offline (``autotelic goals``).

Goal text never becomes a metric label, so what the curriculum knows about each
goal is read from the run directory instead: the curriculum's learning state
saved in the newest complete checkpoint, with the goals and injections its
state store holds (goals discovered since that checkpoint appear with no
attempts). The curriculum is rebuilt from the run's configuration and its
environment's goal space, exactly as the service builds it, and nothing in the
run directory is written, so this is safe while the service runs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotelic.core import env_spec
from autotelic.goals import CurriculumStats, GoalDaemon
from autotelic.runtime.config import load_settings
from autotelic.storage import Checkpoint, CheckpointManager, EpisodeStore, RunLayout

_ATTEMPTS = 3
"""Tries to read the newest checkpoint; the service may prune it between listing and reading."""


class ReadOnlyState:
    """The run's state store for reading: the daemon's writes are dropped."""

    def __init__(self, store: EpisodeStore | None) -> None:
        self.store = store

    def get_state(self, key: str) -> Any | None:
        return None if self.store is None else self.store.get_state(key)

    def put_state(self, key: str, value: Any) -> None:
        """Nothing is written: the running service owns the store."""


@dataclass(frozen=True)
class GoalsReport:
    """The curriculum of a run as of its newest checkpoint."""

    run_dir: Path
    checkpoint: Checkpoint
    env_steps: int
    """Training env steps when the checkpoint was written."""
    stats: CurriculumStats

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": str(self.run_dir),
            "checkpoint": {
                "name": self.checkpoint.path.name,
                "env_steps": self.env_steps,
                "saved_at": self.checkpoint.created_at,
            },
            **self.stats.to_dict(),
        }


def _latest_curriculum(layout: RunLayout) -> tuple[Checkpoint, dict[str, Any], dict[str, Any]]:
    """The newest complete checkpoint, its curriculum state and its counters."""
    if not layout.checkpoints.is_dir():
        raise FileNotFoundError(f"no checkpoint in {layout.root} yet: {_WHEN}")
    manager = CheckpointManager(layout.checkpoints)
    for _ in range(_ATTEMPTS):
        checkpoint = manager.latest()
        if checkpoint is None:
            raise FileNotFoundError(f"no complete checkpoint in {layout.checkpoints}: {_WHEN}")
        entry = checkpoint.files.get("curriculum")
        if entry is None or entry.kind != "json":
            raise FileNotFoundError(
                f"checkpoint {checkpoint.path} holds no curriculum state (saved by an older "
                "autotelic); the next checkpoint of the service will"
            )
        try:
            curriculum = json.loads((checkpoint.path / entry.file).read_bytes())
            counters_entry = checkpoint.files.get("counters")
            counters: dict[str, Any] = {}
            if counters_entry is not None and counters_entry.kind == "json":
                counters = json.loads((checkpoint.path / counters_entry.file).read_bytes())
        except FileNotFoundError:
            continue  # pruned while we read it: a newer one exists now
        return checkpoint, curriculum, counters
    raise FileNotFoundError(f"checkpoints in {layout.checkpoints} kept changing while read")


_WHEN = "the service writes one every checkpoint.interval_s and when it stops"


@contextlib.contextmanager
def _state_store(layout: RunLayout) -> Iterator[ReadOnlyState]:
    if not layout.store.is_dir():
        yield ReadOnlyState(None)
        return
    store = EpisodeStore(layout.store, readonly=True)
    try:
        yield ReadOnlyState(store)
    finally:
        store.close()


def goals_report(run_dir: Path) -> GoalsReport:
    """Each known goal's competence, learning progress and sampling probability, and the
    per-category figures, as the curriculum of ``run_dir`` saw them at its newest
    checkpoint."""
    layout = RunLayout(run_dir)
    layout.require_run()
    settings = load_settings(layout.config)
    checkpoint, curriculum, counters = _latest_curriculum(layout)
    space = env_spec(settings.env.id).goal_space(settings.env)
    with _state_store(layout) as state:
        daemon = GoalDaemon(settings.curriculum, goal_space=space, store=state)
        daemon.load_state_dict(curriculum)
    return GoalsReport(
        run_dir=layout.root,
        checkpoint=checkpoint,
        env_steps=int(counters.get("env_steps", checkpoint.step)),
        stats=daemon.stats(detail=True),
    )
