"""Reading a run directory without disturbing the service that may be writing it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from autotelic.runtime.config import load_settings
from autotelic.runtime.evaluation import EvalResult, evaluate
from autotelic.runtime.service import CONFIG_SNAPSHOT
from autotelic.storage import CheckpointManager, EpisodeStore


@contextlib.contextmanager
def open_store_readonly(run_dir: Path) -> Iterator[EpisodeStore]:
    """The run's episode store, read-only (another process may be writing it)."""
    path = run_dir / "store"
    if not path.is_dir():
        raise FileNotFoundError(f"no episode store in {run_dir}")
    store = EpisodeStore(path, readonly=True)
    try:
        yield store
    finally:
        store.close()


def evaluate_checkpoint(
    run_dir: Path, *, episodes_per_goal: int = 2, seed: int = 12345
) -> list[EvalResult]:
    """Greedy and sampled success on training and held-out objects, from the newest
    complete checkpoint of ``run_dir`` (with the model its configuration names)."""
    from autotelic.learners.factory import build_learner

    config = run_dir / CONFIG_SNAPSHOT
    if not config.is_file():
        raise FileNotFoundError(f"{config} not found: is {run_dir} a run directory?")
    settings = load_settings(config)
    loaded = CheckpointManager(run_dir / "checkpoints").load()
    if loaded is None:
        raise FileNotFoundError(f"no complete checkpoint in {run_dir / 'checkpoints'}")
    learner = build_learner(settings.model, settings.algorithm)
    learner.load_state_dict(loaded.state["learner"])
    return [
        evaluate(
            learner,
            split=split,
            greedy=greedy,
            episodes_per_goal=episodes_per_goal,
            seed=seed,
            n_objects=settings.env.playground.n_objects,
        )
        for split in ("train", "test")
        for greedy in (True, False)
    ]
