"""The Ray backend's driver: how a run whose collectors are actors advances.

As a service: one driver thread per collector actor (each calls its actor for a batch
of steps and commits what ended, after the schedule's back-pressure check, exactly as
the local collector thread does), the learner thread (publishing the trainable weights
every ``ray.weights_every_updates`` off-policy updates; a gathered on-policy update
publishes its own), a relay of the goal actor's injection reports to the run, and the
evaluator. Serially (tests): one call of every actor side by side, then the learning
it made due.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from autotelic.distributed.collection import ClusterCollection
from autotelic.distributed.goal_actor import GoalDaemonClient
from autotelic.distributed.schedules import GatheredOnPolicySchedule
from autotelic.runtime.config import RayConfig
from autotelic.runtime.loop.drivers import evaluator_workers, learn_forever
from autotelic.runtime.loop.parts import Run, Worker

REPORT_POLL_S = 0.25
"""How often injection reports are fetched from the goal actor."""


class RayPieces(Protocol):
    """What the driver uses of the Ray backend's parts
    (:class:`~autotelic.distributed.backend.RayParts`)."""

    config: RayConfig
    cluster: ClusterCollection
    goal_client: GoalDaemonClient | None
    gathered: GatheredOnPolicySchedule | None

    def publish(self, run: Run) -> None:
        """The learner's trainable weights to the actors."""
        ...


class RayDriver:
    """Actor driver threads, the learner thread and the report relay (module docstring)."""

    def __init__(self, run: Run, parts: RayPieces) -> None:
        self.run = run
        self.parts = parts

    def step(self) -> None:
        run, parts = self.run, self.parts
        run.collection.step()
        run.schedule.after_collect()
        if parts.gathered is not None:
            parts.gathered.learn_once(timeout=0)
        elif run.learner.num_updates % parts.config.weights_every_updates == 0:
            parts.publish(run)

    def workers(self) -> list[Worker]:
        actors = range(len(self.parts.cluster.actors))
        return [
            *(Worker(f"collector-{i}", self._drive(i)) for i in actors),
            Worker("learner", lambda: learn_forever(self.run, self._after_learning), daemon=True),
            Worker("goal-reports", self._relay_reports, safe_points=False, daemon=True),
            *evaluator_workers(self.run),
        ]

    def _drive(self, i: int) -> Callable[[], None]:
        def body() -> None:
            run, gathered = self.run, self.parts.gathered
            name = f"collector-{i}"
            while not run.done:
                run.points.checkpoint(name)
                if not run.schedule.may_collect(timeout=0.5):
                    continue
                try:
                    self.parts.cluster.collect(i)
                finally:
                    if gathered is not None:
                        gathered.collected()
            run.stop()

        return body

    def _after_learning(self, learned: bool) -> None:
        every = self.parts.config.weights_every_updates
        if learned and self.parts.gathered is None and self.run.learner.num_updates % every == 0:
            self.parts.publish(self.run)

    def _relay_reports(self) -> None:
        while not self.run.stopping.wait(REPORT_POLL_S):
            self._relay_once()
        self._relay_once()

    def _relay_once(self) -> None:
        client = self.parts.goal_client
        assert client is not None
        for report in client.take_reports():
            self.run.on_report(report)
