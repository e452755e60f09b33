"""Reading a run directory without disturbing the service that may be writing it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from autotelic.core import algorithm_spec, env_spec
from autotelic.runtime.config import load_settings
from autotelic.runtime.evaluation import EvalResult, evaluate
from autotelic.storage import CheckpointManager, EpisodeStore, RunLayout


@contextlib.contextmanager
def open_store_readonly(run_dir: Path) -> Iterator[EpisodeStore]:
    """The run's episode store, read-only (another process may be writing it)."""
    path = RunLayout(run_dir).store
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
    """Greedy and sampled success on the training and held-out goals, from the newest
    complete checkpoint of ``run_dir`` (with the model and environment its configuration
    names)."""
    layout = RunLayout(run_dir)
    layout.require_run()
    settings = load_settings(layout.config)
    loaded = CheckpointManager(layout.checkpoints).load()
    if loaded is None:
        raise FileNotFoundError(f"no complete checkpoint in {layout.checkpoints}")
    learner = algorithm_spec(settings.algorithm.name).build(settings.model, settings.algorithm)
    learner.load_state_dict(loaded.state["learner"])
    spec = env_spec(settings.env.id)
    return [
        evaluate(
            learner,
            spec,
            settings.env,
            split=split,
            greedy=greedy,
            episodes_per_goal=episodes_per_goal,
            seed=seed,
            time_limit=settings.run.time_limit,
        )
        for split in ("train", "test")
        for greedy in (True, False)
    ]
