"""Hindsight relabeling and n-step returns on one episode, as pure functions.

A transition stored under goal g can be replayed under a goal g' the agent
actually achieved. Relabeling candidates are achievement *events* (a step and a
goal it made true), excluding the episode's own goal, so a goal achieved at two
steps is twice as likely, and a relabel is always a different goal:

* ``future``: events at a step >= t (the sampled step itself included: the action
  at t may be what achieved it);
* ``final``: the goals of the episode's last step that achieved any, provided
  that step is >= t: a row is never relabeled with a goal achieved before it,
  which its action cannot have contributed to (the row would then learn that
  any action "achieves" a goal already behind it: reward 0 forever after);
* ``episode``: every event of the episode.

Relabeling only with achieved goals removes the rows that bind a goal to its
object: at ratio 0.8, among Grasp rows where the agent grasped something, the
wrong-object rows (reward 0) fall from 67% to 16%, and the policy grasps what it
stands on whatever the goal names (docs/learning.md). Hence *hindsight
negatives*: a row relabeled with a goal the episode never achieved (the goal
space's predicate is false at every step), of the category of a goal achieved in
the row's future (another object's Grasp where a Grasp happened), so its reward
is 0 exactly where a positive relabel would have earned 1. With ``balance``
the negative goals are drawn from the batch's own positive relabels, so each
goal gets negatives in proportion to its positives (see :func:`negative_goal`).

In the ``observed`` mode a stored observation ends with ``Steps left: k``, the
pursued goal's count. A relabeled row keeps it unless the sampler's
``her_steps_left`` makes the row the one an episode of the relabeled goal would
have had from the same start: the line shows that goal's horizon minus the step
(``core.time_limit.with_steps_left_line``), the n-step window stops at that horizon (a cut,
terminal unless bootstrapped; ``limit`` of :func:`n_step`), and a goal achieved at
or after its horizon is no relabel for the episode (:func:`within_horizons`).

Held-out goals (the goal space's ``test`` split) never appear in a training
row: :func:`trainable` filters both kinds of relabel candidate, and the sampler
never draws rows of an episode pursued under one.

Rewards and termination for the episode's own goal are the env's recorded ones;
for a relabeled goal they are recomputed with the env's goal predicate: reward 1
and termination exactly at the steps where the predicate holds. The n-step sum
stops at the first termination or at the end of the episode.

How the end of an episode that is not a termination counts is the time-limit
mode (:data:`autotelic.core.time_limit.TimeLimit`, docs/learning.md):

* an episode cut by its time limit (its last step ``truncated``) is terminal in
  the ``terminal`` and ``observed`` modes (no bootstrap: what the authors'
  LittleZoo does; ``observed`` also shows the steps left in the observation, so
  the cut is a Markov event) and bootstraps from its last state in ``bootstrap``;
* an episode that ended for its own goal, replayed under a relabel, bootstraps
  from its last state in every mode: for the relabeled goal nothing ended there.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from autotelic.core.time_limit import DEFAULT_TIME_LIMIT, TimeLimit
from autotelic.storage.records import EpisodeView

Strategy = Literal["future", "final", "episode"]
STRATEGIES: tuple[Strategy, ...] = ("future", "final", "episode")
Predicate = Callable[[str, Collection[str]], bool]
GoalTest = Callable[[str], bool]
"""A property of a goal alone, e.g. "is held out"."""


def within_horizons(
    events: list[tuple[int, str]], horizon: Callable[[str], int | None]
) -> list[tuple[int, str]]:
    """The events an episode of their goal could have reached: step < that goal's horizon
    (unknown horizon: kept)."""
    kept = []
    for j, goal in events:
        limit = horizon(goal)
        if limit is None or j < limit:
            kept.append((j, goal))
    return kept


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
        if not events or events[-1][0] < t:
            return []
        last = events[-1][0]
        return [g for j, g in events if j == last]
    raise ValueError(f"unknown HER strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")


def trainable(goals: list[str], held_out: GoalTest | None) -> list[str]:
    """``goals`` without the held-out ones: a test-split goal never trains the policy."""
    if held_out is None:
        return goals
    return [g for g in goals if not held_out(g)]


def achieved_sets(view: EpisodeView) -> list[list[str]]:
    """The distinct achieved-goal lists of an episode's steps (most steps achieve nothing):
    what :func:`never_achieved` needs to ask the predicate about, once each."""
    seen: dict[tuple[str, ...], list[str]] = {}
    for achieved in view.achieved:
        seen.setdefault(tuple(achieved), achieved)
    return list(seen.values())


def never_achieved(goal: str, achieved: list[list[str]], predicate: Predicate) -> bool:
    """Whether ``goal`` held after no step of an episode whose steps achieved the lists
    ``achieved`` (:func:`achieved_sets`), by the env's own predicate.

    The whole episode, not the row's window: a negative must be a goal the episode
    did not achieve, so no row of it can teach that its actions lead there.
    """
    return not any(predicate(goal, goals) for goals in achieved)


def negative_goal(
    view: EpisodeView,
    achieved: list[list[str]],
    pool: list[str],
    draws: list[float],
    predicate: Predicate,
) -> str | None:
    """A goal of ``pool`` (repeats weight it) that ``view``, whose steps achieved the lists
    ``achieved``, never achieved and did not pursue; None if the draws find none.

    ``draws`` are uniform numbers in [0, 1), one per try: rejection keeps the cost at a
    few predicate calls, however large the pool.
    """
    if not pool:
        return None
    for u in draws:
        goal = pool[int(u * len(pool))]
        if goal != view.goal and never_achieved(goal, achieved, predicate):
            return goal
    return None


@dataclass(frozen=True, slots=True)
class NStep:
    """An n-step target's ingredients for one row."""

    reward: float
    """sum_{j<k} gamma^j r_{t+j}."""
    discount: float
    """gamma^k."""
    terminated: bool
    """No bootstrap: the goal held within the k steps, the last state offers no action,
    or the window reached a time-limit cut that the mode counts as terminal."""
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
    time_limit: TimeLimit = DEFAULT_TIME_LIMIT,
    limit: int | None = None,
) -> NStep:
    """The n-step return from step ``t`` of ``view`` for ``goal``, the time limit counted
    as ``time_limit`` says; ``limit`` (> t) is a relabeled goal's own horizon: the window
    stops there, a cut even where the episode went on or ended for its own goal."""
    total = 0.0
    scale = 1.0
    terminated = False
    length = view.length if limit is None else min(limit, view.length)
    end = min(t + n, length)
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
    if not terminated and j == length:
        # A relabeled goal's own horizon reached is its cut, whatever ended the episode.
        cut = view.truncated[-1] if limit is None or limit > view.length else True
        if time_limit != "bootstrap" and cut:
            # The time limit cut the episode here: terminal in these modes, for the
            # episode's goal and for any relabel (the limit held whatever was pursued).
            terminated = True
        elif not view.state(j)[1]:
            # A final state with no admissible action is absorbing: nothing to bootstrap
            # from. (States acted in always have actions; the record validates that.)
            terminated = True
    return NStep(total, scale, terminated, j)
