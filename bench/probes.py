"""Probes of a run's checkpoints: is each goal bound to its object, and does the policy explore?

Success rates say whether an agent learned; these probes say what it learned.

* **Binding.** States found by a seeded random walk in the run's environment where
  the next action achieved a goal Y of the same category as the episode's goal X,
  X not achieved (in Playground-Text: standing on object Y, ``Grasp`` achieves
  "Grasp Y" while X is elsewhere in the scene; in BabyAI-Text: facing Y, ``pick up``
  achieves "pick up the Y"). Under goal Y (right) the policy should take that
  action and its critic rank it first; under goal X (wrong) it should not. Printed:
  pi(action) and Q(action) - max Q(other action) (min over the twin heads), right
  and wrong, and pi's difference. A hindsight replay without negatives makes
  both sides alike (storage/her.py, docs/learning.md).
* **Replay.** (``--replay``) What the run's own replay feeds the learner, drawn with
  its configuration from its store: the share of rows relabeled, of hindsight
  negatives, of rewarded rows per goal category, and of relabeled rows whose
  ``Steps left`` line shows more steps than the relabeled goal's category ever has
  (the pursued episode's count is kept: a Grasp relabel from a Grow episode shows up
  to 6 where a Grasp episode shows at most 3).
* **Initial entropy.** The mean policy entropy over the random walk's states
  (under the goal pursued) against the uniform policy's, and the share of states
  with one action above 0.95: a policy that starts near-deterministic cannot
  explore.

The states depend only on the environment, the probe seed and the goals, so every
checkpoint of a run, and runs of different methods, are probed on the same ones.

    .venv/bin/python bench/probes.py RUN_DIR                 # every checkpoint, and init
    .venv/bin/python bench/probes.py RUN_DIR --checkpoint 3008 --steps-left 2
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autotelic.core import (
    EnvSpec,
    Learner,
    OffPolicyConfig,
    TextEnvBatch,
    TextState,
    algorithm_spec,
    env_spec,
)
from autotelic.core.time_limit import steps_left as _steps_left
from autotelic.core.time_limit import time_limited, with_steps_left_line
from autotelic.runtime.config import Settings, load_settings
from autotelic.storage import CheckpointManager, EpisodeStore, ReplaySampler, RunLayout


@dataclass(frozen=True)
class Case:
    """A state where ``action`` achieved ``right`` and not the episode's goal ``wrong``."""

    observation: str
    actions: list[str]
    action: int
    right: str
    wrong: str


@dataclass
class Walk:
    """What the random walk found: binding cases and every state visited (with its goal)."""

    cases: list[Case]
    states: list[tuple[str, str, list[str]]]
    """(goal, observation, actions)."""


@dataclass(frozen=True)
class Probe:
    """The probes' numbers for one policy."""

    pi_right: float
    pi_wrong: float
    gap_right: float | None
    gap_wrong: float | None
    entropy: float
    uniform: float
    peaked: float
    """Share of the walk's states with one action above 0.95."""


def probe_goals(settings: Settings, spec: EnvSpec) -> list[str]:
    """Training goals of the categories the run pursues (its configured goals' categories,
    every category when it lists none)."""
    space = spec.goal_space(settings.env)
    configured = settings.curriculum.configured_goals or []
    categories = {space.parse(g).category for g in configured}
    return [
        g for g in space.goals("train") if not categories or space.parse(g).category in categories
    ]


def random_walk(
    settings: Settings,
    *,
    episodes: int,
    seed: int,
    steps_left: int | None,
    num_envs: int = 16,
) -> Walk:
    """Run ``episodes`` uniformly random episodes on training goals and keep the binding
    cases (those with ``steps_left`` steps left when given) and the states visited."""
    spec = env_spec(settings.env.id)
    space = spec.goal_space(settings.env)
    goals = probe_goals(settings, spec)
    envs = time_limited(
        spec.make_batch(settings.env, num_envs=num_envs, split="train"), settings.run.time_limit
    )
    rng = np.random.default_rng(seed)
    walk = Walk([], [])
    started = 0
    live: dict[int, TextState] = {}

    def start(env: int) -> None:
        nonlocal started
        goal = goals[int(rng.integers(len(goals)))]
        live[env] = envs.reset([env], [goal], [int(rng.integers(2**31 - 1))])[0]
        started += 1

    for env in range(min(num_envs, episodes)):
        start(env)
    while live:
        _walk_step(envs, live, rng, walk, steps_left, space.parse)
        for env in [e for e in range(num_envs) if e not in live]:
            if started < episodes:
                start(env)
    return walk


