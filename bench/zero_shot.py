"""How well a pretrained model explores before any learning: zero-shot sampled success.

SAC-GLAM and hindsight relabeling learn only from what the behaviour policy
reaches. This measures, per goal category, how often the untrained model
(SmolLM2 by default) achieves its goal when it *samples* its actions, under each
choice that shapes that prior:

* ``list``: the admissible actions shown in the prompt (``model.list_actions``);
* ``score``: a candidate scored by the sum or the mean of its tokens' log-probs
  (``model.candidate_score``);
* ``eps``: the behaviour policy ``(1 - eps) pi + eps uniform``
  (``collector.exploration_epsilon``; the collector's own mixture).

Every setting plays the same episodes (same goals, same scenes, same seed), in the
run's default time-limit mode (the steps left are shown). ``eps`` 1.0 is the
uniform random policy. Writes ``zero_shot-<envs>.csv`` and prints a table per env.

    .venv/bin/python bench/zero_shot.py --out docs/results/zero_shot
"""

from __future__ import annotations

import argparse
import csv
import itertools
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autotelic.core import ActResult, EnvConfig, env_spec, load_plugins
from autotelic.learners.models import ModelConfig, load_model
from autotelic.learners.sac import SACConfig, SACLearner
from autotelic.runtime.evaluation.evaluate import evaluate
from autotelic.runtime.loop.collector import behaviour_sample

ENVS: dict[str, dict[str, Any]] = {
    "playground": {"id": "autotelic/PlaygroundText-v0"},
    "babyai": {
        "id": "autotelic/BabyAIText-v0",
        "categories": ["go_to", "pick_up"],
        "room_size": 6,
        "num_distractors": 2,
        "go_to_horizon": 12,
        "pick_up_horizon": 12,
    },
}
"""The environments measured: Playground-Text as shipped, and BabyAI-Text as in the
learning comparison (bench/configs/babyai-cpu.yaml)."""


class Mixed:
    """A learner whose sampled actions follow ``(1 - eps) pi + eps uniform``."""

    def __init__(self, inner: SACLearner, epsilon: float) -> None:
        self.inner = inner
        self.epsilon = epsilon
        self.policy_version = 0
        self.num_updates = 0

    def prompt(self, goal: str, observation: str, actions: Sequence[str]) -> str:
        return self.inner.prompt(goal, observation, actions)

    def act(
        self, prompts: Sequence[str], candidates: Sequence[Sequence[str]], **kw: Any
    ) -> ActResult:
        if self.epsilon >= 1:  # uniform: the model's probabilities would not matter
            probs = [np.full(len(c), 1 / len(c), dtype=np.float32) for c in candidates]
            result = ActResult(
                actions=np.zeros(len(probs), dtype=np.int64),
                log_probs=np.zeros(len(probs), dtype=np.float32),
                entropies=np.array([np.log(len(p)) for p in probs], dtype=np.float32),
                probs=probs,
                policy_version=0,
            )
        else:
            result = self.inner.act(prompts, candidates, **kw)
        if self.epsilon <= 0 or kw.get("greedy"):
            return result
        rng = kw["generator"]
        actions, log_probs = behaviour_sample(result.probs, self.epsilon, rng)
        return ActResult(
            actions=actions,
            log_probs=log_probs,
            entropies=result.entropies,
            probs=result.probs,
            policy_version=0,
        )


def goals_by_category(config: EnvConfig, per_category: int, seed: int) -> list[str]:
    """Up to ``per_category`` feasible training goals of each category (a fixed draw)."""
    space = env_spec(config.id).goal_space(config)
    found: dict[str, list[str]] = defaultdict(list)
    for goal in space.goals("train"):
        if space.feasible(goal) is not False:
            found[space.parse(goal).category].append(goal)
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for category in sorted(found):
        goals = found[category]
        take = rng.permutation(len(goals))[:per_category]
        chosen += [goals[i] for i in sorted(take)]
    return chosen


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--goals-per-category", type=int, default=6)
    parser.add_argument("--episodes-per-goal", type=int, default=4)
    parser.add_argument("--lists", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--scores", nargs="+", default=["sum", "mean"], choices=["sum", "mean"])
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.0, 0.3])
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_plugins()
    args.out.mkdir(parents=True, exist_ok=True)
    learner = SACLearner(load_model(ModelConfig(path=args.model)), SACConfig())
    rows: list[dict[str, Any]] = []
    for env in args.envs:
        spec = env_spec(ENVS[env]["id"])
        config = spec.config.model_validate(ENVS[env])
        goals = goals_by_category(config, args.goals_per_category, args.seed)
        lists = [x == "on" for x in args.lists]
        settings = itertools.product(lists, args.scores, args.epsilons)
        for listed, score, eps in [*settings, (False, "sum", 1.0)]:
            learner.model.config = learner.model.config.model_copy(
                update={"list_actions": listed, "candidate_score": score}
            )
            began = time.monotonic()
            result = evaluate(
                Mixed(learner, eps),  # type: ignore[arg-type]
                spec,
                config,
                split="train",
                greedy=False,
                episodes_per_goal=args.episodes_per_goal,
                goals=goals,
                num_envs=args.num_envs,
                seed=args.seed,
            )
            took = time.monotonic() - began
            for category, success in result.success.items():
                rows.append(
                    {"env": env, "list_actions": listed, "candidate_score": score,
                     "epsilon": eps, "category": category, "success": round(success, 4),
                     "episodes": result.counts[category],
                     "mean_steps": round(result.mean_steps[category], 2)}
                )  # fmt: skip
            print(
                f"{env} list={listed!s:5} score={score:4} eps={eps:.1f}: "
                + ", ".join(f"{c} {s:.2f}" for c, s in result.success.items())
                + f"  ({took:.0f} s)",
                flush=True,
            )
    with (args.out / f"zero_shot-{'-'.join(args.envs)}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(table(rows))


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: one line per env and setting, one column per category."""
    lines = []
    for env in dict.fromkeys(r["env"] for r in rows):
        mine = [r for r in rows if r["env"] == env]
        categories = list(dict.fromkeys(r["category"] for r in mine))
        lines += [f"\n{env}\n", "| listed | score | eps | " + " | ".join(categories) + " |"]
        lines.append("| --- " * (3 + len(categories)) + "|")
        keys = dict.fromkeys((r["list_actions"], r["candidate_score"], r["epsilon"]) for r in mine)
        for key in keys:
            cells = {r["category"]: r["success"] for r in mine if key == (
                r["list_actions"], r["candidate_score"], r["epsilon"])}  # fmt: skip
            name = f"{key[0]} | {key[1]} | {key[2]:.1f}"
            if key[2] == 1.0:
                name = "- | - | 1.0 (uniform)"
            lines.append(
                f"| {name} | " + " | ".join(f"{cells.get(c, 0):.2f}" for c in categories) + " |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
