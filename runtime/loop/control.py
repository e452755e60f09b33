"""What the agent answers whoever controls it: plain values that name no transport.

:meth:`Agent.inject <autotelic.runtime.loop.agent.Agent.inject>` returns an
:class:`Accepted` (or raises :class:`~autotelic.goals.InjectionRejected` with the
reason) and :meth:`Agent.status <autotelic.runtime.loop.agent.Agent.status>` an
:class:`AgentStatus`. The MQTT bridge maps them to and from its JSON payloads
(:mod:`autotelic.runtime.transport.messages`); another control transport (HTTP, gRPC, a notebook)
maps them its own way without touching the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from autotelic.goals import InjectionRejected

__all__ = ["Accepted", "ActorState", "AgentStatus", "InjectionRejected"]


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
