"""The learner side of the loop: replayed batches or rollouts -> updates -> metrics.

A :class:`LearnerLoop` does one unit of learning per call and reports every stat
the update returned, whatever its key, as the ``learner_stats`` event of the run's
event stream (every sink: Prometheus, ``learner_stats.csv``, TensorBoard, W&B, MLflow,
yours), with the update count as the step. It reads no key, and adds three
of its own (policy lag, relabeled share, policy version), so a plug-in's stat
reaches every sink without a change here. It holds no thread of its own: the
serial driver calls it inline, the concurrent one from a learner thread. It
knows the two learner kinds of :mod:`autotelic.core`, never a specific algorithm;
an off-policy learner whose ``update`` also takes ``progress`` (a callback given
the share of the update done, e.g. after each micro-batch) gets one, so a long
update lets the collector move before it ends.

Python's cyclic garbage collector is kept out of the update itself: an update
allocates many short-lived autograd objects, enough to trigger a few
generation-0 passes, each walking every tracked object (5% of a tiny model's
update). It is paused for the update and runs once after, where it frees the
same cycles.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import cast

import numpy as np

from autotelic.core import (
    Learner,
    Lock,
    OffPolicyLearner,
    OnPolicyLearner,
    ProgressReporting,
    Rollout,
)
from autotelic.runtime.telemetry.events import RunEvents
from autotelic.storage import ReplaySampler


class LearnerLoop:
    """Runs updates of one learner and reports them."""

    def __init__(
        self,
        learner: Learner,
        *,
        lock: Lock | None = None,
        events: RunEvents | None = None,
    ) -> None:
        self.learner = learner
        self.lock = lock
        self.events = events or RunEvents()
        self.last: dict[str, float] = {}
        self.transitions_learned = 0
        """Transitions (or rollout steps) the updates of this loop consumed."""
        self.pause_gc = True
        """Pause the garbage collector during each update (off: benchmarks measure it)."""

    def train_step(
        self,
        sampler: ReplaySampler,
        batch_size: int,
        progress: Callable[[float], None] | None = None,
    ) -> dict[str, float]:
        """One off-policy update on a freshly sampled batch; ``progress`` hears the share
        done after each micro-batch, when the learner reports it."""
        learner = cast(OffPolicyLearner, self.learner)  # the driver feeds each kind its data
        batch = sampler.sample(batch_size)
        with gc_paused(self.pause_gc):
            if progress is not None and isinstance(learner, ProgressReporting):
                stats = learner.update(batch, write_lock=self.lock, progress=progress)
            else:
                stats = learner.update(batch, write_lock=self.lock)
        self.transitions_learned += len(batch)
        if len(batch.policy_versions):
            stats["policy_lag"] = float(
                self.learner.policy_version - float(np.mean(batch.policy_versions))
            )
            stats["relabeled_share"] = (
                float(np.mean(batch.relabeled)) if len(batch.relabeled) else 0.0
            )
        self._publish(stats)
        return stats

    def train_on(self, rollout: Rollout) -> dict[str, float]:
        """One on-policy update (all its epochs) on the rollout just collected."""
        learner = cast(OnPolicyLearner, self.learner)
        with gc_paused(self.pause_gc):
            stats = learner.update(rollout, write_lock=self.lock)
        self.transitions_learned += rollout.num_steps
        self._publish(stats)
        return stats

    def _publish(self, stats: dict[str, float]) -> None:
        """Keep the stats for the progress row and report them all, keys unread."""
        stats["policy_version"] = float(self.learner.policy_version)
        self.last = stats
        self.events.learner_stats(self.learner.num_updates, stats)


@contextlib.contextmanager
def gc_paused(pause: bool = True) -> Iterator[None]:
    """The garbage collector off inside (when ``pause``), then one young-generation pass.

    Process-wide: a collector thread's allocations meanwhile wait for that pass
    too, which is harmless (cycles are freed a few milliseconds later). A
    collector already disabled by the caller stays disabled.
    """
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect(0)
