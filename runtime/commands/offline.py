"""Reading a run directory without disturbing the service that may be writing it."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from autotelic.storage import CheckpointManager, EpisodeStore, RunLayout, StorageError
from autotelic.storage.errors import StoreDamagedError, salvage_hint
from autotelic.storage.integrity import read_store
from autotelic.storage.records import decode_episode
from autotelic.storage.salvage import SalvageReport, salvage_store

if TYPE_CHECKING:
    from autotelic.core import Learner
    from autotelic.runtime.config import Settings
    from autotelic.runtime.evaluation.evaluate import EvalResult


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


def _store_dir(run_dir: Path) -> Path:
    path = RunLayout(run_dir).store
    if not (path / "data.mdb").is_file():
        raise FileNotFoundError(f"no episode store in {run_dir}")
    return path


@dataclass
class StoreReport:
    """What reading every record of a run's store found (``replay verify`` and ``export``)."""

    path: Path
    episodes: int = 0
    """Episodes that were read and decoded (and, for an export, written)."""
    unreadable: list[int] = field(default_factory=list)
    """Ids the store should hold that could not be read."""
    unreadable_state: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """What is wrong with the files' structure."""

    @property
    def damaged(self) -> bool:
        return bool(self.unreadable or self.unreadable_state or self.problems)

    def summary(self) -> str:
        """One line: healthy, or what is lost and how to recover the rest."""
        if not self.damaged:
            return f"{self.path}: {self.episodes} episodes, all readable"
        parts = [f"{self.episodes} episodes readable"]
        if self.unreadable:
            shown = ", ".join(map(str, self.unreadable[:10]))
            more = ", ..." if len(self.unreadable) > 10 else ""
            parts.append(f"{len(self.unreadable)} unreadable (ids {shown}{more})")
        if self.unreadable_state:
            parts.append(f"state keys unreadable: {', '.join(self.unreadable_state[:5])}")
        if self.problems:
            parts.append(f"{len(self.problems)} structural problems, first: {self.problems[0]}")
        return f"{self.path} is damaged: {'; '.join(parts)}; {salvage_hint(self.path)}"


Progress = Callable[[int, int], None]
"""Hears (records read, records in the store) while a store is read."""


def _check_store(run_dir: Path, out: IO[str] | None, progress: Progress | None) -> StoreReport:
    """Read every record, through LMDB while the store's structure is sound (safe while the
    service writes), else page by page without it; write each episode to ``out``."""
    path = _store_dir(run_dir)
    report = StoreReport(path)
    try:
        with open_store_readonly(run_dir) as store, contextlib.ExitStack() as stack:
            unreadable: list[int] = []
            sink = out or stack.enter_context(Path(os.devnull).open("w", encoding="utf-8"))
            total = len(store)
            heard = None if progress is None else functools.partial(_heard, progress, total)
            report.episodes = store.export_jsonl(sink, unreadable=unreadable, progress=heard)
            report.unreadable = unreadable
            for key in store.state_keys():
                try:
                    store.get_state(key)
                except StorageError:
                    report.unreadable_state.append(key)
            return report
    except StoreDamagedError as err:
        report.problems.append(err.reason)
    contents = read_store(path)
    report.problems += [p for p in contents.problems if p not in report.problems]
    report.unreadable = contents.unreadable
    report.unreadable_state = contents.unreadable_state
    for episode_id, data in contents.episodes.items():
        if out is not None:
            out.write(decode_episode(episode_id, data).model_dump_json())
            out.write("\n")
        report.episodes += 1
    return report


def _heard(progress: Progress, total: int, read: int) -> None:
    progress(read, total)


def verify_run(run_dir: Path, progress: Progress | None = None) -> StoreReport:
    """Read and decode every record of the run's store; nothing is written anywhere."""
    return _check_store(run_dir, None, progress)


def export_run(run_dir: Path, out: IO[str], progress: Progress | None = None) -> StoreReport:
    """Write every readable episode of the run's store to ``out`` as JSON lines, even when
    the store is damaged; the report lists what could not be read."""
    return _check_store(run_dir, out, progress)


