"""Reference points for Playground-Text and BabyAI-Text: the random policy and the oracle.

Prints, per goal category and object split, the success rate of a uniformly
random policy and of the scripted oracle, and the env's raw speed (single env
and a batch of 32), as medians over repeats. For BabyAI-Text the oracle is
minigrid's BabyAI bot, and each category gets the same number of episodes.

    .venv/bin/python bench/env_baselines.py [--episodes 400] [--seed 0]
        [--env all|playground|babyai] [--babyai-episodes 100]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

from autotelic.core import TextEnvBatch
from autotelic.envs import babyai
from autotelic.envs.playground import (
    GoalCategory,
    PlaygroundTextEnv,
    make_batch,
    oracle_action,
    parse_goal,
)
from autotelic.envs.playground.objects import Split

Policy = Callable[[str, str, list[str]], str]


def random_policy(rng: random.Random) -> Policy:
    return lambda goal, obs, actions: rng.choice(actions)


def oracle_policy(goal: str, obs: str, actions: list[str]) -> str:
    return oracle_action(goal, obs)


def success_by_category(
    policy: Policy, split: Split, episodes: int, seed: int
) -> dict[GoalCategory, tuple[float, float]]:
    """Success rate and mean episode length per goal category (feasible goals)."""
    env = PlaygroundTextEnv(split=split)
    wins: dict[GoalCategory, list[float]] = defaultdict(list)
    lengths: dict[GoalCategory, list[int]] = defaultdict(list)
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        category = parse_goal(info["goal"]).category
        done, success = False, 0.0
        while not done:
            action = policy(info["goal"], obs, info["admissible_actions"])
            obs, r, terminated, truncated, info = env.step(action)
            success += r
            done = terminated or truncated
        wins[category].append(success)
        lengths[category].append(info["steps"])
    return {c: (statistics.mean(wins[c]), statistics.mean(lengths[c])) for c in wins}


def steps_per_second(
    num_envs: int, steps: int, repeats: int, make: Callable[..., TextEnvBatch] = make_batch
) -> float:
    """Median env steps per second of the batches ``make`` builds, with a random policy
    (includes resetting finished envs)."""
    rng = random.Random(0)
    rates = []
    every = list(range(num_envs))
    for r in range(repeats):
        batch = make(num_envs=num_envs)
        states = batch.reset(every, [None] * num_envs, seeds=[r * num_envs + i for i in every])
        start = time.perf_counter()
        for _ in range(steps // num_envs):
            results = batch.step(every, [rng.randrange(len(s.actions)) for s in states])
            states = [result.state for result in results]
            ended = [i for i, result in enumerate(results) if result.done]
            for i, state in zip(ended, batch.reset(ended, [None] * len(ended)), strict=True):
                states[i] = state
        rates.append((steps // num_envs) * num_envs / (time.perf_counter() - start))
    return statistics.median(rates)


BabyAIPolicy = Callable[[babyai.BabyAITextEnv], int]


def babyai_success(
    policy: BabyAIPolicy, split: Split, episodes: int, seed: int
) -> dict[babyai.Category, tuple[float, float]]:
    """Success rate and mean episode length per BabyAI-Text family, ``episodes`` each."""
    env = babyai.BabyAITextEnv(split="test" if split == "test" else "train")
    table = {}
    for category in babyai.Category:
        goals = babyai.all_goals(env.config.split, [category])
        wins, lengths = [], []
        for episode in range(episodes):
            env.reset(seed=seed + episode, options={"goal": goals[episode % len(goals)]})
            done, reward = False, 0.0
            while not done:
                _, reward, terminated, truncated, info = env.step(policy(env))
                done = terminated or truncated
            wins.append(reward)
            lengths.append(info["steps"])
        table[category] = (statistics.mean(wins), statistics.mean(lengths))
    return table


def babyai_baselines(episodes: int, seed: int) -> None:
    """The BabyAI-Text rows: random policy and BabyAI bot per family and split, and speed."""
    print(f"\nBabyAI-Text: success rate (mean episode length), {episodes} episodes per cell\n")
    print(f"{'split':6} {'policy':7} " + " ".join(f"{c.value:>16}" for c in babyai.Category))
    rng = random.Random(seed)
    policies: tuple[tuple[str, BabyAIPolicy], ...] = (
        ("random", lambda env: rng.randrange(len(babyai.ACTIONS))),
        ("bot", babyai.oracle_action),
    )
    for split in ("train", "test"):
        for name, policy in policies:
            table = babyai_success(policy, split, episodes, seed)
            cells = " ".join(f"{table[c][0]:>9.3f} ({table[c][1]:4.1f})" for c in babyai.Category)
            print(f"{split:6} {name:7} {cells}")
    single = steps_per_second(1, 10_000, 3, babyai.make_batch)
    batched = steps_per_second(32, 10_000, 3, babyai.make_batch)
    print("\nBabyAI-Text speed (median of 3, random actions, resets of finished envs included):")
    print(f"  1 env:    {single:10,.0f} steps/s")
    print(f"  32 envs:  {batched:10,.0f} steps/s   (ratio batch/single {batched / single:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=400, help="episodes per policy and split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", choices=("all", "playground", "babyai"), default="all")
    parser.add_argument(
        "--babyai-episodes", type=int, default=100, help="BabyAI-Text episodes per table cell"
    )
    args = parser.parse_args()
    if args.env == "babyai":
        babyai_baselines(args.babyai_episodes, args.seed)
        return

    print(f"Success rate (mean episode length) over {args.episodes} episodes per row\n")
    header = f"{'split':6} {'policy':7} " + " ".join(
        f"{c.value:>20}" for c in GoalCategory if c is not GoalCategory.GROW_FURNITURE
    )
    print(header)
    for split in ("train", "test"):
        for name, policy in (
            ("random", random_policy(random.Random(args.seed))),
            ("oracle", oracle_policy),
        ):
            table = success_by_category(policy, split, args.episodes, args.seed)
            cells = " ".join(
                f"{table[c][0]:>12.3f} ({table[c][1]:4.1f})" if c in table else f"{'-':>20}"
                for c in GoalCategory
                if c is not GoalCategory.GROW_FURNITURE
            )
            print(f"{split:6} {name:7} {cells}")

    single = steps_per_second(1, 20_000, 5)
    batched = steps_per_second(32, 20_000, 5)
    print("\nEnv speed (median of 5, random actions, resets of finished envs included):")
    print(f"  1 env:    {single:10,.0f} steps/s")
    print(f"  32 envs:  {batched:10,.0f} steps/s   (ratio batch/single {batched / single:.2f})")
    if args.env == "all":
        babyai_baselines(args.babyai_episodes, args.seed)


if __name__ == "__main__":
    main()
