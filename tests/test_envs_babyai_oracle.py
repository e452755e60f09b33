"""The BabyAI bot as BabyAI-Text's oracle: it solves every family within the horizon."""

from __future__ import annotations

import random

import pytest

from autotelic.envs.babyai import (
    BabyAITextEnv,
    Category,
    OracleError,
    all_goals,
    oracle_action,
)

SEEDS = 100


def run(env: BabyAITextEnv, goal: str, seed: int, *, noise: float = 0.0, rng=None) -> float:
    """Play one episode with the oracle (each action replaced by a random one with ``noise``)."""
    env.reset(seed=seed, options={"goal": goal})
    while True:
        action = oracle_action(env)
        if rng is not None and rng.random() < noise:
            action = rng.randrange(5)  # no toggles: an opened box vanishes, and its goal too
        _, reward, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            return reward


@pytest.mark.parametrize("category", list(Category))
def test_the_bot_solves_each_family_on_at_least_99_percent_of_seeds(category):
    env = BabyAITextEnv()
    goals = all_goals("train", [category])
    wins = sum(run(env, goals[s % len(goals)], s) for s in range(SEEDS))
    assert wins / SEEDS >= 0.99, (category, wins)


def test_the_bot_solves_held_out_goals_too():
    env = BabyAITextEnv(split="test")
    goals = all_goals("test")
    picked = [g for c in Category for g in all_goals("test", [c])[:3]]
    assert all(g in goals for g in picked)
    assert sum(run(env, g, s) for s, g in enumerate(picked)) == len(picked)


def test_the_bot_advises_a_learner_that_strays():
    env, rng = BabyAITextEnv(), random.Random(0)
    goals = [g for c in Category for g in all_goals("train", [c])[:5]]
    wins = sum(run(env, g, s, noise=0.3, rng=rng) for s, g in enumerate(goals))
    assert wins / len(goals) >= 0.9


def test_the_bot_takes_over_mid_episode_even_when_the_agent_holds_something():
    env = BabyAITextEnv()
    for goal in ["pick up the purple key", "put the green ball next to the grey box"]:
        for seed in range(10):
            env.reset(seed=seed, options={"goal": goal})
            for action in [3, 0, 2, 3, 2, 1, 2, 3, 0, 0]:  # pick-ups, turns and moves, unheard
                _, reward, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    break
            while not (terminated or truncated):
                _, reward, terminated, truncated, _ = env.step(oracle_action(env))
            assert reward == 1.0, (goal, seed)


def test_the_oracle_says_when_the_goal_object_is_gone():
    env = BabyAITextEnv()
    env.reset(seed=0, options={"goal": "pick up the purple box"})
    level = env.level
    box = next(c for c in level.grid.grid if c and (c.color, c.type) == ("purple", "box"))
    assert box.cur_pos is not None
    x, y = box.cur_pos
    level.grid.set(x, y, None)  # as if the agent had opened it
    with pytest.raises(OracleError, match="the purple box is gone"):
        oracle_action(env)