def salvage_run(run_dir: Path, out_dir: Path) -> SalvageReport:
    """Copy every readable record of the run's store into ``<out_dir>/store``."""
    return salvage_store(_store_dir(run_dir), RunLayout(out_dir).store)


def evaluate_checkpoint(
    run_dir: Path,
    *,
    episodes_per_goal: int = 2,
    seed: int = 12345,
    progress: Callable[[int, int], None] | None = None,
) -> list[EvalResult]:
    """Greedy and sampled success on the training and held-out goals, from the newest
    complete checkpoint of ``run_dir`` (with the model and environment its configuration
    names). ``progress`` hears (episodes finished, episodes in all) as they end."""
    from autotelic.core import env_spec
    from autotelic.runtime.evaluation.evaluate import evaluate

    settings, learner, _ = checkpoint_learner(run_dir)
    spec = env_spec(settings.env.id)
    splits: tuple[Literal["train", "test"], ...] = ("train", "test")
    runs = [(split, greedy) for split in splits for greedy in (True, False)]
    space = spec.goal_space(settings.env)
    total = sum(len(space.goals(split)) for split, _ in runs) * episodes_per_goal
    results: list[EvalResult] = []
    for split, greedy in runs:
        base = sum(r.episodes for r in results)
        results.append(
            evaluate(
                learner,
                spec,
                settings.env,
                split=split,
                greedy=greedy,
                episodes_per_goal=episodes_per_goal,
                seed=seed,
                time_limit=settings.run.time_limit,
                progress=None if progress is None else _offset(progress, base, total),
            )
        )
    return results


def checkpoint_learner(
    run_dir: Path, model_update: Mapping[str, Any] | None = None
) -> tuple[Settings, Learner, int]:
    """The run's settings (from its config.yaml), its learner built and restored from the
    newest complete checkpoint, and that checkpoint's step: what ``eval`` and ``export``
    start from. ``model_update`` changes model settings that do not change the weights
    (the device, autocast)."""
    # Imported here: the model stack (torch) costs seconds, and the store commands need none.
    from autotelic.core import algorithm_spec
    from autotelic.runtime.config import load_settings

    layout = RunLayout(run_dir)
    layout.require_run()
    settings = load_settings(layout.config)
    loaded = CheckpointManager(layout.checkpoints).load()
    if loaded is None:
        raise FileNotFoundError(f"no complete checkpoint in {layout.checkpoints}")
    model = settings.model.model_copy(update=dict(model_update or {}))
    saved = loaded.state["learner"].get("model") or {}
    if model.frozen_layers == "auto" and isinstance(saved.get("frozen_layers"), int):
        # As the run decided it (auto depends on the device, which export changes).
        model = model.model_copy(update={"frozen_layers": saved["frozen_layers"]})
    learner = algorithm_spec(settings.algorithm.name).build(model, settings.algorithm)
    learner.load_state_dict(loaded.state["learner"])
    return settings, learner, loaded.step


def export_checkpoint(run_dir: Path, out: Path) -> Path:
    """Write the policy of the run's newest complete checkpoint to ``out`` as a plain
    Hugging Face model folder (LoRA merged), on the CPU and without autocast, so the
    weights written are the float32 masters and the frozen base as loaded."""
    from autotelic.learners.base import LLMLearner
    from autotelic.learners.export import check_export_folder, export_policy

    check_export_folder(out)  # before the checkpoint and the model load
    settings, learner, step = checkpoint_learner(run_dir, {"device": "cpu", "autocast": "off"})
    if not isinstance(learner, LLMLearner):
        raise TypeError(f"{type(learner).__name__} has no LLM policy to export")
    source = {
        "run": str(run_dir.resolve()),
        "checkpoint_step": step,
        "algorithm": settings.algorithm.name,
        "policy_version": learner.policy_version,
        "base_model": settings.model.path,
        "finetune": settings.model.finetune,
    }
    return export_policy(learner.model, out, source, settings.run.time_limit)


def _offset(progress: Callable[[int, int], None], base: int, total: int) -> Callable[[int], None]:
    """One evaluation's finished count as a count over all of them."""
    return lambda finished: progress(base + finished, total)