def _walk_step(
    envs: TextEnvBatch,
    live: dict[int, TextState],
    rng: np.random.Generator,
    walk: Walk,
    steps_left: int | None,
    parse: Any,
) -> None:
    """One random step of every live env; record its state and any binding case."""
    ids = sorted(live)
    actions = [int(rng.integers(len(live[e].actions))) for e in ids]
    for env, action, result in zip(ids, actions, envs.step(ids, actions), strict=True):
        state = live[env]
        walk.states.append((state.goal, state.observation, state.actions))
        kin = [
            g
            for g in result.achieved
            if g != state.goal and parse(g).category == parse(state.goal).category
        ]
        left = state.horizon - state.steps
        if kin and not result.terminated and (steps_left is None or left == steps_left):
            walk.cases.append(Case(state.observation, state.actions, action, kin[0], state.goal))
        if result.done:
            del live[env]
        else:
            live[env] = result.state


def with_steps_left(observation: str, steps_left: int | None) -> str:
    """``observation`` with its ``Steps left`` line set to ``steps_left`` (None: as is)."""
    if steps_left is None:
        return observation
    return with_steps_left_line(observation, steps_left)


def measure(learner: Learner, walk: Walk, shown_left: int | None = None) -> Probe:
    """The binding and entropy numbers of ``learner`` on ``walk``."""
    pi, gaps = {}, {}
    for side in ("right", "wrong"):
        prompts = [
            learner.prompt(getattr(c, side), with_steps_left(c.observation, shown_left), c.actions)
            for c in walk.cases
        ]
        candidates = [c.actions for c in walk.cases]
        actions = [c.action for c in walk.cases]
        probs = learner.act(prompts, candidates, greedy=True).probs
        pi[side] = float(np.mean([p[a] for p, a in zip(probs, actions, strict=True)]))
        gaps[side] = _q_gap(learner, prompts, candidates, actions)
    states = walk.states
    result = learner.act(
        [learner.prompt(g, o, a) for g, o, a in states], [a for _, _, a in states], greedy=True
    )
    return Probe(
        pi["right"],
        pi["wrong"],
        gaps["right"],
        gaps["wrong"],
        float(np.mean(result.entropies)),
        float(np.mean([np.log(len(a)) for _, _, a in states])),
        float(np.mean([p.max() > 0.95 for p in result.probs])),
    )


def _q_gap(
    learner: Learner, prompts: list[str], candidates: list[list[str]], actions: list[int]
) -> float | None:
    """Mean Q(action) - max Q(other) under the pessimistic head; None without a critic."""
    q_values = getattr(learner, "q_values", None)
    if q_values is None:
        return None
    q = q_values(prompts, candidates).min(dim=0).values.cpu().numpy()
    gaps, offset = [], 0
    for cands, action in zip(candidates, actions, strict=True):
        row = q[offset : offset + len(cands)]
        offset += len(cands)
        gaps.append(float(row[action] - np.delete(row, action).max()))
    return float(np.mean(gaps))


def checkpoints(run_dir: Path, which: str) -> list[tuple[str, dict[str, Any] | None]]:
    """(label, learner state) of the checkpoints asked for: ``all`` (with ``init``, the
    untrained model), ``latest``, ``init``, or a step number."""
    manager = CheckpointManager(RunLayout(run_dir).checkpoints)
    chosen: list[tuple[str, dict[str, Any] | None]] = []
    if which in ("all", "init"):
        chosen.append(("init", None))
    found = manager.checkpoints()
    if which == "latest":
        found = found[-1:]
    elif which not in ("all",):
        found = [c for c in found if which != "init" and str(c.step) == which]
        if which != "init" and not found:
            raise SystemExit(f"no checkpoint at step {which} in {run_dir}")
    for checkpoint in found:
        loaded = manager.load(checkpoint)
        assert loaded is not None
        chosen.append((str(checkpoint.step), loaded.state["learner"]))
    return chosen


