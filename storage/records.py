"""The episode record: what is kept of every episode, and its versioned encoding.

The pydantic models are the public, validated form. On disk a record is a small
header (metadata, schema version, and the step columns the relabeling reads)
followed by the states, each packed on its own (see :func:`encode_episode`),
because the replay sampler reads records far more often than anything else and
a sampled row needs the header and two states, not the whole episode.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Literal

import msgpack
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autotelic.storage.codec import check_packable, check_version, checked_body, seal
from autotelic.storage.errors import CorruptRecordError

SCHEMA_VERSION = 1
"""Version written into every episode record; bump it with a reader for the old one."""

GoalSource = Literal["configured", "discovered", "injected"]
"""Where an episode's goal came from: configuration, the agent's discoveries, or a person."""


class Step(BaseModel):
    """One transition: the state acted in, what was done, and what came of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    observation: str = Field(description="Observation text of the state the action was taken in.")
    admissible_actions: list[str] = Field(
        min_length=1, description="Actions the environment offered in that state."
    )
    action: int = Field(ge=0, description="Index of the action taken in admissible_actions.")
    reward: float = Field(description="Reward the environment returned for the step.")
    terminated: bool = Field(description="The episode's goal held after this step.")
    truncated: bool = Field(description="The episode was cut by its time limit after this step.")
    achieved_goals: list[str] = Field(
        default_factory=list, description="Goals this step made true, as the env reported them."
    )
    policy_version: int = Field(ge=0, description="Version of the policy that chose the action.")

    @model_validator(mode="after")
    def _action_in_range(self) -> Step:
        if self.action >= len(self.admissible_actions):
            raise ValueError(
                f"action index {self.action} is outside the "
                f"{len(self.admissible_actions)} admissible actions"
            )
        if not math.isfinite(self.reward):
            raise ValueError(f"reward {self.reward} is not finite")
        return self

    @property
    def action_text(self) -> str:
        """The action taken, as text."""
        return self.admissible_actions[self.action]


