"""What the policy reads of a time limit: the ``observed`` mode's "Steps left" line.

A time limit is part of the task: an episode of goal g ends after ``horizon``
steps whatever happens. Counting that cut as terminal while the state does not
show the time makes the task non-Markov (the same observation is worth less
near the end); bootstrapping it at gamma 0.99 values wandering above the goal
(docs/learning.md). The ``observed`` mode shows the steps
left in the observation and counts the cut as terminal, which is exact.

Every place the policy reads an observation must show the same text, so the
decoration lives in one function, :func:`with_steps_left`, and one env-batch
wrapper, :class:`StepsLeftBatch`, that applies it to every state a batch
returns. The collector wraps its batch (so its prompts and the stored episodes,
which replay and relabeling read, carry the line); an evaluation wraps its own
with :func:`time_limited` to act on the same text. The other modes leave
observations untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from autotelic.core import EnvStep, GoalSpace, TextEnvBatch, TextState
from autotelic.storage.her import TIME_LIMITS, TimeLimit

STEPS_LEFT = "Steps left: {}"
"""The line appended to an observation in the ``observed`` mode."""


def with_steps_left(observation: str, steps: int, horizon: int) -> str:
    """``observation`` with a last line ``Steps left: k``, k = horizon - steps.

    An env without a time limit (``horizon`` 0) has nothing to show: the
    observation is returned unchanged.
    """
    if horizon <= 0:
        return observation
    return f"{observation}\n{STEPS_LEFT.format(max(horizon - steps, 0))}"


def observed_state(state: TextState) -> TextState:
    """``state`` with the steps left shown in its observation (see :func:`with_steps_left`)."""
    return replace(
        state, observation=with_steps_left(state.observation, state.steps, state.horizon)
    )


class StepsLeftBatch:
    """A :class:`~autotelic.core.TextEnvBatch` whose states show the steps left.

    Everything else (seeding, goals, actions, rewards, endings) is the wrapped
    batch's, so an episode seed still regenerates the same episode.
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
    mode, ``envs`` showing the steps left. Idempotent: a wrapped batch is not wrapped twice."""
    if mode not in TIME_LIMITS:
        raise ValueError(f"unknown time-limit mode {mode!r}; use one of {', '.join(TIME_LIMITS)}")
    if mode != "observed" or isinstance(envs, StepsLeftBatch):
        return envs
    return StepsLeftBatch(envs)
