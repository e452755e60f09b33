"""Shared helpers for the curriculum tests (tests/test_goals_*.py)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from autotelic.envs.playground import PlaygroundGoalSpace, PlaygroundTextEnv, oracle_action
from autotelic.goals import GoalAssignment, InjectionReport, MemoryStateStore, StateStore

PLAYGROUND = PlaygroundGoalSpace()
"""The goal space the curriculum tests run on (the daemon itself names no environment)."""


class ManualClock:
    """A clock the test moves by hand, so expiry is exercised without sleeping."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Reports(list[InjectionReport]):
    """Collects injection reports delivered to the daemon's callback."""

    def __call__(self, report: InjectionReport) -> None:
        self.append(report)

    def of(self, injection_id: str) -> list[InjectionReport]:
        return [r for r in self if r.injection_id == injection_id]


Policy = Callable[[str, str, list[str]], str]


def oracle_policy(goal: str, obs: str, actions: list[str]) -> str:
    return oracle_action(goal, obs)


def random_policy(seed: int) -> Policy:
    rng = random.Random(seed)
    return lambda goal, obs, actions: rng.choice(actions)


def play(
    env: PlaygroundTextEnv, assignment: GoalAssignment, policy: Policy, seed: int
) -> tuple[bool, int, list[str]]:
    """One real Playground-Text episode: success, steps and the union of achieved goals."""
    obs, info = env.reset(seed=seed, options={"goal": assignment.goal})
    achieved: dict[str, None] = {}
    success, steps, done = False, 0, False
    while not done:
        action = policy(assignment.goal, obs, info["admissible_actions"])
        obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        achieved.update(dict.fromkeys(info["achieved_goals"]))
        success = success or reward > 0
        done = terminated or truncated
    return success, steps, list(achieved)


class RecordingStore(MemoryStateStore):
    """A memory store that remembers every key written, to check what goes to disk."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []

    def put_state(self, key: str, value: Any) -> None:
        super().put_state(key, value)
        self.written.append(key)


def saved(store: StateStore, key: str) -> Any:
    """The value under ``key``, which the test expects to be there."""
    value = store.get_state(key)
    assert value is not None, f"nothing stored under {key!r}"
    return value