class Episode(BaseModel):
    """A whole episode as stored: goal and provenance, every step, and the final state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int | None = Field(
        None, ge=0, description="Assigned by the store on put; None before it is stored."
    )
    goal: str = Field(min_length=1, description="Canonical text of the goal pursued.")
    goal_category: str = Field(description="Category of the goal (curriculum bucket).")
    goal_source: GoalSource = Field(description="Where the goal came from.")
    injection_id: str | None = Field(
        None, description="Id of the injection request, for goals a person injected."
    )
    env_id: str = Field(min_length=1, description="Registered id of the environment.")
    scene_seed: int = Field(description="Seed that regenerates the episode's initial scene.")
    started_at: float = Field(description="Unix time of the reset.")
    ended_at: float = Field(description="Unix time of the last step.")
    steps: list[Step] = Field(min_length=1, description="The transitions, in order.")
    final_observation: str = Field(description="Observation after the last step.")
    final_admissible_actions: list[str] = Field(
        description="Actions admissible after the last step (bootstrap state of the last row)."
    )
    extra: dict[str, Any] = Field(
        default_factory=dict, description="Free metadata (msgpack-able values only)."
    )

    @field_validator("scene_seed")
    @classmethod
    def _seed_fits(cls, seed: int) -> int:
        if not -(2**63) <= seed < 2**64:
            raise ValueError(f"scene seed {seed} does not fit in 64 bits")
        return seed

    @field_validator("extra")
    @classmethod
    def _extra_packable(cls, extra: dict[str, Any]) -> dict[str, Any]:
        check_packable(extra, "extra")
        return extra

    @model_validator(mode="after")
    def _consistent(self) -> Episode:
        for i, step in enumerate(self.steps[:-1]):
            if step.terminated or step.truncated:
                raise ValueError(
                    f"step {i} of {len(self.steps)} ends the episode (terminated or truncated): "
                    "an episode ends at its first terminal step"
                )
        if not math.isfinite(self.started_at) or not math.isfinite(self.ended_at):
            raise ValueError("timestamps must be finite")
        if self.ended_at < self.started_at:
            raise ValueError(f"ended_at {self.ended_at} is before started_at {self.started_at}")
        return self

    @property
    def length(self) -> int:
        """Number of steps, which is the number of transitions it adds to the replay."""
        return len(self.steps)

    @property
    def success(self) -> bool:
        """Whether the goal was achieved (the last step terminated the episode)."""
        return self.steps[-1].terminated

    @property
    def total_reward(self) -> float:
        """Undiscounted sum of the rewards."""
        return sum(step.reward for step in self.steps)

    @property
    def achieved_goals(self) -> list[str]:
        """Every goal achieved during the episode, in order of first achievement."""
        seen: dict[str, None] = {}
        for step in self.steps:
            for goal in step.achieved_goals:
                seen[goal] = None
        return list(seen)


class EpisodeView:
    """What the replay sampler reads of an episode, without validation models.

    The step columns (actions, rewards, flags, achieved goals, policy versions)
    are plain lists. States (observation text and admissible actions) number
    one more than the steps: state ``t`` is the one acted in at step ``t`` and
    the last is the final state. A view decoded from storage decodes a state
    only when :meth:`state` asks for it, since a sampled row needs two states of
    an episode, not all of them.
    """

    __slots__ = (
        "_blob",
        "_offsets",
        "_states",
        "achieved",
        "actions",
        "goal",
        "id",
        "policy_versions",
        "rewards",
        "terminated",
        "truncated",
    )

    def __init__(
        self,
        episode_id: int,
        goal: str,
        actions: list[int],
        rewards: list[float],
        terminated: list[bool],
        truncated: list[bool],
        achieved: list[list[str]],
        policy_versions: list[int],
        states: list[tuple[str, list[str]] | None],
        blob: memoryview | None = None,
        offsets: list[int] | None = None,
    ) -> None:
        self.id = episode_id
        self.goal = goal
        self.actions = actions
        self.rewards = rewards
        self.terminated = terminated
        self.truncated = truncated
        self.achieved = achieved
        self.policy_versions = policy_versions
        self._states = states
        self._blob = blob
        self._offsets = offsets

    @property
    def length(self) -> int:
        return len(self.actions)

    def state(self, index: int) -> tuple[str, list[str]]:
        """(observation, admissible actions) of state ``index`` (0..length)."""
        cached = self._states[index]
        if cached is not None:
            return cached
        if self._blob is None or self._offsets is None:
            raise CorruptRecordError(f"episode {self.id}", f"state {index} is missing")
        part = self._blob[self._offsets[index] : self._offsets[index + 1]]
        try:
            observation, admissible = msgpack.unpackb(part, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise CorruptRecordError(f"episode {self.id}", f"state {index}: {exc}") from exc
        if not isinstance(observation, str) or not isinstance(admissible, list):
            raise CorruptRecordError(f"episode {self.id}", f"state {index} is malformed")
        self._states[index] = (observation, admissible)
        return observation, admissible

    @classmethod
    def of(cls, episode: Episode, episode_id: int | None = None) -> EpisodeView:
        """The view of a validated episode (what an in-memory store keeps)."""
        ident = episode.id if episode_id is None else episode_id
        steps = episode.steps
        states: list[tuple[str, list[str]] | None] = [
            (s.observation, s.admissible_actions) for s in steps
        ]
        states.append((episode.final_observation, episode.final_admissible_actions))
        return cls(
            ident if ident is not None else -1,
            episode.goal,
            [s.action for s in steps],
            [s.reward for s in steps],
            [s.terminated for s in steps],
            [s.truncated for s in steps],
            [s.achieved_goals for s in steps],
            [s.policy_version for s in steps],
            states,
        )


# -- stored form ---------------------------------------------------------------------------------
#
# value = CRC-32 (4 bytes, of everything after it)
#       | header length (4 bytes) | header: msgpack map, metadata and step columns,
#       |                           "st" = offsets of each state in the state area
#       | state area: per state, msgpack [observation, admissible actions]
#
# The header is small, so decoding it and then only the states a row uses costs a
# fraction of decoding the whole episode.

_HEADER_SIZE = struct.Struct(">I")
_STEP_COLUMNS = ("act", "rew", "term", "trunc", "ach", "pv")


def encode_episode(episode: Episode) -> bytes:
    """The stored bytes of an episode (its id lives in the key, not in the value)."""
    steps = episode.steps
    pack = msgpack.Packer().pack  # one packer for the whole record: cheaper than packb per state
    states = [pack([s.observation, s.admissible_actions]) for s in steps]
    states.append(pack([episode.final_observation, episode.final_admissible_actions]))
    offsets = [0]
    for part in states:
        offsets.append(offsets[-1] + len(part))
    header = pack(
        {
            "v": SCHEMA_VERSION,
            "goal": episode.goal,
            "goal_category": episode.goal_category,
            "goal_source": episode.goal_source,
            "injection_id": episode.injection_id,
            "env_id": episode.env_id,
            "scene_seed": episode.scene_seed,
            "started_at": episode.started_at,
            "ended_at": episode.ended_at,
            "extra": episode.extra,
            "act": [s.action for s in steps],
            "rew": [s.reward for s in steps],
            "term": [s.terminated for s in steps],
            "trunc": [s.truncated for s in steps],
            "ach": [s.achieved_goals for s in steps],
            "pv": [s.policy_version for s in steps],
            "st": offsets,
        }
    )
    return seal(b"".join([_HEADER_SIZE.pack(len(header)), header, *states]))


def _header(episode_id: int, data: bytes | memoryview) -> tuple[dict[str, Any], memoryview]:
    """Checked header and the state area of a stored episode."""
    what = f"episode {episode_id}"
    body = checked_body(data, what, _HEADER_SIZE.size)
    (size,) = _HEADER_SIZE.unpack_from(body)
    start = _HEADER_SIZE.size
    try:
        header = msgpack.unpackb(body[start : start + size], raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise CorruptRecordError(what, f"header is not valid msgpack ({exc})") from exc
    if not isinstance(header, dict):
        raise CorruptRecordError(what, f"header is a {type(header).__name__}, not a map")
    check_version(header, what, SCHEMA_VERSION)
    area = body[start + size :]
    try:
        n = len(header["act"])
        bad = [c for c in _STEP_COLUMNS if len(header[c]) != n]
        offsets = header["st"]
        if len(offsets) != n + 2 or offsets[0] != 0 or offsets[-1] != len(area):
            bad.append("st")
    except (KeyError, TypeError) as exc:
        raise CorruptRecordError(what, f"missing or malformed column {exc}") from exc
    if bad or n == 0 or not isinstance(header.get("goal"), str):
        raise CorruptRecordError(what, f"columns {bad} do not match its {n} steps")
    return header, area


def decode_view(episode_id: int, data: bytes | memoryview) -> EpisodeView:
    """Decode the header only; states are decoded when a row asks for them."""
    return _view(episode_id, *_header(episode_id, data))


def _view(episode_id: int, h: dict[str, Any], area: memoryview) -> EpisodeView:
    return EpisodeView(
        episode_id,
        h["goal"],
        h["act"],
        h["rew"],
        h["term"],
        h["trunc"],
        h["ach"],
        h["pv"],
        [None] * (len(h["act"]) + 1),
        area,
        h["st"],
    )


def decode_episode(episode_id: int, data: bytes | memoryview) -> Episode:
    """Decode and validate a whole episode; any inconsistency names the episode."""
    h, area = _header(episode_id, data)
    view = _view(episode_id, h, area)
    states = [view.state(i) for i in range(view.length + 1)]
    try:
        steps = [
            {
                "observation": states[i][0],
                "admissible_actions": states[i][1],
                "action": view.actions[i],
                "reward": view.rewards[i],
                "terminated": view.terminated[i],
                "truncated": view.truncated[i],
                "achieved_goals": view.achieved[i],
                "policy_version": view.policy_versions[i],
            }
            for i in range(view.length)
        ]
        return Episode.model_validate(
            {
                "id": episode_id,
                "goal": h["goal"],
                "goal_category": h["goal_category"],
                "goal_source": h["goal_source"],
                "injection_id": h["injection_id"],
                "env_id": h["env_id"],
                "scene_seed": h["scene_seed"],
                "started_at": h["started_at"],
                "ended_at": h["ended_at"],
                "steps": steps,
                "final_observation": states[-1][0],
                "final_admissible_actions": states[-1][1],
                "extra": h["extra"],
            }
        )
    except (KeyError, ValueError) as exc:
        # pydantic's ValidationError is a ValueError.
        raise CorruptRecordError(f"episode {episode_id}", f"invalid content: {exc}") from exc
