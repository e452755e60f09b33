"""What travels from a collector actor to the store writer, and what the service shows
of each actor."""

from __future__ import annotations

from dataclasses import dataclass, field

from autotelic.goals import GoalAssignment
from autotelic.storage import Episode


@dataclass(frozen=True)
class EndedEpisode:
    """An episode that ended in an actor, not yet stored: the episode, the assignment it
    pursued and the policy version that acted on its last step."""

    episode: Episode
    assignment: GoalAssignment
    version: int


@dataclass(frozen=True)
class CollectedBatch:
    """One call's worth of collection from one actor."""

    actor: int
    env_steps: int
    """Env steps taken in this call (batch steps times envs)."""
    ended: list[EndedEpisode]
    acting_versions: list[int]
    """The policy version that chose each batch step's actions."""
    seconds: float
    """Time the actor spent collecting in this call."""
    rollout_steps: int = 0
    """Steps the actor's on-policy rollout holds now (0 for off-policy learning)."""
    pid: int = 0
    node_ip: str = ""


@dataclass
class ActorView:
    """The driver's running account of one collector actor (status, metrics)."""

    actor: int
    pid: int = 0
    node_ip: str = ""
    env_steps: int = 0
    episodes: int = 0
    steps_per_s: float = 0.0
    policy_version: int = -1
    lag: int = 0
    restarts: int = 0
    alive: bool = True
    recent: list[tuple[float, int]] = field(default_factory=list)
    """(collect seconds, env steps) of recent calls, for steps_per_s."""
