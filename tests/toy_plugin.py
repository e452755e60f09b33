"""A third-party environment and algorithm, defined outside the package, as a user would.

``toy/NumberLine-v0``: walk a line of cells 0..9 to reach a goal cell. A tabular
soft-Q learner, ``toy-q``, learns it from replay. Listing this module in
``run.plugins`` registers both; nothing in autotelic names them.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import ConfigDict, Field

from autotelic.core import (
    ActResult,
    EnvConfig,
    EnvStep,
    EpisodeOverError,
    Generator,
    InadmissibleActionError,
    InvalidGoalError,
    Lock,
    OffPolicyConfig,
    ParsedGoal,
    Split,
    TextState,
    TextVocabulary,
    TransitionBatch,
    held,
    register_algorithm,
    register_env,
)
from autotelic.core.goals import achieved_rows

ENV_ID: Literal["toy/NumberLine-v0"] = "toy/NumberLine-v0"
CELLS = 10
HELD_OUT = (3, 7)
ACTIONS = ["step left", "step right", "stay"]


class NumberLineConfig(EnvConfig):
    """Options of the number line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Literal["toy/NumberLine-v0"] = Field(ENV_ID, description="Environment id.")
    horizon: int = Field(8, ge=1, description="Steps before an episode is cut.")


class NumberLineGoals:
    """Goals ``reach <cell>``; cells 3 and 7 are held out."""

    def parse(self, text: str) -> ParsedGoal:
        words = text.strip().lower().split()
        if len(words) != 2 or words[0] != "reach":
            raise InvalidGoalError(text, "goals read 'reach <cell>'")
        if not words[1].isdigit() or not 0 <= int(words[1]) < CELLS:
            raise InvalidGoalError(text, f"cells are 0 to {CELLS - 1}, got {words[1]!r}")
        cell = int(words[1])
        return ParsedGoal(f"reach {cell}", "low" if cell < CELLS // 2 else "high")

    def categories(self) -> Sequence[str]:
        return ["low", "high"]

    def goals(self, split: Split = "train") -> list[str]:
        held = split == "test"
        return [f"reach {c}" for c in range(CELLS) if (c in HELD_OUT) == held]

    def achieved(self, goal: str, achieved_goals: Collection[str]) -> bool:
        return goal in achieved_goals

    def achieved_batch(
        self, goals: Sequence[str], achieved_goals: Sequence[Collection[str]]
    ) -> npt.NDArray[np.bool_]:
        return achieved_rows(self, goals, achieved_goals)

    def feasible(self, goal: str) -> bool | None:
        return True


class NumberLineBatch:
    """N number lines; an episode starts at a cell drawn from its seed."""

    def __init__(self, config: NumberLineConfig, num_envs: int, split: Split | None) -> None:
        self.config = config
        self.split: Split = split or "train"
        self.space = NumberLineGoals()
        self._rngs = [random.Random(i) for i in range(num_envs)]
        self._live: list[dict[str, Any] | None] = [None] * num_envs

    @property
    def num_envs(self) -> int:
        return len(self._live)

    @property
    def goal_space(self) -> NumberLineGoals:
        return self.space

    def seed(self, seed: int) -> None:
        self._rngs = [random.Random(seed + i) for i in range(self.num_envs)]

    def _state(self, e: dict[str, Any]) -> TextState:
        return TextState(
            observation=f"You are at cell {e['at']}.",
            actions=list(ACTIONS),
            goal=e["goal"],
            episode_seed=e["seed"],
            steps=e["steps"],
            horizon=self.config.horizon,
        )

    def reset(
        self,
        envs: Sequence[int],
        goals: Sequence[str | None],
        seeds: Sequence[int | None] | None = None,
    ) -> list[TextState]:
        out = []
        for k, i in enumerate(envs):
            seed = seeds[k] if seeds is not None else None
            seed = self._rngs[i].randrange(2**31) if seed is None else seed
            goal = goals[k] or random.Random(seed).choice(self.space.goals(self.split))
            start = random.Random(seed).randrange(CELLS)
            self._live[i] = {"at": start, "goal": self.space.parse(goal).text, "seed": seed}
            self._live[i]["steps"] = 0  # type: ignore[index]
            out.append(self._state(self._live[i]))  # type: ignore[arg-type]
        return out

    def step(self, envs: Sequence[int], actions: Sequence[int]) -> list[EnvStep]:
        for i, a in zip(envs, actions, strict=True):
            if self._live[i] is None:
                raise EpisodeOverError(f"env {i} has no running episode")
            if not 0 <= a < len(ACTIONS):
                raise InadmissibleActionError(a, ACTIONS)
        results = []
        for i, a in zip(envs, actions, strict=True):
            e = self._live[i]
            assert e is not None
            e["at"] = min(CELLS - 1, max(0, e["at"] + (-1, 1, 0)[a]))
            e["steps"] += 1
            achieved = [f"reach {e['at']}"]
            terminated = e["goal"] in achieved
            truncated = not terminated and e["steps"] >= self.config.horizon
            if terminated or truncated:
                self._live[i] = None
            results.append(
                EnvStep(self._state(e), float(terminated), terminated, truncated, achieved)
            )
        return results


class ToyQConfig(OffPolicyConfig):
    """Options of the tabular soft-Q learner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["toy-q"] = Field("toy-q", description="Tabular soft Q-learning.")
    lr: float = Field(0.5, gt=0, le=1, description="Step size of each table update.")
    temperature: float = Field(0.3, gt=0, description="Softmax temperature when acting.")


class ToyQLearner:
    """A table of Q(prompt, action), learnt from replayed n-step transitions."""

    def __init__(self, config: ToyQConfig) -> None:
        self.config = config
        self.q: dict[str, float] = {}
        self.policy_version = 0
        self.num_updates = 0

    def prompt(self, goal: str, observation: str, actions: Sequence[str]) -> str:
        return f"{goal} | {observation}"

    def _values(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        return np.array([self.q.get(f"{prompt}#{a}", 0.0) for a in candidates])

    def act(
        self,
        prompts: Sequence[str],
        candidates: Sequence[Sequence[str]],
        *,
        greedy: bool = False,
        generator: Generator | None = None,
        lock: Lock | None = None,
    ) -> ActResult:
        rng = generator if isinstance(generator, np.random.Generator) else np.random.default_rng()
        with held(lock):
            values = [self._values(p, c) for p, c in zip(prompts, candidates, strict=True)]
        probs = []
        for v in values:
            z = np.exp((v - v.max()) / self.config.temperature)
            probs.append((z / z.sum()).astype(np.float32))
        if greedy:
            actions = np.array([int(np.argmax(v)) for v in values], dtype=np.int64)
        else:
            actions = np.array([rng.choice(len(p), p=p) for p in probs], dtype=np.int64)
        chosen = [float(np.log(p[a])) for p, a in zip(probs, actions, strict=True)]
        entropy = [float(-(p * np.log(p + 1e-12)).sum()) for p in probs]
        return ActResult(
            actions=actions,
            log_probs=np.array(chosen, dtype=np.float32),
            entropies=np.array(entropy, dtype=np.float32),
            probs=probs,
            policy_version=self.policy_version,
        )

    def update(self, batch: TransitionBatch, *, write_lock: Lock | None = None) -> dict[str, float]:
        errors = []
        with held(write_lock):
            for i in range(len(batch)):
                prompt = self.prompt(batch.goals[i], batch.observations[i], batch.candidates[i])
                nxt = self.prompt(
                    batch.goals[i], batch.next_observations[i], batch.next_candidates[i]
                )
                bootstrap = 0.0
                if not batch.terminated[i]:
                    bootstrap = float(self._values(nxt, batch.next_candidates[i]).max())
                target = float(batch.rewards[i]) + float(batch.discounts[i]) * bootstrap
                key = f"{prompt}#{batch.candidates[i][batch.actions[i]]}"
                error = target - self.q.get(key, 0.0)
                self.q[key] = self.q.get(key, 0.0) + self.config.lr * error
                errors.append(error * error)
            self.num_updates += 1
            self.policy_version += 1
        # table_size: a stat no part of autotelic names; it must reach every sink.
        return {"critic_loss": float(np.mean(errors)), "table_size": float(len(self.q))}

    def state_dict(self) -> dict[str, Any]:
        return {"q": dict(self.q), "version": self.policy_version, "updates": self.num_updates}

    def load_state_dict(self, state: Mapping[str, Any], *, write_lock: Lock | None = None) -> None:
        with held(write_lock):
            self.q = dict(state["q"])
            self.policy_version = int(state["version"])
            self.num_updates = int(state["updates"])


register_env(
    ENV_ID,
    config=NumberLineConfig,
    make=lambda config, *, num_envs, split: NumberLineBatch(config, num_envs, split),
    goal_space=lambda config: NumberLineGoals(),
    description="A number line to walk (a toy registered by the tests)",
    vocabulary=lambda: TextVocabulary(
        texts=("You are at cell 0 1 2 3 4 5 6 7 8 9.", "reach", *ACTIONS)
    ),
)
register_algorithm(
    "toy-q",
    config=ToyQConfig,
    build=lambda model, config: ToyQLearner(config),
    description="Tabular soft Q-learning (a toy registered by the tests)",
)
