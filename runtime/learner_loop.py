"""The learner side of the loop: replayed batches (SAC) or rollouts (PPO) -> updates.

A :class:`LearnerLoop` does one unit of learning per :meth:`train_step` and
publishes what it measured to the metrics. It holds no thread of its own: the
serial driver calls it inline, the concurrent driver from a learner thread.
"""

from __future__ import annotations

import numpy as np

from autotelic.learners.base import Lock
from autotelic.learners.ppo import PPOLearner, PPORollout
from autotelic.learners.sac import SACLearner
from autotelic.runtime.metrics import Metrics, RateMeter
from autotelic.storage import ReplaySampler


class LearnerLoop:
    """Runs updates of one learner and reports them."""

    def __init__(
        self,
        learner: SACLearner | PPOLearner,
        *,
        sampler: ReplaySampler | None,
        batch_size: int,
        lock: Lock | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        if isinstance(learner, SACLearner) and sampler is None:
            raise ValueError("SAC needs a replay sampler")
        self.learner = learner
        self.sampler = sampler
        self.batch_size = batch_size
        self.lock = lock
        self.metrics = metrics
        self.last: dict[str, float] = {}
        self._updates_rate = RateMeter(metrics.updates_rate) if metrics is not None else None

    def train_step(self) -> dict[str, float]:
        """One SAC update on a freshly sampled batch."""
        if not isinstance(self.learner, SACLearner) or self.sampler is None:
            raise TypeError("train_step is the off-policy path; use train_on for PPO")
        batch = self.sampler.sample(self.batch_size)
        stats = self.learner.update(batch, write_lock=self.lock)
        if len(batch.policy_versions):
            stats["policy_lag"] = float(
                self.learner.policy_version - float(np.mean(batch.policy_versions))
            )
            stats["relabeled_share"] = (
                float(np.mean(batch.relabeled)) if len(batch.relabeled) else 0.0
            )
        self._publish(stats)
        return stats

    def train_on(self, rollout: PPORollout) -> dict[str, float]:
        """One PPO update (all its epochs) on an on-policy rollout."""
        if not isinstance(self.learner, PPOLearner):
            raise TypeError("train_on is the on-policy path; use train_step for SAC")
        stats = self.learner.update(rollout, write_lock=self.lock)
        self._publish(stats)
        return stats

    def _publish(self, stats: dict[str, float]) -> None:
        self.last = stats
        m = self.metrics
        if m is None or self._updates_rate is None:
            return
        m.updates.inc()
        m.policy_version.set(self.learner.policy_version)
        for keys, gauge in (
            (("critic_loss", "value_loss"), m.critic_loss),  # PPO's critic is its value head
            (("actor_loss", "policy_loss"), m.actor_loss),
            (("alpha",), m.alpha),
            (("policy_lag",), m.policy_lag),
        ):
            for key in keys:
                if key in stats:
                    gauge.set(stats[key])
        self._updates_rate.update(self.learner.num_updates)
