"""Replay sampling with hindsight relabeling: stored episodes -> the learner's batch.

Rows are drawn uniformly over stored transitions from the source's in-memory
index (one ``searchsorted``, no database scan), then only the episodes drawn are
read, in one read transaction. An episode evicted between the index snapshot and
the read is simply absent from the read, and its rows are drawn again.

How a time-limit cut enters each row's target is the sampler's ``time_limit``
mode (:data:`~autotelic.core.time_limit.TimeLimit`): terminal (``terminal``,
``observed``) or bootstrapped (``bootstrap``). The stored episodes keep the env's
own ``terminated`` / ``truncated`` flags, so one store can be replayed in any mode.

Random draws are made for the whole batch at once (positions, relabel coins,
goal choices), so a seeded generator gives the same batch for the same store
content, whatever the episodes contain.

Held-out goals (the goal space's ``test`` split) never train: an episode pursued
under one (an injected test goal, say) stays stored and reported but its rows
are never drawn, and relabeling never produces one (storage/her.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np
import numpy.typing as npt

from autotelic.core import GoalSpace, InvalidGoalError, TransitionBatch
from autotelic.core.time_limit import (
    DEFAULT_TIME_LIMIT,
    TIME_LIMITS,
    TimeLimit,
    steps_left,
    with_steps_left_line,
)
from autotelic.storage.config import REPLAY_DEFAULTS, ReplayConfig
from autotelic.storage.errors import EmptyReplayError, StorageError
from autotelic.storage.her import (
    STRATEGIES,
    GoalTest,
    Predicate,
    Strategy,
    achieved_sets,
    achievement_events,
    n_step,
    negative_goal,
    relabel_candidates,
    trainable,
    within_horizons,
)
from autotelic.storage.index import IndexSnapshot
from autotelic.storage.records import EpisodeView

_EVENTS_LIMIT = 65536
"""Episodes whose relabeling events the sampler keeps (then it starts over)."""


class EpisodeSource(Protocol):
    """What the sampler needs of a store (the LMDB store and the in-memory one)."""

    def index_snapshot(self) -> IndexSnapshot:
        """Ids and lengths of the live episodes."""
        ...

    def fetch_views(self, episode_ids: Iterable[int]) -> dict[int, EpisodeView]:
        """Views of those of ``episode_ids`` still stored."""
        ...


NEGATIVE_TRIES = 4
"""Draws per negative row before it keeps its own goal (storage/her.py negative_goal)."""

Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]


def _categoriser(space: GoalSpace) -> Callable[[str], str]:
    """Category of a goal, cached (the sampler asks for the same goals every batch); a
    goal the grammar refuses is its own category, so it has no kin."""

    @lru_cache(maxsize=65536)
    def category(goal: str) -> str:
        try:
            return space.parse(goal).category
        except InvalidGoalError:
            return f"\0{goal}"

    return category


@dataclass(frozen=True)
class GoalKnowledge:
    """What the sampler needs of a goal space: categories, held-out goals, kin pools."""

    category: Callable[[str], str]
    """A goal's category: negatives are of the category of the goal achieved."""
    held_out: GoalTest | None
    """True for a test-split goal (None: nothing is held out)."""
    pool: dict[str, list[str]]
    """Feasible training goals by category: negatives when the batch offers none."""
    feasible: GoalTest = lambda goal: True
    """False for a goal no scene can achieve (the goal space's ``feasible``)."""

    @staticmethod
    def of(space: GoalSpace | None) -> GoalKnowledge:
        """The knowledge of ``space`` (None: one category, nothing held out, no pool)."""
        if space is None:
            return GoalKnowledge(lambda goal: "", None, {})
        category = _categoriser(space)
        pool: dict[str, list[str]] = defaultdict(list)
        for goal in space.goals("train"):
            if space.feasible(goal) is not False:
                pool[category(goal)].append(goal)
        return GoalKnowledge(
            category, _held_out(space), dict(pool), lambda g: space.feasible(g) is not False
        )


