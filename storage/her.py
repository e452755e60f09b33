"""Hindsight relabeling and n-step returns on one episode, as pure functions.

A transition stored under goal g can be replayed under a goal g' the agent
actually achieved. Relabeling candidates are achievement *events* (a step and a
goal it made true), excluding the episode's own goal, so a goal achieved at two
steps is twice as likely, and a relabel is always a different goal:

* ``future``: events at a step >= t (the sampled step itself included: the action
  at t may be what achieved it);
* ``final``: the goals of the episode's last step that achieved any;
* ``episode``: every event of the episode.

Rewards and termination for the episode's own goal are the env's recorded ones;
for a relabeled goal they are recomputed with the env's goal predicate: reward 1
and termination exactly at the steps where the predicate holds. The n-step sum
stops at the first termination or at the end of the episode; an episode that
ended for another reason (its time limit, or its own goal when replayed under a
relabel) is not terminated for that row, which bootstraps from the last state.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from autotelic.storage.records import EpisodeView

Strategy = Literal["future", "final", "episode"]
STRATEGIES: tuple[Strategy, ...] = ("future", "final", "episode")
Predicate = Callable[[str, Collection[str]], bool]


def achievement_events(view: EpisodeView) -> list[tuple[int, str]]:
    """(step, goal) for every goal each step made true, other than the episode's goal."""
    own = view.goal
    return [(j, g) for j, goals in enumerate(view.achieved) for g in goals if g != own]


def relabel_candidates(events: list[tuple[int, str]], t: int, strategy: Strategy) -> list[str]:
    """Goals a row at step ``t`` may be relabeled with (repeats weight the draw)."""
    if strategy == "future":
        return [g for j, g in events if j >= t]
    if strategy == "episode":
        return [g for _, g in events]
    if strategy == "final":
        if not events:
            return []
        last = events[-1][0]
        return [g for j, g in events if j == last]
    raise ValueError(f"unknown HER strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")


@dataclass(frozen=True, slots=True)
class NStep:
    """An n-step target's ingredients for one row."""

    reward: float
    """sum_{j<k} gamma^j r_{t+j}."""
    discount: float
    """gamma^k."""
    terminated: bool
    """The goal held within the k steps (or the last state offers no action)."""
    next_index: int
    """t + k: index of the state the target bootstraps from."""


def n_step(
    view: EpisodeView,
    t: int,
    goal: str,
    relabeled: bool,
    n: int,
    gamma: float,
    predicate: Predicate,
) -> NStep:
    """The n-step return from step ``t`` of ``view`` for ``goal``."""
    total = 0.0
    scale = 1.0
    terminated = False
    end = min(t + n, view.length)
    j = t
    while j < end:
        if relabeled:
            terminated = bool(predicate(goal, view.achieved[j]))
            r = 1.0 if terminated else 0.0
        else:
            terminated = bool(view.terminated[j])
            r = float(view.rewards[j])
        total += scale * r
        scale *= gamma
        j += 1
        if terminated:
            break
    if not terminated and j == view.length and not view.state(j)[1]:
        # A final state with no admissible action is absorbing: nothing to bootstrap
        # from. (States acted in always have actions; the record validates that.)
        terminated = True
    return NStep(total, scale, terminated, j)
