"""The driver's side of collection: collector actors started, called and accounted for.

:class:`ClusterCollection` is what the agent collects with under the Ray backend
(:class:`~autotelic.runtime.loop.parts.Collection`): it starts the actors, asks one for a
batch of steps (with the newest weights' reference), and commits what ended through the
runtime's :class:`~autotelic.runtime.loop.collector.EpisodeCommitter` (stored durably in one
transaction, then reported to the goal daemon, counted and announced), exactly the tail
the local collector runs. An actor whose process died is restarted by Ray; the call
that was in flight fails, and so does every call until the new process is up: the
death counts as one restart, and the next call that succeeds goes to the new process. The
injected episodes the dead process held are handed back to the goal daemon at once
(``on_death``), to be served again rather than wait for their injection to expire.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from autotelic.core import Rollout
from autotelic.distributed.actors.collector import CollectorActor, CollectorSpec
from autotelic.distributed.records import ActorView, CollectedBatch
from autotelic.distributed.weights import WeightsBoard
from autotelic.runtime.config import RayConfig
from autotelic.runtime.loop.collector import (
    CommittedCounts,
    EpisodeCommitter,
    FinishedEpisode,
)
from autotelic.runtime.loop.rollout import RolloutRecorder
from autotelic.runtime.telemetry.events import RunEvents

log = logging.getLogger(__name__)

RATE_WINDOW = 8
"""Recent calls per actor its steps per second are measured over."""


class ClusterCollection(CommittedCounts):
    """Collector actors, the weights board they read, and the commit of what they collect."""

    recorder: RolloutRecorder | None = None
    """Rollouts are recorded in the actors and gathered by the on-policy schedule."""

    def __init__(
        self,
        config: RayConfig,
        specs: list[CollectorSpec],
        committer: EpisodeCommitter,
        board: WeightsBoard,
        *,
        current_version: Callable[[], int],
        events: RunEvents | None = None,
        on_death: Callable[[int, dict[str, int]], None] | None = None,
    ) -> None:
        self.config = config
        self.specs = specs
        self.committer = committer
        self.board = board
        self.current_version = current_version
        self.events = events or RunEvents()
        self.env_steps = 0
        self.actors: list[Any] = []
        self.views = [ActorView(actor=s.index) for s in specs]
        self.rollout_steps = [0] * len(specs)
        self._commit_lock = threading.Lock()
        self.ray_seconds = 0.0
        """Driver seconds spent waiting on calls beyond the actors' own collect time."""
        self.on_death = on_death
        """Told (actor, injected episodes committed from its process by injection id) when
        an actor's process died: the goal daemon serves again what it held."""
        self.committed: list[Counter[str]] = [Counter() for _ in specs]

    # -- the Collection protocol ---------------------------------------------------------------

    @property
    def prompts(self) -> list[str]:
        """Prompts live in the actors; nothing here asks for them."""
        return []

    def start(self, seed: int) -> None:
        """Start the actors (their seeds are in their specs; ``seed`` is not needed)."""
        c = self.config
        options: dict[str, Any] = {
            "num_cpus": c.collector_num_cpus,
            "num_gpus": c.collector_num_gpus,
            "max_restarts": c.max_restarts,
            "max_task_retries": 0,  # a lost call is lost: its episodes were not announced
            "scheduling_strategy": "SPREAD",
        }
        if c.collector_resources:
            options["resources"] = dict(c.collector_resources)
        self.events.actors_started([str(spec.index) for spec in self.specs])
        remote = ray.remote(CollectorActor)
        self.actors = [remote.options(**options).remote(spec) for spec in self.specs]
        for view, (pid, ip) in zip(
            self.views, ray.get([a.where.remote() for a in self.actors]), strict=True
        ):
            view.pid, view.node_ip = pid, ip
        log.info(
            "%d collector actors on %s",
            len(self.actors),
            ", ".join(sorted({v.node_ip for v in self.views})),
        )

    def step(self) -> list[FinishedEpisode]:
        """One call of every actor, side by side, and the commit of what they collected."""
        refs = [self._call(i) for i in range(len(self.actors))]
        finished: list[FinishedEpisode] = []
        for i, ref in enumerate(refs):
            batch = self._result(i, ref)
            if batch is not None:
                finished += self.commit(batch)
        return finished

    # -- driving one actor ---------------------------------------------------------------------

    def _call(self, i: int) -> Any:
        latest = self.board.latest
        return self.actors[i].collect.remote(
            self.config.steps_per_call, [latest] if latest is not None else []
        )

    def _result(self, i: int, ref: Any) -> CollectedBatch | None:
        view = self.views[i]
        began = time.perf_counter()
        try:
            batch: CollectedBatch = ray.get(ref)
        except (ActorDiedError, ActorUnavailableError, RayActorError) as err:
            if view.alive:
                # The first call lost with this process: every further one fails until Ray
                # has restarted it, and is the same death.
                self._restarted(i)
                self._requeue(i)
                log.warning(
                    "collector actor %d lost its call (%s); Ray restarts it, its unfinished "
                    "episodes are lost",
                    i,
                    type(err).__name__,
                )
            view.alive = False
            time.sleep(0.5)
            return None
        if view.alive and view.pid and batch.pid != view.pid:
            self._restarted(i)  # died and came back between two calls: no call was lost
        self.ray_seconds += max(0.0, time.perf_counter() - began - batch.seconds)
        view.alive = True
        return batch

    def _requeue(self, i: int) -> None:
        with self._commit_lock:
            committed, self.committed[i] = dict(self.committed[i]), Counter()
        if self.on_death is None:
            return
        try:
            self.on_death(i, committed)
        except Exception:  # the goal actor restarting too: the episodes wait for their ttl
            log.warning("collector actor %d: its injected episodes not requeued", i, exc_info=True)

    def _restarted(self, i: int) -> None:
        """Count one death of actor ``i``'s process (``restarts`` counts processes, not the
        calls that failed while Ray brought a new one up)."""
        self.views[i].restarts += 1
        self.events.actor_restarted(str(i))

    def collect(self, i: int) -> list[FinishedEpisode]:
        """One call of actor ``i`` and the commit of what it collected (a driver thread's
        unit of work)."""
        batch = self._result(i, self._call(i))
        return [] if batch is None else self.commit(batch)

    def commit(self, batch: CollectedBatch) -> list[FinishedEpisode]:
        """Store the batch's ended episodes in one transaction, then report and announce
        them (the committer), count its steps and update the actor's view."""
        finished: list[FinishedEpisode] = []
        with self._commit_lock:
            if batch.ended:
                # One transaction: the committer takes one acting version, the newest,
                # for the announcement; each stored step keeps its own.
                ended = [(e.episode, e.assignment) for e in batch.ended]
                finished = self.committer.commit(ended, max(e.version for e in batch.ended))
                self.committed[batch.actor].update(
                    e.assignment.injection_id
                    for e in batch.ended
                    if e.assignment.injection_id is not None
                )
            self.env_steps += batch.env_steps
            self.rollout_steps[batch.actor] = batch.rollout_steps
        self._account(batch, len(finished))
        return finished

    def _account(self, batch: CollectedBatch, episodes: int) -> None:
        view = self.views[batch.actor]
        view.pid, view.node_ip = batch.pid, batch.node_ip
        view.env_steps += batch.env_steps
        view.episodes += episodes
        view.recent = [*view.recent[-(RATE_WINDOW - 1) :], (batch.seconds, batch.env_steps)]
        seconds = sum(s for s, _ in view.recent)
        view.steps_per_s = sum(n for _, n in view.recent) / seconds if seconds > 0 else 0.0
        if batch.acting_versions:
            view.policy_version = batch.acting_versions[-1]
        view.lag = max(0, self.current_version() - view.policy_version)
        self.events.env_steps(batch.env_steps)
        self.events.actor_progress(str(batch.actor), batch.env_steps, view.steps_per_s, view.lag)

    # -- on-policy ---------------------------------------------------------------------------

    def gather_rollout(self) -> Rollout | None:
        """Every actor's rollout since the last gathering, as one (None if all are empty)."""
        trajectories = []
        for i, ref in enumerate([a.take_rollout.remote() for a in self.actors]):
            try:
                part: Rollout | None = ray.get(ref)
            except (ActorDiedError, ActorUnavailableError, RayActorError):
                log.warning("collector actor %d lost its rollout (restarting)", i)
                part = None
            if part is not None:
                trajectories += part.trajectories
            self.rollout_steps[i] = 0
        return Rollout(trajectories) if trajectories else None

    # -- ending ------------------------------------------------------------------------------

    def close(self) -> None:
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone with the cluster
                log.debug("collector actor already gone", exc_info=True)
        self.actors = []
