"""The time limit as every layer sees it: its modes and the ``Steps left: k`` line.

A time limit is part of the task: an episode of goal g ends after ``horizon`` steps
whatever happens. How that cut enters the targets is the mode (:data:`TimeLimit`,
docs/learning.md). Counting the cut as terminal while the state does not show the time
makes the task non-Markov (the same observation is worth less near the end);
bootstrapping it at gamma 0.99 values wandering above the goal. The ``observed`` mode
shows the steps left as the observation's last line and counts the cut as terminal,
which is exact.

The line is written where the policy reads observations (the collector's and an
evaluation's env batches, :func:`time_limited`) and read back where stored episodes are
replayed under another goal (storage's hindsight relabeling rewrites the count for the
relabeled goal's horizon). Both sides use this module, so the format has one definition
and cannot drift between a writer and a parser.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

from autotelic.core.env import EnvStep, TextEnvBatch, TextState
from autotelic.core.goals import GoalSpace

TimeLimit = Literal["terminal", "bootstrap", "observed"]
"""How an episode cut by its time limit enters the targets: ``terminal`` (no bootstrap),
``bootstrap`` (from its last state) or ``observed`` (terminal, with the steps left shown
in every observation)."""
TIME_LIMITS: tuple[TimeLimit, ...] = ("terminal", "bootstrap", "observed")
DEFAULT_TIME_LIMIT: TimeLimit = "observed"
"""The shipped mode. At gamma 0.99 a bootstrapped limit makes wandering worth more than
the goal (alpha log|A| / (1 - gamma) > 1) and the soft-optimal policy avoids it; counting
the limit as terminal without showing the time is non-Markov and fails the long Grow
plans at alpha 0.05; showing the steps left reaches the goal in every measured case
(tests/test_learners_sac_soft_optimal.py, docs/learning.md)."""

STEPS_LEFT_LINE = "Steps left: "
"""How the ``observed`` mode's last line begins; the count follows it."""
_STEPS_LEFT = re.compile("\n" + re.escape(STEPS_LEFT_LINE) + r"(\d+)$")


def steps_left_line(left: int) -> str:
    """The line itself: ``Steps left: k`` (a negative count shows as 0)."""
    return f"{STEPS_LEFT_LINE}{max(left, 0)}"


def with_steps_left(observation: str, steps: int, horizon: int) -> str:
    """``observation`` with a last line ``Steps left: k``, k = horizon - steps.

    An env without a time limit (``horizon`` 0) has nothing to show: the observation is
    returned unchanged.
    """
    if horizon <= 0:
        return observation
    return f"{observation}\n{steps_left_line(horizon - steps)}"


def steps_left(observation: str) -> int | None:
    """The ``k`` of an observation's last line ``Steps left: k`` (None: no such line)."""
    match = _STEPS_LEFT.search(observation)
    return int(match.group(1)) if match else None


def with_steps_left_line(observation: str, left: int) -> str:
    """``observation`` with its ``Steps left`` line showing ``left`` (unchanged if none):
    what relabeling writes for a goal of another horizon."""
    match = _STEPS_LEFT.search(observation)
    if match is None:
        return observation
    return f"{observation[: match.start()]}\n{steps_left_line(left)}"


def observed_state(state: TextState) -> TextState:
    """``state`` with the steps left shown in its observation (see :func:`with_steps_left`)."""
    return replace(
        state, observation=with_steps_left(state.observation, state.steps, state.horizon)
    )


class StepsLeftBatch:
    """A :class:`~autotelic.core.TextEnvBatch` whose states show the steps left.

    Everything else (seeding, goals, actions, rewards, endings) is the wrapped batch's,
    so an episode seed still regenerates the same episode.
    """

    def __init__(self, envs: TextEnvBatch) -> None:
        self.inner = envs

    @property
    def num_envs(self) -> int:
        return self.inner.num_envs

    @property
    def goal_space(self) -> GoalSpace:
        return self.inner.goal_space

    def seed(self, seed: int) -> None:
        self.inner.seed(seed)

    def reset(
        self,
        envs: Sequence[int],
        goals: Sequence[str | None],
        seeds: Sequence[int | None] | None = None,
    ) -> list[TextState]:
        return [observed_state(s) for s in self.inner.reset(envs, goals, seeds)]

    def step(self, envs: Sequence[int], actions: Sequence[int]) -> list[EnvStep]:
        return [replace(r, state=observed_state(r.state)) for r in self.inner.step(envs, actions)]


def time_limited(envs: TextEnvBatch, mode: TimeLimit) -> TextEnvBatch:
    """The batch the policy acts on under ``mode``: ``envs`` itself, or, in the ``observed``
    mode, ``envs`` showing the steps left. Idempotent: a wrapped batch is not wrapped twice.
    The collector wraps its batch (so its prompts and the stored episodes, which replay and
    relabeling read, carry the line); an evaluation wraps its own to act on the same text."""
    if mode not in TIME_LIMITS:
        raise ValueError(f"unknown time-limit mode {mode!r}; use one of {', '.join(TIME_LIMITS)}")
    if mode != "observed" or isinstance(envs, StepsLeftBatch):
        return envs
    return StepsLeftBatch(envs)
