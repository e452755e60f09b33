"""The policy's entropy before any learning, per environment, model and candidate score.

A learner explores only as much as its first policy lets it: under summed token
log-probabilities a randomly initialised model all but always picks the
candidate with the fewest tokens (entropy near 0), under their mean it starts
near uniform; a pretrained model's summed scores are its prior. This prints,
for random states of every registered built-in environment (random walks over
all goals, the steps-left line shown), the mean entropy of the initial policy
against the uniform policy's (log |A(s)|), and the share of states where one
action takes more than 0.95 of the probability.

    .venv/bin/python bench/initial_entropy.py                 # tiny models and SmolLM2
    .venv/bin/python bench/initial_entropy.py --models tiny-words --states 100
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch

from autotelic.core import env_spec
from autotelic.core.time_limit import with_steps_left
from autotelic.learners.models import ModelConfig, load_model
from autotelic.learners.prompt import build_prompt
from autotelic.learners.scorer import Scorer

ENVS = {
    "autotelic/PlaygroundText-v0": {},
    "autotelic/BabyAIText-v0": {
        "categories": ["go_to", "pick_up"],
        "room_size": 6,
        "num_distractors": 2,
    },
}


def random_states(env_id: str, count: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """Prompts and candidates of ``count`` states met by random walks over all goals."""
    spec = env_spec(env_id)
    config = spec.config.model_validate({"id": env_id, "num_envs": 8, **ENVS[env_id]})
    batch = spec.make_batch(config)
    goals = batch.goal_space.goals("train")
    rng = np.random.default_rng(seed)
    envs = list(range(batch.num_envs))
    batch.seed(seed)
    now = batch.reset(envs, [goals[int(rng.integers(len(goals)))] for _ in envs])
    prompts: list[str] = []
    candidates: list[list[str]] = []
    while len(prompts) < count:
        for s in now:
            prompts.append(build_prompt(s.goal, with_steps_left(s.observation, s.steps, s.horizon)))
            candidates.append(list(s.actions))
        steps = batch.step(envs, [int(rng.integers(len(s.actions))) for s in now])
        now = [st.state for st in steps]
        for i, st in enumerate(steps):
            if st.done:
                now[i] = batch.reset([i], [goals[int(rng.integers(len(goals)))]])[0]
    return prompts[:count], candidates[:count]


def measure(model_path: str, score: str, env_id: str, states: int) -> dict[str, float]:
    update = {"finetune": "frozen", "candidate_score": score, "vocabulary": (env_id,)}
    config = ModelConfig(path=model_path).model_copy(update=update)
    scorer = Scorer(load_model(config))
    prompts, candidates = random_states(env_id, states, seed=0)
    entropies, peaked, uniform = [], [], []
    with torch.no_grad():
        for i in range(0, len(prompts), 16):
            scores = scorer.score(prompts[i : i + 16], candidates[i : i + 16])
            entropies += scores.entropy().tolist()
            peaked += [float(p.max()) > 0.95 for p in scores.split(scores.log_pi.exp())]
            uniform += [float(np.log(len(c))) for c in candidates[i : i + 16]]
    return {
        "entropy": float(np.mean(entropies)),
        "uniform": float(np.mean(uniform)),
        "peaked": float(np.mean(peaked)),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny-words", "tiny-causal", "smollm2"])
    parser.add_argument("--states", type=int, default=200)
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f"{'env':30} {'model':12} {'score':5} {'entropy':>8} {'uniform':>8} {'>0.95':>6}")
    for env_id in args.envs:
        for path in args.models:
            for score in ("auto", "sum", "mean"):
                m = measure(path, score, env_id, args.states)
                print(
                    f"{env_id:30} {path:12} {score:5} {m['entropy']:8.2f} {m['uniform']:8.2f} "
                    f"{m['peaked']:6.0%}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
