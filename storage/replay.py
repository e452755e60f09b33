"""Replay sampling with hindsight relabeling: stored episodes -> the learner's batch.

Rows are drawn uniformly over stored transitions from the source's in-memory
index (one ``searchsorted``, no database scan), then only the episodes drawn are
read, in one read transaction. An episode evicted between the index snapshot and
the read is simply absent from the read, and its rows are drawn again.

How a time-limit cut enters each row's target is the sampler's ``time_limit``
mode (:data:`~autotelic.storage.her.TimeLimit`): terminal (``terminal``,
``observed``) or bootstrapped (``bootstrap``). The stored episodes keep the env's
own ``terminated`` / ``truncated`` flags, so one store can be replayed in any mode.

Random draws are made for the whole batch at once (positions, relabel coins,
goal choices), so a seeded generator gives the same batch for the same store
content, whatever the episodes contain.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np

from autotelic.core import TransitionBatch
from autotelic.storage.errors import EmptyReplayError, StorageError
from autotelic.storage.her import (
    DEFAULT_TIME_LIMIT,
    STRATEGIES,
    TIME_LIMITS,
    Predicate,
    Strategy,
    TimeLimit,
    achievement_events,
    n_step,
    relabel_candidates,
)
from autotelic.storage.index import IndexSnapshot
from autotelic.storage.records import EpisodeView


class EpisodeSource(Protocol):
    """What the sampler needs of a store (the LMDB store and the in-memory one)."""

    def index_snapshot(self) -> IndexSnapshot:
        """Ids and lengths of the live episodes."""
        ...

    def fetch_views(self, episode_ids: Iterable[int]) -> dict[int, EpisodeView]:
        """Views of those of ``episode_ids`` still stored."""
        ...


class ReplaySampler:
    """Uniform n-step transition batches with a share of hindsight-relabeled goals.

    ``her_ratio`` is the probability that a row is relabeled (rows with nothing
    to relabel with keep their goal, ``relabeled`` False). ``predicate(goal,
    achieved_goals)`` is the env's goal test (its goal space's ``achieved``), used
    for relabeled rows: storage knows no environment, so it is passed in.
    ``time_limit`` says whether a row whose window reaches a time-limit cut
    bootstraps (``bootstrap``) or not (``terminal``, ``observed``). A sampler
    owns its random generator: use one sampler per thread. Batch lists may share
    objects with the source's episodes; treat them as read-only.
    """

    def __init__(
        self,
        source: EpisodeSource,
        *,
        predicate: Predicate,
        her_ratio: float = 0.8,
        strategy: Strategy = "future",
        n_step: int = 3,
        gamma: float = 0.99,
        time_limit: TimeLimit = DEFAULT_TIME_LIMIT,
        rng: np.random.Generator | int | None = None,
        max_redraws: int = 16,
    ) -> None:
        if not 0.0 <= her_ratio <= 1.0:
            raise ValueError(f"her_ratio must be in [0, 1], got {her_ratio}")
        if strategy not in STRATEGIES:
            raise ValueError(
                f"unknown HER strategy {strategy!r}; use one of {', '.join(STRATEGIES)}"
            )
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        if time_limit not in TIME_LIMITS:
            raise ValueError(
                f"unknown time-limit mode {time_limit!r}; use one of {', '.join(TIME_LIMITS)}"
            )
        self.source = source
        self.her_ratio = her_ratio
        self.strategy: Strategy = strategy
        self.n_step = n_step
        self.gamma = gamma
        self.time_limit: TimeLimit = time_limit
        self.predicate = predicate
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.max_redraws = max_redraws

    def sample(self, batch_size: int) -> TransitionBatch:
        """``batch_size`` rows drawn uniformly over the stored transitions."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        views, rows, steps = self._draw(batch_size)
        coins = self.rng.random(batch_size)
        choices = self.rng.random(batch_size)
        return self._assemble(views, rows, steps, coins < self.her_ratio, choices)

    def _draw(self, batch_size: int) -> tuple[dict[int, EpisodeView], list[int], list[int]]:
        """Episode id and step of each row, with the views read for them."""
        row_ids = np.full(batch_size, -1, dtype=np.int64)
        row_steps = np.zeros(batch_size, dtype=np.int64)
        views: dict[int, EpisodeView] = {}
        pending = np.arange(batch_size)
        for _ in range(self.max_redraws + 1):
            snapshot = self.source.index_snapshot()
            total = snapshot.num_transitions
            if total == 0:
                raise EmptyReplayError("the replay holds no transitions yet: store episodes first")
            positions = self.rng.integers(0, total, size=len(pending), dtype=np.int64)
            index_rows, steps = snapshot.locate(positions)
            ids = snapshot.ids[index_rows]
            missing = {int(i) for i in ids} - views.keys()
            if missing:
                views.update(self.source.fetch_views(sorted(missing)))
            found = np.fromiter((int(i) in views for i in ids), dtype=np.bool_, count=len(ids))
            row_ids[pending[found]] = ids[found]
            row_steps[pending[found]] = steps[found]
            pending = pending[~found]
            if len(pending) == 0:
                return views, row_ids.tolist(), row_steps.tolist()
        raise StorageError(
            f"episodes were evicted faster than they could be read ({self.max_redraws} redraws); "
            "the store's capacity is too small for the write rate"
        )

    def _assemble(
        self,
        views: dict[int, EpisodeView],
        rows: list[int],
        steps: list[int],
        relabel: np.ndarray[tuple[int], np.dtype[np.bool_]],
        choices: np.ndarray[tuple[int], np.dtype[np.float64]],
    ) -> TransitionBatch:
        n = len(rows)
        events = {i: achievement_events(v) for i, v in views.items()} if self.her_ratio else {}
        observations, candidates, next_observations, next_candidates, goals = [], [], [], [], []
        actions = np.zeros(n, dtype=np.int64)
        rewards = np.zeros(n, dtype=np.float32)
        discounts = np.zeros(n, dtype=np.float32)
        terminated = np.zeros(n, dtype=np.bool_)
        relabeled = np.zeros(n, dtype=np.bool_)
        versions = np.zeros(n, dtype=np.int64)
        for i in range(n):
            view, t = views[rows[i]], steps[i]
            goal = view.goal
            if relabel[i]:
                options = relabel_candidates(events[rows[i]], t, self.strategy)
                if options:
                    goal = options[int(choices[i] * len(options))]
                    relabeled[i] = True
            target = n_step(
                view,
                t,
                goal,
                bool(relabeled[i]),
                self.n_step,
                self.gamma,
                self.predicate,
                self.time_limit,
            )
            observation, admissible = view.state(t)
            next_observation, next_admissible = view.state(target.next_index)
            observations.append(observation)
            candidates.append(admissible)
            next_observations.append(next_observation)
            next_candidates.append(next_admissible)
            goals.append(goal)
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
