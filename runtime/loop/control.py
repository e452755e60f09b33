"""The control interface: what whoever controls a run asks of it and hears from it, in
plain values that name no transport.

:class:`Control` is the whole of it: :meth:`~Control.inject` returns an
:class:`Accepted` (or raises :class:`~autotelic.goals.InjectionRejected` with the
reason), :meth:`~Control.status` an :class:`AgentStatus`, :meth:`~Control.subscribe`
adds listeners of stored episodes (:class:`FinishedEpisode`), injection reports and
evaluations, and :meth:`~Control.owed_results` / :meth:`~Control.acknowledge` settle the
injection results the goal daemon keeps durably. The MQTT bridge maps them to and from
its JSON payloads (:mod:`autotelic.runtime.transport.messages`,
:mod:`autotelic.runtime.transport.relay`); another control transport (HTTP, gRPC, a
notebook) maps them its own way without touching the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from autotelic.goals import InjectionRejected, InjectionReport
from autotelic.runtime.evaluation.periodic import EvalReport
from autotelic.runtime.loop.collector import FinishedEpisode

__all__ = [
    "Accepted",
    "ActorState",
    "AgentStatus",
    "Control",
    "EvalReport",
    "FinishedEpisode",
    "InjectionRejected",
    "InjectionReport",
    "Subscribers",
]


@dataclass(frozen=True)
class Accepted:
    """A goal the daemon queued."""

    injection_id: str
    goal: str
    """The goal in its canonical form (as episodes and results name it)."""
    episodes: int
    feasible: bool | None
    """The goal space's word on whether any episode can achieve it (False for
    ``Grow chair``); None when it cannot tell. An infeasible goal is still queued:
    people may test the agent with one."""


@dataclass(frozen=True)
class ActorState:
    """One collector actor of a backend that collects elsewhere, as last seen."""

    actor: int
    pid: int
    node: str
    alive: bool
    env_steps: int
    episodes: int
    steps_per_s: float
    policy_version: int
    lag: int
    restarts: int


@dataclass(frozen=True)
class AgentStatus:
    """The agent's counters and health at one moment."""

    agent: str
    pid: int
    learner: str
    policy_version: int
    env_steps: int
    updates: int
    episodes: int
    results_pending: int
    """Injection results kept until a consumer acknowledged them."""
    backend: str
    failure: str | None = None
    """Why the agent stopped, when a failure stopped it (e.g. a full disk)."""
    actors: tuple[ActorState, ...] | None = None
    """Collector actors, for a backend that has them."""


EpisodeListener = Callable[[FinishedEpisode], None]
ReportListener = Callable[[InjectionReport], None]
EvaluationListener = Callable[[EvalReport], None]


class Control(Protocol):
    """The one interface a service or a transport drives a run through: queue a goal, read
    the status, hear what the run does, and settle the injection results it keeps.

    :class:`~autotelic.runtime.loop.agent.Agent` implements it whatever its backend; a
    transport (the MQTT bridge's relay, :mod:`autotelic.runtime.transport.relay`) needs
    nothing else of the agent, so neither knows how the other is built."""

    def inject(
        self, goal: str, episodes: int = 1, *, priority: int = 0, ttl_s: float | None = None
    ) -> Accepted:
        """Queue a goal a person asked for; raises :class:`InjectionRejected` with the
        reason when it is refused."""
        ...

    def status(self) -> AgentStatus:
        """Counters and health now."""
        ...

    def subscribe(
        self,
        *,
        episodes: EpisodeListener | None = None,
        reports: ReportListener | None = None,
        evaluations: EvaluationListener | None = None,
    ) -> None:
        """Hear every stored episode, injection report and finished evaluation from now on
        (each called in the thread that made it: keep it short)."""
        ...

    def owed_results(self) -> list[dict[str, Any]]:
        """Injection results kept durably until a consumer acknowledged them (from before
        a restart too)."""
        ...

    def acknowledge(self, message_id: str) -> bool:
        """A consumer has a result: drop it from the durable outbox."""
        ...


@dataclass
class Subscribers:
    """Who hears the run: the listeners :meth:`Control.subscribe` added, by what they hear."""

    episodes: list[EpisodeListener] = field(default_factory=list)
    reports: list[ReportListener] = field(default_factory=list)
    evaluations: list[EvaluationListener] = field(default_factory=list)

    def add(
        self,
        episodes: EpisodeListener | None = None,
        reports: ReportListener | None = None,
        evaluations: EvaluationListener | None = None,
    ) -> None:
        """Add whichever listeners are given."""
        if episodes is not None:
            self.episodes.append(episodes)
        if reports is not None:
            self.reports.append(reports)
        if evaluations is not None:
            self.evaluations.append(evaluations)

    def episode(self, done: FinishedEpisode) -> None:
        for listener in self.episodes:
            listener(done)

    def report(self, report: InjectionReport) -> None:
        for listener in self.reports:
            listener(report)

    def evaluation(self, report: EvalReport) -> None:
        for listener in self.evaluations:
            listener(report)
