"""The collector: N environments stepped together with one batched policy call per step.

Each step scores every env's candidates in one pass (under the shared model
lock), steps the envs, and feeds each env's :class:`EpisodeBuilder`. When an
episode ends it is written to the store (durable before anything else hears
of it), then reported to the goal daemon, counted in the metrics and
announced to listeners. Goals for new episodes come from the daemon at the
moment an env resets. Every recorded step carries the policy version that
chose its action.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from autotelic.envs.playground import BatchStep, PlaygroundBatch
from autotelic.envs.playground.env import Info
from autotelic.goals import GoalAssignment, GoalDaemon
from autotelic.learners.base import Lock
from autotelic.learners.prompt import build_prompt
from autotelic.learners.protocol import Learner
from autotelic.runtime.metrics import Metrics, RateMeter
from autotelic.runtime.rollout import RolloutRecorder
from autotelic.storage import EpisodeBuilder, EpisodeStore


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


class Collector:
    """Steps a batch of envs with the learner's policy and stores what happens."""

    def __init__(
        self,
        envs: PlaygroundBatch,
        learner: Learner[Any],
        daemon: GoalDaemon,
        store: EpisodeStore,
        *,
        env_id: str,
        rng: np.random.Generator,
        lock: Lock | None = None,
        metrics: Metrics | None = None,
        recorder: RolloutRecorder | None = None,
        inference_batch: int | None = None,
    ) -> None:
        self.envs = envs
        self.learner = learner
        self.daemon = daemon
        self.store = store
        self.env_id = env_id
        self.rng = rng
        self.lock = lock
        self.metrics = metrics
        self.recorder = recorder
        self.inference_batch = inference_batch
        self.listeners: list[EpisodeListener] = []
        self.env_steps = 0
        self.episodes = 0
        self.successes = 0
        self._observations: list[str] = []
        self._infos: list[Info] = []
        self._current: list[GoalAssignment | None] = [None] * envs.num_envs
        self._incoming: dict[int, GoalAssignment] = {}
        self._builders: list[EpisodeBuilder | None] = [None] * envs.num_envs
        self._steps_rate = RateMeter(metrics.env_steps_rate) if metrics is not None else None
        envs.goal_source = self._goal_for

    # -- episodes ----------------------------------------------------------------------------

    def _goal_for(self, env: int) -> str:
        """Called by the envs when env ``env`` resets: ask the daemon for its next goal."""
        assignment = self.daemon.next_goals(1)[0]
        self._incoming[env] = assignment
        return assignment.goal

    def _begin(self, env: int, observation: str, info: Info) -> None:
        assignment = self._incoming.pop(env)
        self._current[env] = assignment
        self._builders[env] = EpisodeBuilder(
            goal=assignment.goal,
            goal_category=assignment.category,
            goal_source=assignment.source,
            injection_id=assignment.injection_id,
            env_id=self.env_id,
            scene_seed=int(info["scene_seed"]),
            observation=observation,
            admissible_actions=info["admissible_actions"],
        )

    def start(self, seed: int) -> None:
        """Reset every env (each asks the daemon for a goal) and open their episodes."""
        self._observations, self._infos = self.envs.reset(seed=seed)
        for i, (obs, info) in enumerate(zip(self._observations, self._infos, strict=True)):
            self._begin(i, obs, info)

    @property
    def prompts(self) -> list[str]:
        """The policy's input for each env's current state."""
        return [
            build_prompt(info["goal"], obs)
            for obs, info in zip(self._observations, self._infos, strict=True)
        ]

    # -- stepping ----------------------------------------------------------------------------

    def step(self) -> list[FinishedEpisode]:
        """One step of every env; returns the episodes that ended (already stored)."""
        if not self._infos:
            raise RuntimeError("call start() before step()")
        prompts = self.prompts
        candidates = [list(info["admissible_actions"]) for info in self._infos]
        actions, log_probs, version = self._act(prompts, candidates)
        result = self.envs.step([int(a) for a in actions])
        ended: list[tuple[EpisodeBuilder, GoalAssignment]] = []
        for i in range(self.envs.num_envs):
            done = bool(result.terminated[i] or result.truncated[i])
            last_obs, last_info = self._last_state(result, i, done)
            builder = self._record(i, result, int(actions[i]), version, last_obs, last_info)
            if self.recorder is not None:
                cut = bool(result.truncated[i] and not result.terminated[i])
                self.recorder.record(
                    i,
                    prompt=prompts[i],
                    candidates=candidates[i],
                    action=int(actions[i]),
                    log_prob=float(log_probs[i]),
                    reward=float(result.rewards[i]),
                    terminated=bool(result.terminated[i]),
                    truncated=bool(result.truncated[i]),
                    final_prompt=build_prompt(last_info["goal"], last_obs) if cut else None,
                    policy_version=version,
                )
            if done:
                assignment = self._current[i]
                assert assignment is not None
                ended.append((builder, assignment))
                self._begin(i, result.observations[i], result.infos[i])
        finished = self._finish(ended, version) if ended else []
        self._observations, self._infos = result.observations, result.infos
        self.env_steps += self.envs.num_envs
        self._count_steps()
        return finished

    @staticmethod
    def _last_state(result: BatchStep, i: int, done: bool) -> tuple[str, Info]:
        """The state env ``i`` reached: the final one when its episode just ended."""
        info = result.infos[i]
        if done:
            return info["final_observation"], info["final_info"]
        return result.observations[i], info

    def _record(
        self,
        i: int,
        result: BatchStep,
        action: int,
        version: int,
        last_obs: str,
        last_info: Info,
    ) -> EpisodeBuilder:
        """Add env ``i``'s step to its episode under construction."""
        builder = self._builders[i]
        assert builder is not None
        builder.add_step(
            action,
            float(result.rewards[i]),
            bool(result.terminated[i]),
            bool(result.truncated[i]),
            last_info["achieved_goals"],
            version,
            last_obs,
            last_info["admissible_actions"],
        )
        return builder

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
                generator=self.rng,
                lock=self.lock,
            )
            actions.append(part.actions)
            log_probs.append(part.log_probs)
            version = part.policy_version
            if self.metrics is not None:
                self.metrics.entropy.set(float(np.mean(part.entropies)))
        return np.concatenate(actions), np.concatenate(log_probs), version

    def _finish(
        self, ended: list[tuple[EpisodeBuilder, GoalAssignment]], version: int
    ) -> list[FinishedEpisode]:
        """Store the episodes that ended in one transaction, then tell everyone about them."""
        episodes = [builder.build() for builder, _ in ended]
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
        if self.metrics is not None:
            outcome = "success" if done.success else "failure"
            self.metrics.episodes.labels(
                category=done.category, source=done.source, outcome=outcome
            ).inc()
            self.metrics.episode_steps.labels(category=done.category).observe(done.steps)
        for listener in self.listeners:
            listener(done)

    def _count_steps(self) -> None:
        if self.metrics is None:
            return
        self.metrics.env_steps.inc(self.envs.num_envs)
        assert self._steps_rate is not None
        self._steps_rate.update(self.env_steps)