def _held_out(space: GoalSpace) -> GoalTest:
    """The test split as a test on goals: a goal space's ``split(goal)`` where it has one
    (it answers for goals its ``goals("test")`` list leaves out), else that list."""
    split = getattr(space, "split", None)
    if callable(split):

        @lru_cache(maxsize=65536)
        def by_split(goal: str) -> bool:
            return bool(split(goal) == "test")

        return by_split
    return frozenset(space.goals("test")).__contains__


@dataclass(frozen=True)
class RowDraws:
    """The random numbers of one batch, drawn at once (see the module docstring)."""

    relabel: Bools
    """[B] the row is relabeled (probability ``her_ratio``)."""
    negative: Bools
    """[B] a relabeled row gets a goal not achieved (probability ``her_negatives``)."""
    choice: Floats
    """[B] which candidate (achieved goal, or anchor of a negative)."""
    tries: Floats
    """[B, NEGATIVE_TRIES] the draws of a negative goal."""


class ReplaySampler:
    """Uniform n-step transition batches with a share of hindsight-relabeled goals.

    ``her_ratio`` is the probability that a row is relabeled (rows with nothing
    to relabel with keep their goal, ``relabeled`` False). Of the relabeled rows,
    a share ``her_negatives`` get a goal the episode never achieved, of the
    category of a goal achieved in the row's future (a hindsight negative, reward
    0); with ``her_balance`` that goal is drawn from the batch's positive
    relabels, so every goal gets negatives in proportion to its positives, else
    from the goal space's training goals of that category. With ``her_steps_left``
    a relabeled row is the one an episode of its goal would have had (storage/her.py):
    its ``Steps left`` line, window and candidates follow that goal's horizon, learned
    from the first state of a stored episode pursued under its category. ``predicate(goal,
    achieved_goals)`` is the env's goal test (its goal space's ``achieved``),
    used for relabeled rows: storage knows no environment, so it is passed in.
    ``goal_space`` gives categories and the held-out (``test``) goals, which
    never enter a batch; without it nothing is held out and negatives come only
    from the batch. ``time_limit`` says whether a row whose window reaches a
    time-limit cut bootstraps (``bootstrap``) or not (``terminal``,
    ``observed``). A sampler owns its random generator: use one sampler per
    thread. Batch lists may share objects with the source's episodes; treat
    them as read-only.
    """

    def __init__(
        self,
        source: EpisodeSource,
        *,
        predicate: Predicate,
        her_ratio: float = REPLAY_DEFAULTS.her_ratio,
        strategy: Strategy = REPLAY_DEFAULTS.strategy,
        her_negatives: float = REPLAY_DEFAULTS.her_negatives,
        her_balance: bool = REPLAY_DEFAULTS.her_balance,
        her_steps_left: bool = REPLAY_DEFAULTS.her_steps_left,
        goal_space: GoalSpace | None = None,
        n_step: int = 3,
        gamma: float = 0.99,
        time_limit: TimeLimit = DEFAULT_TIME_LIMIT,
        rng: np.random.Generator | int | None = None,
        max_redraws: int = 16,
    ) -> None:
        _check_options(her_ratio, strategy, her_negatives, n_step, gamma, time_limit)
        self.source = source
        self.her_ratio = her_ratio
        self.strategy: Strategy = strategy
        self.her_negatives = her_negatives
        self.her_balance = her_balance
        self.her_steps_left = her_steps_left
        self._horizons: dict[str, int] = {}
        """Category -> the horizon its episodes show at their first state (her_steps_left)."""
        self.goals = GoalKnowledge.of(goal_space)
        self.n_step = n_step
        self.gamma = gamma
        self.time_limit: TimeLimit = time_limit
        self.predicate = predicate
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.max_redraws = max_redraws
        self._skipped: set[int] = set()
        """Ids of episodes pursued under a held-out goal: never drawn (ids are not reused)."""
        self._events: dict[int, list[tuple[int, str]]] = {}
        """Episode id -> its relabeling events (a stored episode never changes and ids are
        not reused), as the horizons known when they were listed allow."""
        self._events_horizons = 0
        """How many horizons ``_events`` was listed under (a new one lists them again)."""
        self.keep_events = True
        """Off: every batch lists the events of every episode it drew, as the sampler did
        before it kept them (benchmarks measure the gain)."""

    @classmethod
    def from_config(
        cls,
        config: ReplayConfig,
        source: EpisodeSource,
        goal_space: GoalSpace,
        *,
        n_step: int,
        gamma: float,
        time_limit: TimeLimit,
        rng: np.random.Generator | int | None = None,
    ) -> ReplaySampler:
        """The sampler the ``replay:`` section describes, over ``source``, relabeling with
        ``goal_space``'s predicate, for an off-policy algorithm's ``n_step`` and ``gamma``:
        the one mapping from settings to a sampler (the agent's and the benchmarks')."""
        return cls(
            source,
            predicate=goal_space.achieved,
            her_ratio=config.her_ratio,
            strategy=config.strategy,
            her_negatives=config.her_negatives,
            her_balance=config.her_balance,
            her_steps_left=config.her_steps_left,
            goal_space=goal_space,
            n_step=n_step,
            gamma=gamma,
            time_limit=time_limit,
            rng=rng,
        )

    def sample(self, batch_size: int) -> TransitionBatch:
        """``batch_size`` rows drawn uniformly over the stored trainable transitions."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        views, rows, steps = self._draw(batch_size)
        draws = RowDraws(
            self.rng.random(batch_size) < self.her_ratio,
            self.rng.random(batch_size) < self.her_negatives,
            self.rng.random(batch_size),
            self.rng.random((batch_size, NEGATIVE_TRIES)),
        )
        return self._assemble(views, rows, steps, draws)

    # -- which rows --------------------------------------------------------------------------

    def _draw(self, batch_size: int) -> tuple[dict[int, EpisodeView], list[int], list[int]]:
        """Episode id and step of each row, with the views read for them.

        A row that lands in an evicted episode, or in one first seen to be pursued
        under a held-out goal (then skipped for good), is drawn again; only evictions
        count against ``max_redraws``, since each held-out discovery shrinks what is left.
        """
        row_ids = np.full(batch_size, -1, dtype=np.int64)
        row_steps = np.zeros(batch_size, dtype=np.int64)
        views: dict[int, EpisodeView] = {}
        pending = np.arange(batch_size)
        redraws = 0
        while redraws <= self.max_redraws:
            ids, steps = self._positions(len(pending))
            missing = {int(i) for i in ids} - views.keys()
            fetched = self.source.fetch_views(sorted(missing)) if missing else {}
            held = self._hold_out(fetched)
            self._learn_horizons(fetched)
            views.update(fetched)
            found = np.fromiter((int(i) in views for i in ids), dtype=np.bool_, count=len(ids))
            row_ids[pending[found]] = ids[found]
            row_steps[pending[found]] = steps[found]
            pending = pending[~found]
            if len(pending) == 0:
                return views, row_ids.tolist(), row_steps.tolist()
            redraws += 0 if held else 1
        raise StorageError(
            f"episodes were evicted faster than they could be read ({self.max_redraws} redraws); "
            "the store's capacity is too small for the write rate"
        )

    def _hold_out(self, fetched: dict[int, EpisodeView]) -> bool:
        """Remove from ``fetched`` the episodes pursued under a held-out goal and skip them
        from now on; whether there were any."""
        test = self.goals.held_out
        if test is None:
            return False
        held = [i for i, v in fetched.items() if test(v.goal)]
        for i in held:
            del fetched[i]
            self._skipped.add(i)
        return bool(held)

    def _learn_horizons(self, fetched: dict[int, EpisodeView]) -> None:
        """Note the horizon of each category not yet known, from an episode pursued under
        it (its first state's steps left; goals a scene makes infeasible get longer limits,
        so only goals the goal space calls feasible count)."""
        if not self.her_steps_left:
            return
        for view in fetched.values():
            category = self.goals.category(view.goal)
            if category in self._horizons or not self.goals.feasible(view.goal):
                continue
            left = steps_left(view.state(0)[0])
            if left is not None:
                self._horizons[category] = left

    def _horizon(self, goal: str) -> int | None:
        """The horizon of ``goal``'s episodes where ``her_steps_left`` follows it."""
        return self._horizons.get(self.goals.category(goal)) if self.her_steps_left else None

    def _positions(self, count: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``count`` (episode id, step) drawn uniformly over the transitions of the live
        episodes not skipped."""
        snapshot = self.source.index_snapshot()
        if snapshot.num_transitions == 0:
            raise EmptyReplayError("the replay holds no transitions yet: store episodes first")
        if not self._skipped:
            positions = self.rng.integers(0, snapshot.num_transitions, size=count, dtype=np.int64)
            index_rows, steps = snapshot.locate(positions)
            return snapshot.ids[index_rows], steps
        self._skipped.intersection_update(snapshot.ids.tolist())  # forget evicted ones
        skipped = np.fromiter(self._skipped, dtype=np.int64, count=len(self._skipped))
        lengths = np.where(np.isin(snapshot.ids, skipped), 0, snapshot.lengths)
        ends = np.cumsum(lengths)
        if ends[-1] == 0:
            raise EmptyReplayError(
                "every stored episode was pursued under a held-out goal: nothing to train on"
            )
        positions = self.rng.integers(0, int(ends[-1]), size=count, dtype=np.int64)
        index_rows = np.searchsorted(ends, positions, side="right")
        steps = positions - (ends[index_rows] - lengths[index_rows])
        return snapshot.ids[index_rows], steps.astype(np.int64)

    # -- which goal each row is trained on ---------------------------------------------------

    def _goals(
        self,
        views: dict[int, EpisodeView],
        rows: list[int],
        steps: list[int],
        draws: RowDraws,
    ) -> tuple[list[str], Bools]:
        """Each row's goal and whether it is a relabel: positives first, then negatives,
        which may draw on the positives (``her_balance``)."""
        n = len(rows)
        goals = [views[r].goal for r in rows]
        relabeled = np.zeros(n, dtype=np.bool_)
        if not self.her_ratio:
            return goals, relabeled
        if not self.keep_events:
            self._events.clear()
            for episode in views:
                self._events_of(episode, views)
        anchors: dict[int, tuple[str]] = {}
        positives: dict[str, list[str]] = defaultdict(list)
        for i in np.flatnonzero(draws.relabel):
            found = relabel_candidates(self._events_of(rows[i], views), steps[i], self.strategy)
            options = trainable(found, self.goals.held_out)
            if not options:
                continue
            pick = options[int(draws.choice[i] * len(options))]
            if draws.negative[i]:
                anchors[int(i)] = (pick,)
                continue
            goals[i] = pick
            relabeled[i] = True
            positives[self.goals.category(pick)].append(pick)
        sets = {rows[row]: achieved_sets(views[rows[row]]) for row in anchors}
        for row, (anchor,) in anchors.items():
            view = views[rows[row]]
            goal = self._negative(view, sets[rows[row]], anchor, positives, draws.tries[row])
            if goal is not None:
                goals[row] = goal
                relabeled[row] = True
        return goals, relabeled

    def _events_of(self, episode: int, views: dict[int, EpisodeView]) -> list[tuple[int, str]]:
        """The goals ``episode`` achieved other than its own, by step, within their horizons;
        listed once per episode (replay draws the same episodes again and again)."""
        if len(self._horizons) != self._events_horizons:
            self._events.clear()
            self._events_horizons = len(self._horizons)
        events = self._events.get(episode)
        if events is None:
            events = achievement_events(views[episode])
            if self.her_steps_left:
                events = within_horizons(events, self._horizon)
            if len(self._events) >= _EVENTS_LIMIT:
                self._events.clear()
            self._events[episode] = events
        return events

    def _negative(
        self,
        view: EpisodeView,
        achieved: list[list[str]],
        anchor: str,
        positives: dict[str, list[str]],
        tries: Floats,
    ) -> str | None:
        """A goal of ``anchor``'s category that ``view`` never achieved: from the batch's
        positives under ``her_balance`` (the goal space's training goals when they give
        none), else from the training goals."""
        category = self.goals.category(anchor)
        draws = tries.tolist()
        if self.her_balance:
            found = negative_goal(
                view, achieved, positives.get(category, []), draws, self.predicate
            )
            if found is not None:
                return found
        return negative_goal(
            view, achieved, self.goals.pool.get(category, []), draws, self.predicate
        )

    # -- the batch ---------------------------------------------------------------------------

    def _assemble(
        self,
        views: dict[int, EpisodeView],
        rows: list[int],
        steps: list[int],
        draws: RowDraws,
    ) -> TransitionBatch:
        n = len(rows)
        goals, relabeled = self._goals(views, rows, steps, draws)
        observations, candidates, next_observations, next_candidates = [], [], [], []
        actions = np.zeros(n, dtype=np.int64)
        rewards = np.zeros(n, dtype=np.float32)
        discounts = np.zeros(n, dtype=np.float32)
        terminated = np.zeros(n, dtype=np.bool_)
        versions = np.zeros(n, dtype=np.int64)
        for i in range(n):
            view, t = views[rows[i]], steps[i]
            limit = self._horizon(goals[i]) if relabeled[i] else None
            target = n_step(
                view,
                t,
                goals[i],
                bool(relabeled[i]),
                self.n_step,
                self.gamma,
                self.predicate,
                self.time_limit,
                limit,
            )
            observation, admissible = view.state(t)
            next_observation, next_admissible = view.state(target.next_index)
            if limit is not None:
                observation = with_steps_left_line(observation, limit - t)
                next_observation = with_steps_left_line(next_observation, limit - target.next_index)
            observations.append(observation)
            candidates.append(admissible)
            next_observations.append(next_observation)
            next_candidates.append(next_admissible)
            actions[i] = view.actions[t]
            rewards[i] = target.reward
            discounts[i] = target.discount
            terminated[i] = target.terminated
            versions[i] = view.policy_versions[t]
        return TransitionBatch(
            goals=goals,
            observations=observations,
            candidates=candidates,
            actions=actions,
            rewards=rewards,
            discounts=discounts,
            next_observations=next_observations,
            next_candidates=next_candidates,
            terminated=terminated,
            relabeled=relabeled,
            policy_versions=versions,
        )


def _check_options(
    her_ratio: float,
    strategy: Strategy,
    her_negatives: float,
    n_step: int,
    gamma: float,
    time_limit: TimeLimit,
) -> None:
    """Refuse a sampler configuration that could only fail later, with the reason."""
    if not 0.0 <= her_ratio <= 1.0:
        raise ValueError(f"her_ratio must be in [0, 1], got {her_ratio}")
    if not 0.0 <= her_negatives <= 1.0:
        raise ValueError(f"her_negatives must be in [0, 1], got {her_negatives}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown HER strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if n_step < 1:
        raise ValueError(f"n_step must be >= 1, got {n_step}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if time_limit not in TIME_LIMITS:
        raise ValueError(
            f"unknown time-limit mode {time_limit!r}; use one of {', '.join(TIME_LIMITS)}"
        )
