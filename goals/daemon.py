"""The goal daemon: the one object the runtime talks to about goals.

The collector calls :meth:`GoalDaemon.next_goals` and :meth:`GoalDaemon.report`
from its worker thread while MQTT injections arrive from the asyncio thread, so
every public method takes one lock. Injection reports are delivered to the
registered callbacks after the lock is released, so a callback may call back
into the daemon.

Persistence has two parts, each with one home:

- What must never be lost goes to the :class:`StateStore` as soon as it changes:
  the goal registry (a discovered or injected goal stays known) and the
  injection queue (an accepted injection is served even after a crash). The
  daemon reads both back when built.
- The learning state (estimator, sampler, episode counters, success windows)
  lives only in :meth:`GoalDaemon.state_dict`, which the runtime saves in the
  same checkpoint as the policy and restores with it through
  :meth:`GoalDaemon.load_state_dict`. The policy and the curriculum that
  chose its goals thus always come from the same moment; a daemon built from
  the store alone knows every goal and injection but learns afresh.

With ``keep_results=True`` (and a :class:`BatchStateStore`) the reports owed to
requesters are a durable outbox: each report is written under
``curriculum/results/<n>`` in the same atomic write as the injection queue that
produced it, stays there until the consumer calls :meth:`GoalDaemon.acknowledge`
(the MQTT bridge does once the broker acknowledged it), and is handed out again
by :meth:`GoalDaemon.owed_results` after a restart: delivered at least once,
under a stable :attr:`InjectionReport.message_id`.

Held-out goals (the goal space's test split, see :mod:`.splits`) are known like
any other (discovered, injected, listed in the stats with their attempts) but
never enter the *training pool* the curriculum samples from, and their outcomes
never reach the LP estimator or the per-category success windows: an injected
held-out goal runs the episodes it asked for and is reported, and nothing the
agent does with it steers what it practises.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from autotelic.core import GoalSpace, ParsedGoal
from autotelic.goals.assignments import EpisodeOutcome, GoalAssignment
from autotelic.goals.config import CurriculumConfig
from autotelic.goals.embedding_lp import EmbeddingLP
from autotelic.goals.embeddings import EmbedFn, MiniLMEncoder
from autotelic.goals.errors import (
    InjectionRejected,
    InvalidGoalError,
    InvalidOutcomeError,
    NoGoalsError,
)
from autotelic.goals.estimators import (
    BucketLP,
    CompetenceEstimator,
    FloatArray,
    GoalLP,
    WindowedLP,
)
from autotelic.goals.injections import Injection, InjectionQueue, InjectionReport
from autotelic.goals.registry import SOURCES, GoalRecord, GoalRegistry, Source
from autotelic.goals.sampler import LPSampler
from autotelic.goals.splits import HeldOutGoals
from autotelic.goals.state import STATE_PREFIX, BatchStateStore, StateStore
from autotelic.goals.stats import CategoryStats, CurriculumStats, GoalStats

log = logging.getLogger(__name__)

ReportCallback = Callable[[InjectionReport], None]

REGISTRY_KEY = STATE_PREFIX + "registry"
INJECTIONS_KEY = STATE_PREFIX + "injections"
RESULTS_PREFIX = STATE_PREFIX + "results/"
"""Store keys of owed injection reports: this prefix, then a 16-digit sequence number."""
STATE_VERSION = 1


def make_estimator(
    config: CurriculumConfig,
    *,
    category_of: Callable[[str], str],
    embed: EmbedFn | None = None,
) -> CompetenceEstimator:
    """The estimator the configuration names (MiniLM is loaded only for ``embedding``)."""
    if config.estimator == "goal":
        return GoalLP(config.goal_window)
    if config.estimator == "bucket":
        return BucketLP(category_of, config.bucket_window)
    return EmbeddingLP(
        embed if embed is not None else MiniLMEncoder(), config.embedding, seed=config.seed
    )


class GoalDaemon:
    """Goal registry, LP curriculum and injection queue behind one lock."""

    def __init__(
        self,
        config: CurriculumConfig | None = None,
        *,
        goal_space: GoalSpace,
        store: StateStore | None = None,
        embed: EmbedFn | None = None,
        estimator: CompetenceEstimator | None = None,
        clock: Callable[[], float] = time.time,
        on_report: ReportCallback | None = None,
        keep_results: bool = False,
    ) -> None:
        self.config = config if config is not None else CurriculumConfig()
        self.goal_space = goal_space
        self.store = store
        self.clock = clock
        self._lock = threading.RLock()
        self._callbacks: list[ReportCallback] = [] if on_report is None else [on_report]
        self.registry = GoalRegistry(goal_space)
        self.injections = InjectionQueue(self.config.injections)
        self._categories: dict[str, str] = {}
        self._feasible: dict[str, bool] = {}
        self.held_out = HeldOutGoals(goal_space)
        self.estimator = (
            estimator
            if estimator is not None
            else make_estimator(self.config, category_of=self.category_of, embed=embed)
        )
        self.sampler = LPSampler(self.config.sampler, seed=self.config.seed)
        self.episodes = 0
        # Recent outcomes per category behind the success-rate metrics (keyed by category).
        self._category_windows = WindowedLP(self.config.stats_window)
        self._attempts: dict[str, list[int]] = {}
        # Goals some episode achieved, pursued or not: the agent's own evidence that a
        # goal is feasible (the unsolved reserve's patience spares them).
        self._achieved: set[str] = set()
        # The durable outbox: message id -> (store key, report as published).
        self._outbox = store if keep_results and isinstance(store, BatchStateStore) else None
        if keep_results and store is not None and self._outbox is None:
            log.warning("injection results are not kept: the state store cannot batch writes")
        self._owed: dict[str, tuple[str, dict[str, Any]]] = {}
        self._next_result = 0
        if store is not None:
            self._restore_from_store(store)
        self._add_configured()

    # -- goals -----------------------------------------------------------------

    def validate(self, text: str) -> ParsedGoal:
        """Canonical text and category, or :class:`InvalidGoalError` with the space's reason."""
        return self.goal_space.parse(text)

    def category_of(self, goal: str) -> str:
        """Category of a goal text (cached; raises :class:`InvalidGoalError` if invalid)."""
        category = self._categories.get(goal)
        if category is None:
            category = self._categories[goal] = self.goal_space.parse(goal).category
        return category

    def add_goal(self, text: str, source: Source = "configured") -> GoalRecord:
        """Register a goal (no-op if known); raises :class:`InvalidGoalError`."""
        if source not in SOURCES:
            raise ValueError(f"unknown goal source {source!r}; expected one of {SOURCES}")
        with self._lock:
            record, added = self.registry.add(text, source, time=self.clock())
            if added:
                self._put_registry()
            return record

    def goals(self) -> list[GoalRecord]:
        """Every known goal, in arrival order (held-out ones included)."""
        with self._lock:
            return list(self.registry)

    def training_goals(self) -> list[str]:
        """The training pool: the known goals self-chosen episodes are drawn from."""
        with self._lock:
            return self._pool()

    # -- the collector's side ----------------------------------------------------

    def next_goals(self, n: int) -> list[GoalAssignment]:
        """``n`` goals for the next episodes: injected ones first, then LP-sampled ones."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"next_goals needs a count >= 0, got {n!r}")
        with self._lock:
            reports = self.injections.expire(self.clock())
            waiting = self.injections.pending_episodes()
            if n > waiting and not self._pool():
                raise NoGoalsError(
                    "no known training goal to choose from (held-out goals are never "
                    "practised): configure goals, turn discovery on, or inject a goal"
                )
            assigned = [
                GoalAssignment(i.goal, i.category, "injected", i.id)
                for i in self.injections.take(n)
            ]
            if len(assigned) < n:
                assigned.extend(self._sample(n - len(assigned)))
            if reports:
                self._put_injections(reports=reports)
        self._deliver(reports)
        return assigned

    def report(self, outcome: EpisodeOutcome) -> list[GoalRecord]:
        """Account for a finished episode; returns the goals it made known (discovered)."""
        parsed = self._check_outcome(outcome)
        with self._lock:
            now = self.clock()
            discovered: list[GoalRecord] = []
            if self.config.discover:
                discovered = self.registry.discover(
                    outcome.achieved_goals, time=now, episode=outcome.episode_id
                )
            self._count(parsed, bool(outcome.success))
            self._achieved.update(outcome.achieved_goals)
            if outcome.success:
                self._achieved.add(parsed.text)
            reports: list[InjectionReport] = []
            if outcome.injection_id is not None:
                reports = self.injections.record(
                    outcome.injection_id,
                    success=bool(outcome.success),
                    steps=outcome.steps,
                    episode_id=outcome.episode_id,
                    achieved_goals=outcome.achieved_goals,
                    now=now,
                )
            reports.extend(self.injections.expire(now))
            if discovered:
                self._put_registry()
            if reports:
                self._put_injections(reports=reports)
        self._deliver(reports)
        return discovered

    # -- injections ------------------------------------------------------------------

    def inject(
        self,
        goal: str,
        episodes: int = 1,
        *,
        priority: int = 0,
        expires_at: float | None = None,
        ttl: float | None = None,
    ) -> Injection:
        """Queue a goal people asked for; a copy of the accepted injection (with its id).

        ``expires_at`` (absolute, the daemon's clock) or ``ttl`` (seconds from now)
        bounds how long its unserved episodes wait. Raises
        :class:`InjectionRejected` with the reason when it cannot be accepted.
        """
        try:
            parsed = self.goal_space.parse(goal)
        except InvalidGoalError as err:
            raise InjectionRejected(err.reason, goal) from None
        with self._lock:
            now = self.clock()
            deadline = _deadline(parsed.text, now, expires_at, ttl)
            injection = self.injections.submit(
                parsed, episodes=episodes, priority=priority, expires_at=deadline, now=now
            )
            _, added = self.registry.add(parsed.text, "injected", time=now)
            if self.held_out(parsed.text):
                log.info("injected goal %r is held out: served, never practised", parsed.text)
            try:
                self._put_injections(strict=True)
                if added:
                    self._put_registry(strict=True)
            except Exception as err:
                self.injections.withdraw(injection.id)
                raise InjectionRejected(f"could not be stored: {err}", goal) from err
            return replace(injection)

    def add_report_callback(self, callback: ReportCallback) -> None:
        """Call ``callback`` with every :class:`InjectionReport` (from the reporting thread)."""
        with self._lock:
            self._callbacks.append(callback)

    def expire_injections(self) -> list[InjectionReport]:
        """Drop expired injections now (also done on every call of the collector)."""
        with self._lock:
            reports = self.injections.expire(self.clock())
            if reports:
                self._put_injections(reports=reports)
        self._deliver(reports)
        return reports

    def injection(self, injection_id: str) -> Injection | None:
        """A copy of an active injection, or None once finished or unknown."""
        with self._lock:
            found = self.injections.get(injection_id)
            return None if found is None else replace(found)

    # -- the durable outbox of results --------------------------------------------------

    @property
    def results_pending(self) -> int:
        """Reports kept in the durable outbox that no consumer has acknowledged yet."""
        return len(self._owed)

    def owed_results(self) -> list[dict[str, Any]]:
        """The unacknowledged reports, oldest first, as published (with ``message_id``)."""
        with self._lock:
            return [dict(data) for _, data in sorted(self._owed.values(), key=lambda e: e[0])]

    def acknowledge(self, message_id: str) -> bool:
        """Drop a delivered report from the durable outbox; False if it was not there.

        Raises if the store cannot write: the report stays owed and is offered
        again after a restart.
        """
        with self._lock:
            entry = self._owed.get(message_id)
            if entry is None or self._outbox is None:
                return False
            self._outbox.put_states({}, delete=[entry[0]])
            del self._owed[message_id]
            return True

    # -- views -------------------------------------------------------------------------

    def attempts(self) -> dict[str, tuple[int, int]]:
        """Episodes pursued and won per goal since the run began (held-out goals and
        injected episodes included): what the curriculum's shares are measured from."""
        with self._lock:
            return {g: (int(t), int(w)) for g, (t, w) in self._attempts.items()}

    def probabilities(self) -> dict[str, float]:
        """The distribution the next self-chosen goal is drawn from, over the training pool
        (held-out goals are never drawn, so they are not listed)."""
        with self._lock:
            goals = self._pool()
            probs = self._probabilities(goals) if goals else np.zeros(0)
            return {g: float(p) for g, p in zip(goals, probs, strict=True)}

    def stats(self, detail: bool = False) -> CurriculumStats:
        """Per-category figures for metrics; per-goal rows too when ``detail``."""
        with self._lock:
            goals = self.registry.goals()
            categories = [self.category_of(g) for g in goals]
            # Category figures cover the training pool; held-out goals appear per goal only.
            pooled = [
                None if self.held_out(g) else c for g, c in zip(goals, categories, strict=True)
            ]
            lp = self.estimator.lp(goals) if goals else np.zeros(0)
            competence = self.estimator.competence(goals) if goals else np.zeros(0)
            probs = self._probabilities(goals, lp) if goals else np.zeros(0)
            per_category = {
                name: self._category_stats(name, pooled, lp, competence, probs)
                for name in dict.fromkeys(
                    [*self.goal_space.categories(), *self._category_windows.keys()]
                )
            }
            rows = None
            if detail:
                rows = [
                    self._goal_stats(g, c, lp[i], competence[i], probs[i])
                    for i, (g, c) in enumerate(zip(goals, categories, strict=True))
                ]
            return CurriculumStats(
                episodes=self.episodes,
                epsilon=self.sampler.epsilon(self.episodes),
                estimator=self.estimator.kind,
                goals_by_source=self.registry.counts_by_source(),
                injections_active=len(self.injections),
                injected_episodes_pending=self.injections.pending_episodes(),
                categories=per_category,
                goals=rows,
            )

    # -- persistence ---------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything, msgpack- and JSON-able: the curriculum's part of a checkpoint.

        The learning state is saved nowhere else, so a checkpoint holds the
        curriculum of the same moment as the policy saved with it.
        """
        with self._lock:
            return {
                "version": STATE_VERSION,
                "registry": self.registry.state_dict(),
                "injections": self.injections.state_dict(),
                "learning": self._learning_state(),
            }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (from the checkpoint the policy is restored from).

        The registry and the injections are merged with what the daemon holds (a
        checkpoint may be older than the state store: known goals stay known,
        finished injections stay finished) and the merge is written to the store;
        the learning state is replaced. States saved before the success windows
        were a :class:`WindowedLP` still load.
        """
        version = state.get("version")
        if version != STATE_VERSION:
            raise ValueError(f"curriculum state version {version!r}, expected {STATE_VERSION}")
        with self._lock:
            self.registry.load_state_dict(state["registry"])
            self.injections.load_state_dict(state["injections"])
            self._load_learning(state["learning"])
            self._put_registry()
            self._put_injections()

    def persist(self) -> None:
        """Write the registry and the injections to the store now (a no-op without one).

        They are written as they change already; this retries a write that failed
        and raises if it fails again. The learning state is not the store's: see
        :meth:`state_dict`.
        """
        with self._lock:
            self._put_registry(strict=True)
            self._put_injections(strict=True)

    # -- internals -------------------------------------------------------------------

    def _add_configured(self) -> None:
        configured = self.config.configured_goals
        texts = self.goal_space.goals("train") if configured is None else configured
        now = self.clock()
        added = False
        for text in texts:
            record, new = self.registry.add(text, "configured", time=now)
            added = added or new
            if new and self.held_out(record.text):
                log.warning("configured goal %r is held out: known, never practised", text)
        if added:
            self._put_registry()

    def _pool(self) -> list[str]:
        """Known goals that are not held out, in arrival order."""
        return [g for g in self.registry.goals() if not self.held_out(g)]

    def _sample(self, n: int) -> list[GoalAssignment]:
        goals = self._pool()
        picks = self.sampler.sample(self._probabilities(goals), n)
        out = []
        for index in picks:
            record = self.registry.get(goals[index])
            assert record is not None
            out.append(GoalAssignment(record.text, record.category, record.source, None))
        return out

    def _probabilities(self, goals: Sequence[str], lp: FloatArray | None = None) -> FloatArray:
        """The sampling distribution over ``goals``: 0 for held-out ones, the sampler's over
        the others (which must then be the training pool, so that they sum to one)."""
        lp = self.estimator.lp(goals) if lp is None else lp
        train = np.array([not self.held_out(g) for g in goals], dtype=bool)
        pool = [g for g, keep in zip(goals, train, strict=True) if keep]
        probs = np.zeros(len(goals))
        if pool:
            unsolved = self._unsolved(pool)
            probs[train] = self.sampler.probabilities(
                lp[train],
                self.episodes,
                unsolved,
                categories=[self.category_of(g) for g in pool],
                possible=[self._possible(g) for g in pool],
                frontier=unsolved & np.array([g in self._achieved for g in pool], dtype=bool),
            )
        return probs

    def _unsolved(self, goals: Sequence[str]) -> npt.NDArray[np.bool_]:
        """Goals not yet mastered that the goal space does not know to be impossible: those
        the sampler's reserve is for.

        Not mastered: never won when pursued (untried ones included), counted here per goal
        since the start, since every estimator's LP is about progress and a per-category or
        embedding one gives an untried goal its neighbours' figures; or, with
        ``unsolved_below``, an estimated competence below it. A goal the space calls
        infeasible (growing furniture) is left out when the sampler is told
        (``use_feasibility``); otherwise ``unsolved_patience`` takes out the goals no
        episode has achieved after that many tries, so they keep only their floor and
        exploration, while a goal seen achieved stays in."""
        config = self.config.sampler
        below, patience = config.unsolved_below, config.unsolved_patience
        competence = None if below is None else self.estimator.competence(goals)
        flags = []
        for i, goal in enumerate(goals):
            tries, wins = self._attempts.get(goal, (0, 0))
            unmastered = wins == 0 if competence is None else bool(competence[i] < below)
            patient = patience is None or tries < patience or goal in self._achieved
            flags.append(unmastered and patient and self._possible(goal))
        return np.array(flags, dtype=bool)

    def _possible(self, goal: str) -> bool:
        """Whether the goal space allows ``goal`` to be achieved at all (cached); every goal
        is, as far as the sampler knows, when it is not told (``use_feasibility: false``)."""
        if not self.config.sampler.use_feasibility:
            return True
        possible = self._feasible.get(goal)
        if possible is None:
            possible = self._feasible[goal] = self.goal_space.feasible(goal) is not False
        return possible

    def _check_outcome(self, outcome: EpisodeOutcome) -> ParsedGoal:
        if not isinstance(outcome, EpisodeOutcome):
            raise InvalidOutcomeError(f"expected an EpisodeOutcome, got {type(outcome).__name__}")
        try:
            parsed = self.goal_space.parse(outcome.goal)
        except InvalidGoalError as err:
            raise InvalidOutcomeError(f"outcome for an invalid goal: {err.reason}") from None
        steps = outcome.steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise InvalidOutcomeError(f"steps must be an integer >= 0, got {steps!r}")
        achieved = outcome.achieved_goals
        if not isinstance(achieved, list | tuple) or not all(isinstance(g, str) for g in achieved):
            raise InvalidOutcomeError(
                f"achieved_goals must be a list of goal strings, got {achieved!r}"
            )
        episode_id = outcome.episode_id
        if episode_id is not None and (
            isinstance(episode_id, bool) or not isinstance(episode_id, int)
        ):
            raise InvalidOutcomeError(f"episode_id must be an integer or None, got {episode_id!r}")
        if outcome.injection_id is not None and not isinstance(outcome.injection_id, str):
            raise InvalidOutcomeError(
                f"injection_id must be a string or None, got {outcome.injection_id!r}"
            )
        return parsed

    def _count(self, parsed: ParsedGoal, success: bool) -> None:
        """Count an episode; a held-out goal's outcome stays out of the estimator and the
        category windows, so it neither steers the curriculum nor mixes into the
        training success rates (it still counts as an attempt of its goal)."""
        self.episodes += 1
        if not self.held_out(parsed.text):
            self.estimator.update(parsed.text, success)
            self._category_windows.update(parsed.category, success)
        counts = self._attempts.setdefault(parsed.text, [0, 0])
        counts[0] += 1
        counts[1] += int(success)

    def _category_stats(
        self,
        name: str,
        categories: Sequence[str | None],
        lp: FloatArray,
        competence: FloatArray,
        probs: FloatArray,
    ) -> CategoryStats:
        mask = np.array([c == name for c in categories], dtype=bool)
        count = int(mask.sum())
        windows = self._category_windows
        return CategoryStats(
            category=name,
            goals=count,
            episodes=min(int(windows.attempts([name])[0]), windows.window),
            success_rate=float(windows.competence([name])[0]),
            lp=float(windows.lp([name])[0]),
            mean_goal_lp=float(lp[mask].mean()) if count else 0.0,
            competence=float(competence[mask].mean()) if count else 0.0,
            sample_share=float(probs[mask].sum()) if count else 0.0,
        )

    def _goal_stats(
        self, goal: str, category: str, lp: float, competence: float, probability: float
    ) -> GoalStats:
        record = self.registry.get(goal)
        attempts, successes = self._attempts.get(goal, [0, 0])
        return GoalStats(
            goal=goal,
            category=category,
            source=record.source if record is not None else "configured",
            lp=float(lp),
            competence=float(competence),
            probability=float(probability),
            attempts=attempts,
            successes=successes,
            held_out=self.held_out(goal),
        )

    def _learning_state(self) -> dict[str, Any]:
        return {
            "episodes": self.episodes,
            "estimator": self.estimator.state_dict(),
            "sampler": self.sampler.state_dict(),
            "category_windows": self._category_windows.state_dict(),
            "attempts": {k: list(v) for k, v in self._attempts.items()},
            "achieved": sorted(self._achieved),
        }

    def _load_learning(self, state: dict[str, Any]) -> None:
        self.episodes = int(state["episodes"])
        self.sampler.load_state_dict(state["sampler"])
        if "category_windows" in state:
            self._category_windows.load_state_dict(state["category_windows"])
        else:  # saved before the windows were a WindowedLP: {category: [0 or 1, ...]}
            old = state["windows"]
            self._category_windows.load_state_dict(
                {
                    "kind": WindowedLP.kind,
                    "outcomes": old,
                    "attempts": {k: len(v) for k, v in old.items()},
                }
            )
        self._attempts = {k: [int(v[0]), int(v[1])] for k, v in state["attempts"].items()}
        # Saved before it was kept: the goals won when pursued are the evidence there is.
        self._achieved = set(state.get("achieved", [g for g, v in self._attempts.items() if v[1]]))
        try:
            self.estimator.load_state_dict(state["estimator"])
        except (ValueError, KeyError) as err:
            log.warning("curriculum estimator starts afresh: saved state not usable (%s)", err)

    def _restore_from_store(self, store: StateStore) -> None:
        """Goals and injections only; the learning state comes from a checkpoint, if any."""
        registry = store.get_state(REGISTRY_KEY)
        if registry is not None:
            self.registry.load_state_dict(registry)
        injections = store.get_state(INJECTIONS_KEY)
        if injections is not None:
            self.injections.load_state_dict(injections)
        if self._outbox is not None:
            for key in self._outbox.state_keys(RESULTS_PREFIX):
                data = self._outbox.get_state(key)
                if isinstance(data, dict) and isinstance(data.get("message_id"), str):
                    self._owed[data["message_id"]] = (key, data)
                self._next_result = int(key.removeprefix(RESULTS_PREFIX)) + 1

    def _put_registry(self, strict: bool = False) -> None:
        self._put(REGISTRY_KEY, self.registry.state_dict, strict)

    def _put_injections(
        self, strict: bool = False, reports: Sequence[InjectionReport] = ()
    ) -> None:
        """Write the injection queue; with the durable outbox, in the same atomic write
        as the reports it owes for the change (a report replaces an older one of its id)."""
        if self._outbox is None or not reports:
            self._put(INJECTIONS_KEY, self.injections.state_dict, strict)
            return
        values: dict[str, Any] = {INJECTIONS_KEY: self.injections.state_dict()}
        owed: dict[str, tuple[str, dict[str, Any]]] = {}
        for report in reports:
            key = f"{RESULTS_PREFIX}{self._next_result + len(values) - 1:016d}"
            owed[report.message_id] = (key, report.to_dict())
            values[key] = owed[report.message_id][1]
        replaced = [self._owed[m][0] for m in owed if m in self._owed]
        try:
            self._outbox.put_states(values, delete=replaced)
        except Exception:
            if strict:
                raise
            log.exception(
                "could not persist %s and %d owed results; they are sent from memory only",
                INJECTIONS_KEY,
                len(reports),
            )
            return
        self._next_result += len(values) - 1
        self._owed.update(owed)

    def _put(self, key: str, value: Callable[[], Any], strict: bool) -> None:
        if self.store is None:
            return
        try:
            self.store.put_state(key, value())
        except Exception:
            if strict:
                raise
            log.exception("could not persist %s; it will be retried with the next change", key)

    def _deliver(self, reports: list[InjectionReport]) -> None:
        if not reports:
            return
        with self._lock:
            callbacks = list(self._callbacks)
        for report in reports:
            for callback in callbacks:
                try:
                    callback(report)
                except Exception:
                    log.exception("injection report callback failed for %s", report.injection_id)


def _deadline(goal: str, now: float, expires_at: float | None, ttl: float | None) -> float | None:
    if expires_at is not None and ttl is not None:
        raise InjectionRejected("give an expiry time or a ttl, not both", goal)
    if ttl is None:
        return expires_at
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
        raise InjectionRejected(f"ttl must be a finite number of seconds, got {ttl!r}", goal)
    if ttl <= 0:
        raise InjectionRejected(f"ttl must be > 0 seconds, got {ttl}", goal)
    return now + float(ttl)
