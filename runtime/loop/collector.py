"""The collector: N environments stepped together with one batched policy call per step.

Each step scores every env's candidates in one pass (under the shared model
lock), steps the envs, and feeds each env's :class:`EpisodeBuilder`. The env
batch never restarts an episode by itself: when episodes end, the collector
asks the goal daemon for each env's next goal and resets those envs. The ended
episodes are then written to the store (durable before anything else hears of
them), reported to the goal daemon, counted in the metrics and announced to
listeners. Every recorded step carries the policy version that chose its
action. The collector knows only the contracts of :mod:`autotelic.core`.

The time-limit mode (docs/learning.md) reaches the collector twice: in the
``observed`` mode it acts on its batch through
:func:`~autotelic.core.time_limit.time_limited`, so its prompts and the
stored observations (what replay and relabeling read) show the steps left; and
its rollout recorder, which must use the same mode, records a cut step as
terminal or as a truncation to bootstrap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from autotelic.core import EnvStep, Learner, Lock, TextEnvBatch, TextState
from autotelic.core.time_limit import DEFAULT_TIME_LIMIT, TimeLimit, time_limited
from autotelic.goals import EpisodeOutcome, GoalAssignment, GoalRecord
from autotelic.runtime.loop.precursors import Behaviour, Precursors
from autotelic.runtime.loop.rollout import RolloutRecorder
from autotelic.runtime.telemetry.events import RunEvents
from autotelic.storage import Episode, EpisodeBuilder


class GoalService(Protocol):
    """What the collector asks of the goal daemon: the in-process
    :class:`~autotelic.goals.GoalDaemon`, or a client of one that lives elsewhere (the
    Ray backend's shared goal actor)."""

    def next_goals(self, n: int) -> list[GoalAssignment]:
        """Goals for the next ``n`` episodes."""
        ...

    def report(self, outcome: EpisodeOutcome) -> list[GoalRecord]:
        """Account for a finished episode."""
        ...


class EpisodeSink(Protocol):
    """Where ended episodes become durable: the run's episode store."""

    def put_many(self, episodes: Sequence[Episode]) -> list[int]:
        """Store ``episodes`` in one transaction; their ids, once durable."""
        ...


@dataclass(frozen=True)
class FinishedEpisode:
    """What the collector tells listeners about an episode it stored."""

    episode_id: int
    goal: str
    category: str
    source: str
    injection_id: str | None
    success: bool
    steps: int
    achieved_goals: list[str]
    policy_version: int


EpisodeListener = Callable[[FinishedEpisode], None]


def behaviour_sample(
    probs: list[np.ndarray], epsilon: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Actions drawn from ``(1 - epsilon) * pi + epsilon * uniform``, with their log-probs
    under that mixture: an exploring behaviour that still reaches every admissible action
    however peaked a pretrained policy starts."""
    mixed = [(1 - epsilon) * p.astype(np.float64) + epsilon / len(p) for p in probs]
    actions = np.array([rng.choice(len(m), p=m / m.sum()) for m in mixed], dtype=np.int64)
    log_probs = np.array([np.log(m[a]) for m, a in zip(mixed, actions, strict=True)])
    return actions, log_probs.astype(np.float32)


class EpisodeCommitter:
    """The tail of collection: ended episodes stored in one transaction (durable first),
    then reported to the goal daemon, counted and announced to listeners.

    Apart from the :class:`Collector` so that episodes gathered elsewhere (the Ray
    backend's collector actors) go through the very same steps in the one process that
    writes the store.
    """

    def __init__(
        self, store: EpisodeSink, daemon: GoalService, events: RunEvents | None = None
    ) -> None:
        self.store = store
        self.daemon = daemon
        self.events = events or RunEvents()
        self.listeners: list[EpisodeListener] = []
        self.episodes = 0
        self.successes = 0

    def commit(
        self, ended: Sequence[tuple[Episode, GoalAssignment]], version: int
    ) -> list[FinishedEpisode]:
        """Store ``ended`` (episode, the assignment it pursued) in one transaction, then
        report, count and announce each; ``version`` is the policy version that acted last."""
        episodes = [episode for episode, _ in ended]
        ids = self.store.put_many(episodes)  # durable first
        finished = []
        for episode_id, episode, (_, assignment) in zip(ids, episodes, ended, strict=True):
            achieved = episode.achieved_goals
            self.daemon.report(
                assignment.outcome(
                    success=episode.success,
                    steps=episode.length,
                    achieved_goals=achieved,
                    episode_id=episode_id,
                )
            )
            self.episodes += 1
            self.successes += int(episode.success)
            done = FinishedEpisode(
                episode_id=episode_id,
                goal=assignment.goal,
                category=assignment.category,
                source=assignment.source,
                injection_id=assignment.injection_id,
                success=episode.success,
                steps=episode.length,
                achieved_goals=achieved,
                policy_version=version,
            )
            self._count_episode(done)
            finished.append(done)
        return finished

    def _count_episode(self, done: FinishedEpisode) -> None:
        self.events.episode_stored(done.category, done.source, done.success, done.steps)
        for listener in self.listeners:
            listener(done)


class CommittedCounts:
    """The episode counters and listeners of a collection, kept by its committer (so a
    restore that sets them sets what the committer counts on)."""

    committer: EpisodeCommitter

    @property
    def listeners(self) -> list[EpisodeListener]:
        """Called with every stored episode."""
        return self.committer.listeners

    @property
    def episodes(self) -> int:
        return self.committer.episodes

    @episodes.setter
    def episodes(self, value: int) -> None:
        self.committer.episodes = value

    @property
    def successes(self) -> int:
        return self.committer.successes

    @successes.setter
    def successes(self, value: int) -> None:
        self.committer.successes = value


class Collector(CommittedCounts):
    """Steps a batch of envs with the learner's policy and stores what happens.

    ``envs`` is the environments' own batch: in the ``observed`` time-limit mode the
    collector acts on it through the wrapper that shows the steps left
    (``self.envs``); ``recorder``, when given, must use the same ``time_limit``.
    """

    def __init__(
        self,
        envs: TextEnvBatch,
        learner: Learner,
        daemon: GoalService,
        store: EpisodeSink,
        *,
        env_id: str,
        rng: np.random.Generator,
        lock: Lock | None = None,
        events: RunEvents | None = None,
        recorder: RolloutRecorder | None = None,
        inference_batch: int | None = None,
        epsilon: float = 0.0,
        time_limit: TimeLimit = DEFAULT_TIME_LIMIT,
        precursors: Precursors | None = None,
    ) -> None:
        if recorder is not None and recorder.time_limit != time_limit:
            raise ValueError(
                f"the rollout recorder treats time limits as {recorder.time_limit!r}, "
                f"the collector as {time_limit!r}: they must agree"
            )
        if recorder is not None and precursors is not None and precursors.share > 0:
            raise ValueError(
                "precursor goals change the behaviour policy: an on-policy learner (one "
                "that records rollouts) cannot learn from it; set collector.precursor_share 0"
            )
        self.time_limit: TimeLimit = time_limit
        self.envs = time_limited(envs, time_limit)
        self.learner = learner
        self.daemon = daemon
        self.store = store
        self.env_id = env_id
        self.rng = rng
        self.lock = lock
        self.events = events or RunEvents()
        self.recorder = recorder
        self.inference_batch = inference_batch
        self.epsilon = epsilon
        self.precursors = precursors or Precursors(share=0.0)
        self._behaviour = [Behaviour([], 0) for _ in range(envs.num_envs)]
        self.committer = EpisodeCommitter(store, daemon, self.events)
        self.env_steps = 0
        self._states: list[TextState] = []
        self._current: list[GoalAssignment | None] = [None] * envs.num_envs
        self._builders: list[EpisodeBuilder | None] = [None] * envs.num_envs

    # -- episodes ----------------------------------------------------------------------------

    def _reset(self, envs: list[int], seeds: list[int | None] | None) -> list[TextState]:
        """Start each of ``envs`` on the next goal the daemon gives it, in env order."""
        assignments = [self.daemon.next_goals(1)[0] for _ in envs]
        states = self.envs.reset(envs, [a.goal for a in assignments], seeds)
        for i, assignment, state in zip(envs, assignments, states, strict=True):
            self._current[i] = assignment
            self._behaviour[i] = self.precursors.plan(assignment.goal, self.rng)
            self._builders[i] = EpisodeBuilder(
                goal=assignment.goal,
                goal_category=assignment.category,
                goal_source=assignment.source,
                injection_id=assignment.injection_id,
                env_id=self.env_id,
                scene_seed=state.episode_seed,
                observation=state.observation,
                admissible_actions=state.actions,
            )
        return states

    def start(self, seed: int) -> None:
        """Seed the envs' streams (env i with ``seed + i``) and start an episode in each."""
        self.envs.seed(seed)
        self._states = self._reset(list(range(self.envs.num_envs)), None)

    @property
    def prompts(self) -> list[str]:
        """The policy's input for each env's current state (under its precursor, if any)."""
        return [
            self.learner.prompt(b.goal(s.goal), s.observation, s.actions)
            for s, b in zip(self._states, self._behaviour, strict=True)
        ]

    # -- stepping ----------------------------------------------------------------------------

    def step(self) -> list[FinishedEpisode]:
        """One step of every env; returns the episodes that ended (already stored)."""
        if not self._states:
            raise RuntimeError("call start() before step()")
        prompts = self.prompts
        candidates = [list(s.actions) for s in self._states]
        actions, log_probs, version = self._act(prompts, candidates)
        envs = list(range(self.envs.num_envs))
        results = self.envs.step(envs, [int(a) for a in actions])
        ended: list[tuple[EpisodeBuilder, GoalAssignment]] = []
        states = [r.state for r in results]
        for i, result in enumerate(results):
            builder = self._record(i, result, int(actions[i]), version)
            self._follow(i, result)
            if self.recorder is not None:
                self._record_rollout(
                    i, result, prompts[i], candidates[i], actions, log_probs, version
                )
            if result.done:
                assignment = self._current[i]
                assert assignment is not None
                ended.append((builder, assignment))
        done = [i for i, r in enumerate(results) if r.done]
        if done:
            for i, state in zip(done, self._reset(done, None), strict=True):
                states[i] = state
        finished = self._finish(ended, version) if ended else []
        self._states = states
        self.env_steps += self.envs.num_envs
        self._count_steps()
        return finished

    def _record(self, i: int, result: EnvStep, action: int, version: int) -> EpisodeBuilder:
        """Add env ``i``'s step to its episode under construction."""
        builder = self._builders[i]
        assert builder is not None
        builder.add_step(
            action,
            result.reward,
            result.terminated,
            result.truncated,
            result.achieved,
            version,
            result.state.observation,
            result.state.actions,
        )
        return builder

    def _follow(self, i: int, result: EnvStep) -> None:
        """Move env ``i``'s precursor chain on; at the episode's end, remember the order
        in which it achieved other goals."""
        if self.precursors.share <= 0.0:
            return
        behaviour = self._behaviour[i]
        behaviour.advance(result.achieved, self.precursors.allowance)
        if result.done:
            assignment = self._current[i]
            assert assignment is not None
            self.precursors.observe(assignment.goal, behaviour.reached)

    def _record_rollout(
        self,
        i: int,
        result: EnvStep,
        prompt: str,
        candidates: list[str],
        actions: np.ndarray,
        log_probs: np.ndarray,
        version: int,
    ) -> None:
        """Add env ``i``'s step to the on-policy rollout (with the cut state, if cut and
        the mode bootstraps it)."""
        assert self.recorder is not None
        cut = result.truncated and not result.terminated and self.recorder.bootstraps_cuts
        self.recorder.record(
            i,
            prompt=prompt,
            candidates=candidates,
            action=int(actions[i]),
            log_prob=float(log_probs[i]),
            reward=result.reward,
            terminated=result.terminated,
            truncated=result.truncated,
            final_prompt=self.learner.prompt(
                result.state.goal, result.state.observation, result.state.actions
            )
            if cut
            else None,
            policy_version=version,
        )

    def _act(
        self, prompts: list[str], candidates: list[list[str]]
    ) -> tuple[np.ndarray, np.ndarray, int]:
        chunk = self.inference_batch or len(prompts)
        actions, log_probs = [], []
        version = 0
        for start in range(0, len(prompts), chunk):
            part = self.learner.act(
                prompts[start : start + chunk],
                candidates[start : start + chunk],
                greedy=self.epsilon > 0,  # the mixture below samples instead
                generator=self.rng,
                lock=self.lock,
            )
            chosen, log_prob = part.actions, part.log_probs
            if self.epsilon > 0:
                chosen, log_prob = behaviour_sample(part.probs, self.epsilon, self.rng)
            actions.append(chosen)
            log_probs.append(log_prob)
            version = part.policy_version
            self.events.policy_entropy(float(np.mean(part.entropies)))
        return np.concatenate(actions), np.concatenate(log_probs), version

    def _finish(
        self, ended: list[tuple[EpisodeBuilder, GoalAssignment]], version: int
    ) -> list[FinishedEpisode]:
        """Hand the episodes that ended to the committer (store, then report and announce).

        The seam where ended episodes leave the collector: the Ray backend's collector
        actors override it to send them to the one process that writes the store.
        """
        return self.committer.commit(
            [(builder.build(), assignment) for builder, assignment in ended], version
        )

    def _count_steps(self) -> None:
        self.events.env_steps(self.envs.num_envs)
