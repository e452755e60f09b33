"""The goal daemon as a named Ray actor, and the client every process talks to it through.

One :class:`~autotelic.goals.GoalDaemon` (registry, learning-progress curriculum,
injection queue) serves every collector actor: they ask it for next goals, the store
writer reports each stored episode's outcome. Being named, it is found by name: runs
that give the same ``ray.goal_daemon_name`` draw from one curriculum.

Persistence is the daemon's own, unchanged: registry and injection queue (and, with
the MQTT bridge, the durable outbox of results) are written as they change, to an
LMDB state table in ``ray.goal_daemon_dir`` on the driver's node, where the actor is
pinned; its learning state goes into the service's checkpoints through
:meth:`GoalDaemonClient.state_dict`, as in local mode.

Ray runs an actor's calls one at a time, so the daemon sees no concurrency. Reports
on injections are queued in the actor and fetched by the service
(:meth:`GoalDaemonClient.take_reports`), which relays them to MQTT.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from autotelic.core import EnvConfig, env_spec, load_plugins
from autotelic.goals import (
    CurriculumConfig,
    CurriculumStats,
    EpisodeOutcome,
    GoalAssignment,
    GoalDaemon,
    GoalRecord,
    Injection,
    InjectionRejected,
    InjectionReport,
)
from autotelic.storage import EpisodeStore

log = logging.getLogger(__name__)

STATE_CAPACITY = 1000
"""Transitions the goal actor's store would keep: it holds only the daemon's state table."""
LEARNING_STATE_KEY = "goal_actor/checkpointed_state"
"""Where the actor keeps the curriculum state of the service's latest checkpoint, to start
from it when Ray restarts the actor's process."""


class GoalActor:
    """A :class:`GoalDaemon` in an actor of its own, on its own LMDB state table."""

    def __init__(
        self,
        curriculum: CurriculumConfig,
        env: EnvConfig,
        plugins: list[str],
        state_dir: str,
        keep_results: bool,
    ) -> None:
        load_plugins(plugins)
        goal_space = env_spec(env.id).goal_space(env)
        self.store = EpisodeStore(Path(state_dir), capacity_transitions=STATE_CAPACITY)
        self._reports: list[InjectionReport] = []
        self.daemon = GoalDaemon(
            curriculum,
            goal_space=goal_space,
            store=self.store,
            on_report=self._reports.append,
            keep_results=keep_results,
        )
        self.outcomes = 0
        """Outcomes reported since this actor started."""
        self.handed: dict[int, Counter[str]] = {}
        """Per collector actor, the injected episodes handed to it, by injection id."""
        self.restored = self._restore()
        """Whether this process started from the state of the latest checkpoint (Ray
        restarted the actor after its process died)."""

    def _restore(self) -> bool:
        """After a restart by Ray, the learning state of the service's latest checkpoint.

        Registry and injections are in the daemon's own state table already; the learning
        state (competence and progress estimates) was only in the dead process. The
        service would restore it only when it restarts itself.
        """
        saved = self.store.get_state(LEARNING_STATE_KEY)
        if saved is None:
            return False
        try:
            self.daemon.load_state_dict(saved)
        except (ValueError, KeyError, TypeError) as err:
            log.warning("goal actor: the saved curriculum state does not load (%s)", err)
            return False
        log.info("goal actor restarted: curriculum state of the latest checkpoint restored")
        return True

    def next_goals(self, n: int, holder: int | None = None) -> list[GoalAssignment]:
        goals = self.daemon.next_goals(n)
        if holder is not None:
            handed = self.handed.setdefault(holder, Counter())
            handed.update(g.injection_id for g in goals if g.injection_id is not None)
        return goals

    def requeue_lost(self, holder: int, committed: dict[str, int]) -> int:
        """Serve again, at once, the injected episodes collector ``holder`` held when its
        process died: those handed to it whose episode the driver did not commit.

        Without this they would count as in flight until their injection expired. Returns
        the episodes requeued; the holder's account starts afresh (its new process).
        """
        handed = self.handed.pop(holder, Counter())
        requeued = 0
        for injection_id, count in handed.items():
            lost = count - committed.get(injection_id, 0)
            injection = self.daemon.injections.get(injection_id)
            if lost <= 0 or injection is None or injection.expired:
                continue
            back = min(lost, injection.in_flight)
            injection.dispatched -= back
            requeued += back
        if requeued:
            log.info("goal actor: %d injected episodes of collector %d requeued", requeued, holder)
        return requeued

    def handed_to(self, holder: int) -> dict[str, int]:
        """The injected episodes handed to collector ``holder`` so far, by injection id
        (what :meth:`requeue_lost` weighs against the episodes committed)."""
        return dict(self.handed.get(holder, Counter()))

    def report(self, outcome: EpisodeOutcome) -> list[GoalRecord]:
        found = self.daemon.report(outcome)
        self.outcomes += 1
        return found

    def inject(
        self,
        goal: str,
        episodes: int,
        priority: int,
        expires_at: float | None,
        ttl: float | None,
    ) -> Injection | tuple[str, object]:
        """The accepted injection, or (reason, goal) of a rejection: a value rather than
        the exception, whose arguments do not survive pickling."""
        try:
            return self.daemon.inject(
                goal, episodes, priority=priority, expires_at=expires_at, ttl=ttl
            )
        except InjectionRejected as err:
            return (err.reason, err.goal)

    def take_reports(self) -> list[InjectionReport]:
        """Injection reports since the last call (the service relays them)."""
        reports = list(self._reports)
        self._reports.clear()  # the same list: the daemon's callback appends to it
        return reports

    def goals(self) -> list[GoalRecord]:
        return self.daemon.goals()

    def stats(self, detail: bool) -> CurriculumStats:
        return self.daemon.stats(detail)

    def results_pending(self) -> int:
        return self.daemon.results_pending

    def owed_results(self) -> list[dict[str, Any]]:
        return self.daemon.owed_results()

    def acknowledge(self, message_id: str) -> bool:
        return self.daemon.acknowledge(message_id)

    def state_dict(self) -> dict[str, Any]:
        """The curriculum's part of a checkpoint, also kept in the actor's state table for
        the process Ray would start if this one died."""
        state = self.daemon.state_dict()
        try:
            self.store.put_state(LEARNING_STATE_KEY, state)
        except ValueError as err:
            log.warning("goal actor: curriculum state not kept for a restart (%s)", err)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.daemon.load_state_dict(state)

    def persist(self) -> None:
        self.daemon.persist()

    def outcomes_received(self) -> int:
        return self.outcomes

    def pid(self) -> int:
        import os

        return os.getpid()

    def was_restored(self) -> bool:
        return self.restored