def report(run_dir: Path, args: argparse.Namespace) -> None:
    """Print the probes of the checkpoints of ``run_dir``."""
    layout = RunLayout(run_dir)
    layout.require_run()
    settings = load_settings(layout.config)
    walk = random_walk(settings, episodes=args.episodes, seed=args.seed, steps_left=args.steps_left)
    print(
        f"{run_dir}: {len(walk.cases)} binding states"
        + (f" ({args.steps_left} steps left)" if args.steps_left is not None else "")
        + f", {len(walk.states)} walk states; shown steps left: {args.show_steps_left or 'as is'}"
    )
    if not walk.cases:
        raise SystemExit("the random walk found no binding state: raise --episodes")
    print(
        f"{'checkpoint':>10} {'pi right':>9} {'pi wrong':>9} {'diff':>6} "
        f"{'Qgap right':>10} {'Qgap wrong':>10} {'entropy':>8} {'uniform':>8} {'>0.95':>6}"
    )
    for label, state in checkpoints(run_dir, args.checkpoint):
        learner = algorithm_spec(settings.algorithm.name).build(settings.model, settings.algorithm)
        if state is not None:
            learner.load_state_dict(state)
        p = measure(learner, walk, args.show_steps_left)
        print(
            f"{label:>10} {p.pi_right:9.3f} {p.pi_wrong:9.3f} {p.pi_right - p.pi_wrong:+6.3f} "
            f"{_fmt(p.gap_right):>10} {_fmt(p.gap_wrong):>10} {p.entropy:8.3f} "
            f"{p.uniform:8.3f} {p.peaked:6.2f}",
            flush=True,
        )


def replay_report(run_dir: Path, rows: int = 8192) -> None:
    """Print what the run's replay, as configured, feeds the learner (see the module
    docstring): relabel and negative shares, and relabeled rows showing more steps left
    than their goal's category allows."""
    settings = load_settings(RunLayout(run_dir).config)
    space = env_spec(settings.env.id).goal_space(settings.env)
    store = EpisodeStore(RunLayout(run_dir).store, readonly=True)
    try:
        horizons = _category_horizons(store, space.parse)
        algorithm = settings.algorithm
        if not isinstance(algorithm, OffPolicyConfig):
            raise SystemExit(f"{run_dir} learns on-policy ({algorithm.name}): it has no replay")
        sampler = ReplaySampler.from_config(
            settings.replay,
            store,
            space,
            n_step=algorithm.n_step,
            gamma=algorithm.gamma,
            time_limit=settings.run.time_limit,
            rng=0,
        )
        batch = sampler.sample(rows)
    finally:
        store.close()
    relabeled = [i for i in range(rows) if batch.relabeled[i]]
    negative = [i for i in relabeled if batch.rewards[i] == 0]
    over = [
        i
        for i in relabeled
        if (left := _steps_left(batch.observations[i])) is not None
        and left > horizons.get(space.parse(batch.goals[i]).category, left)
    ]
    print(
        f"replay of {run_dir}: {len(relabeled) / rows:.3f} relabeled, "
        f"{len(negative) / max(len(relabeled), 1):.3f} of them unrewarded, "
        f"{len(over) / max(len(relabeled), 1):.3f} of them show more steps left than their "
        f"goal's category has (horizons {horizons})"
    )
    for category in sorted({space.parse(g).category for g in batch.goals}):
        mine = [i for i in range(rows) if space.parse(batch.goals[i]).category == category]
        rewarded = sum(batch.rewards[i] > 0 for i in mine)
        print(f"  {category}: {len(mine) / rows:.3f} of rows, {rewarded / len(mine):.3f} rewarded")


def _category_horizons(store: EpisodeStore, parse: Any) -> dict[str, int]:
    """The most steps left any episode pursued under each category started with."""
    horizons: dict[str, int] = {}
    for episode in store.iter_episodes():
        left = _steps_left(episode.steps[0].observation)
        category = parse(episode.goal).category
        if left is not None:
            horizons[category] = max(horizons.get(category, 0), left)
    return horizons


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+", help="run directories")
    parser.add_argument(
        "--checkpoint", default="all", help="all (default, with init), latest, init, or a step"
    )
    parser.add_argument("--episodes", type=int, default=400, help="random-walk episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random walk")
    parser.add_argument(
        "--steps-left",
        type=int,
        default=None,
        help="keep binding states with this many steps left (Playground: 2); default any",
    )
    parser.add_argument(
        "--show-steps-left",
        type=int,
        default=None,
        help="rewrite the binding states' 'Steps left' line to this (does the line matter?)",
    )
    parser.add_argument(
        "--replay", action="store_true", help="also print what the run's replay feeds the learner"
    )
    args = parser.parse_args(argv)
    for run_dir in args.run_dirs:
        if args.replay:
            replay_report(run_dir)
        report(run_dir, args)


if __name__ == "__main__":
    main()
