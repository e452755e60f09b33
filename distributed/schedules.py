"""On-policy learning from rollouts gathered from every collector actor.

The local :class:`~autotelic.runtime.loop.schedules.OnPolicySchedule` updates inline, in the
collector's thread, on its own recorder. With several actors, each records its own
rollout; once they hold ``steps_per_update`` steps between them, collection pauses
(the drivers' ``may_collect`` says no), the calls in flight finish, the learner
gathers every actor's rollout into one :class:`~autotelic.core.Rollout`, updates on
it, publishes the new weights, and collection resumes with them. Every step of a
rollout was thus taken by the policy of the previous update.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from autotelic.distributed.collection import ClusterCollection
from autotelic.runtime.loop.coordination import TimeShares
from autotelic.runtime.loop.learner_loop import LearnerLoop


class GatheredOnPolicySchedule:
    """One update on the rollouts of all actors every ``steps_per_update`` steps."""

    learner_thread = True

    def __init__(
        self,
        loop: LearnerLoop,
        collection: ClusterCollection,
        steps_per_update: int,
        *,
        after_update: Callable[[], None],
    ) -> None:
        self.loop = loop
        self.collection = collection
        self.steps_per_update = steps_per_update
        self.after_update = after_update
        self.shares = TimeShares()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._stopped = False

    def _due(self) -> bool:
        return sum(self.collection.rollout_steps) >= self.steps_per_update

    def may_collect(self, timeout: float) -> bool:
        """Wait while an update is due; on True, the caller owes :meth:`collected`."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._stopped or not self._due(), timeout):
                return False
            if self._stopped:
                return False
            self._in_flight += 1
            return True

    def collected(self) -> None:
        """A call that :meth:`may_collect` let through has been committed."""
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def learn_once(self, timeout: float) -> bool:
        with self._cond:
            ready = self._cond.wait_for(
                lambda: self._stopped or (self._due() and self._in_flight == 0), timeout
            )
            if not ready or self._stopped:
                return False
        with self.shares.timing("learning"):
            rollout = self.collection.gather_rollout()
            if rollout is not None:
                self.loop.train_on(rollout)
                self.after_update()
        with self._cond:
            self._cond.notify_all()
        return rollout is not None

    def after_collect(self) -> None:
        """Learning runs in the learner thread."""

    def record_steps(self, n: int) -> None:
        """Rollout steps are counted by the actors."""

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