class GoalDaemonClient:
    """The daemon's interface (:class:`~autotelic.runtime.loop.parts.CurriculumService`),
    each call a blocking call of the goal actor."""

    def __init__(self, handle: Any, holder: int | None = None) -> None:
        self.handle = handle
        self.holder = holder
        """The collector actor this client serves (its injected episodes are accounted
        for, so that they are served again if its process dies); None for the driver."""

    def next_goals(self, n: int) -> list[GoalAssignment]:
        goals: list[GoalAssignment] = ray.get(self.handle.next_goals.remote(n, self.holder))
        return goals

    def requeue_lost(self, holder: int, committed: dict[str, int]) -> int:
        """See :meth:`GoalActor.requeue_lost`."""
        requeued: int = ray.get(self.handle.requeue_lost.remote(holder, committed))
        return requeued

    def report(self, outcome: EpisodeOutcome) -> list[GoalRecord]:
        found: list[GoalRecord] = ray.get(self.handle.report.remote(outcome))
        return found

    def inject(
        self,
        goal: str,
        episodes: int = 1,
        *,
        priority: int = 0,
        expires_at: float | None = None,
        ttl: float | None = None,
    ) -> Injection:
        answer: Injection | tuple[str, object] = ray.get(
            self.handle.inject.remote(goal, episodes, priority, expires_at, ttl)
        )
        if isinstance(answer, tuple):
            reason, rejected = answer
            raise InjectionRejected(str(reason), rejected)
        assert isinstance(answer, Injection)
        return answer

    def take_reports(self) -> list[InjectionReport]:
        reports: list[InjectionReport] = ray.get(self.handle.take_reports.remote())
        return reports

    def goals(self) -> list[GoalRecord]:
        records: list[GoalRecord] = ray.get(self.handle.goals.remote())
        return records

    def stats(self, detail: bool = False) -> CurriculumStats:
        stats: CurriculumStats = ray.get(self.handle.stats.remote(detail))
        return stats

    @property
    def results_pending(self) -> int:
        pending: int = ray.get(self.handle.results_pending.remote())
        return pending

    def owed_results(self) -> list[dict[str, Any]]:
        owed: list[dict[str, Any]] = ray.get(self.handle.owed_results.remote())
        return owed

    def acknowledge(self, message_id: str) -> bool:
        return bool(ray.get(self.handle.acknowledge.remote(message_id)))

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = ray.get(self.handle.state_dict.remote())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ray.get(self.handle.load_state_dict.remote(state))

    def persist(self) -> None:
        ray.get(self.handle.persist.remote())

    def outcomes_received(self) -> int:
        """Outcomes the actor was told of since it started."""
        received: int = ray.get(self.handle.outcomes_received.remote())
        return received


def goal_actor(
    name: str,
    namespace: str,
    *,
    curriculum: CurriculumConfig,
    env: EnvConfig,
    plugins: list[str],
    state_dir: Path,
    keep_results: bool,
    detached: bool,
) -> tuple[Any, bool]:
    """The goal actor called ``name``, created on this node if no run made it yet;
    returns its handle and whether this call created it."""
    try:
        found = ray.get_actor(name, namespace=namespace)
        ray.get(found.pid.remote())
        return found, False
    except ValueError:  # no actor of that name
        pass
    except RayActorError:  # one that is gone for good (its run ended); start afresh
        log.info("goal daemon actor %r had ended; starting it again", name)
    state_dir.mkdir(parents=True, exist_ok=True)
    here = ray.get_runtime_context().get_node_id()
    options: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "get_if_exists": True,
        "num_cpus": 0,
        "max_restarts": -1,
        # Its state table is a folder on this node: it lives here.
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=here, soft=False),
    }
    if detached:
        options["lifetime"] = "detached"
    handle: Any = (
        ray.remote(GoalActor)
        .options(**options)
        .remote(curriculum, env, plugins, str(state_dir), keep_results)
    )
    ray.get(handle.pid.remote())  # built (or failed) before anyone uses it
    log.info("goal daemon actor %r started in namespace %r", name, namespace)
    return handle, True
