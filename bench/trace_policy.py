"""What a checkpoint's policy does, step by step, on goals you name.

A success rate says whether a goal is learned; a trace says what the policy does
instead. For each goal it plays seeded episodes (greedy unless ``--sampled``) in
the run's own environment, with the run's time-limit mode, and prints each step's
action with the policy's probability of it and the entropy of the state's policy
(nats), then whether the episode reached its goal::

    .venv/bin/python bench/trace_policy.py RUN_DIR "Grow carrot" "Grasp cow" --episodes 2

    Grow carrot  fail  Go to water (0.49, H 1.09) > Grasp (0.44, H 1.12) > ...

It runs any registered environment and reads the newest complete checkpoint
(``autotelic eval`` restores the same one).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autotelic.core import Learner, TextEnvBatch, env_spec
from autotelic.core.time_limit import time_limited
from autotelic.runtime.commands.offline import checkpoint_learner
from autotelic.runtime.loop.config import CollectorConfig
from autotelic.runtime.loop.precursors import Behaviour

PRECURSOR_STEPS = CollectorConfig().precursor_steps


@dataclass(frozen=True)
class Step:
    action: str
    prob: float
    entropy: float


@dataclass(frozen=True)
class Trace:
    goal: str
    steps: list[Step]
    success: bool

    def line(self) -> str:
        moves = " > ".join(f"{s.action} ({s.prob:.2f}, H {s.entropy:.2f})" for s in self.steps)
        return f"{self.goal}  {'WIN' if self.success else 'fail'}  {moves}"


def play(
    learner: Learner,
    envs: TextEnvBatch,
    goal: str,
    seed: int,
    greedy: bool,
    precursors: Sequence[str] = (),
) -> Trace:
    """One episode of ``goal`` in env 0 of ``envs``, from the scene ``seed`` makes, acting
    first under ``precursors`` as the collector does (collector.precursor_share)."""
    (state,) = envs.reset([0], [goal], [seed])
    rng = np.random.default_rng(seed)
    behaviour = Behaviour(list(precursors), PRECURSOR_STEPS)
    steps: list[Step] = []
    while True:
        acting = behaviour.goal(state.goal)
        prompt = learner.prompt(acting, state.observation, state.actions)
        chosen = learner.act([prompt], [state.actions], greedy=greedy, generator=rng)
        index = int(chosen.actions[0])
        steps.append(
            Step(
                state.actions[index] + ("" if acting == state.goal else f" <{acting}>"),
                float(chosen.probs[0][index]),
                float(chosen.entropies[0]),
            )
        )
        (result,) = envs.step([0], [index])
        behaviour.advance(result.achieved, PRECURSOR_STEPS)
        if result.done:
            return Trace(goal, steps, result.reward > 0)
        state = result.state


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run directory with a checkpoint")
    parser.add_argument("goals", nargs="+", help="goals to play (any spelling the env parses)")
    parser.add_argument("--episodes", type=int, default=3, help="episodes per goal")
    parser.add_argument("--seed", type=int, default=500, help="scene seed of the first episode")
    parser.add_argument("--split", choices=["train", "test"], default="train")
    parser.add_argument("--sampled", action="store_true", help="sample actions, not greedy")
    parser.add_argument(
        "--precursors", nargs="*", default=[], help="goals to act under first, in order"
    )
    args = parser.parse_args(argv)

    settings, learner, step = checkpoint_learner(args.run_dir)
    spec = env_spec(settings.env.id)
    space = spec.goal_space(settings.env)
    envs = time_limited(
        spec.make_batch(settings.env, num_envs=1, split=args.split), settings.run.time_limit
    )
    print(f"{args.run_dir} at {step:,} env steps ({'sampled' if args.sampled else 'greedy'})")
    for text in args.goals:
        goal = space.parse(text).text
        traces = [
            play(learner, envs, goal, args.seed + k, not args.sampled, args.precursors)
            for k in range(args.episodes)
        ]
        for trace in traces:
            print(trace.line())
        print(f"{goal}: {sum(t.success for t in traces)}/{len(traces)} reached")


if __name__ == "__main__":
    main()
