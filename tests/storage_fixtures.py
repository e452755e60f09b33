"""Episodes for the storage tests: real Playground-Text episodes and hand-built ones.

Also the entry point of the child processes of the crash and concurrency tests
(``python -m tests.storage_fixtures <mode> ...``), kept here so they exercise the
same code the tests import.
"""

from __future__ import annotations

import random
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from autotelic.storage import Episode, EpisodeBuilder, EpisodeStore, GoalSource

if TYPE_CHECKING:
    from autotelic.envs.playground import PlaygroundTextEnv

_ENV: PlaygroundTextEnv | None = None


def playground_episode(
    seed: int,
    *,
    goal: str | None = None,
    source: GoalSource = "configured",
    policy_version: int = 0,
) -> Episode:
    """A real Playground-Text episode under a seeded random policy."""
    from autotelic.envs.playground import ENV_ID, PlaygroundTextEnv

    global _ENV
    if _ENV is None:
        _ENV = PlaygroundTextEnv()
    env = _ENV
    options = {"goal": goal} if goal else None
    obs, info = env.reset(seed=seed, options=options)
    rng = random.Random(seed)
    builder = EpisodeBuilder(
        goal=info["goal"],
        goal_category=info["goal_category"],
        goal_source=source,
        env_id=ENV_ID,
        scene_seed=info["scene_seed"],
        observation=obs,
        admissible_actions=info["admissible_actions"],
        injection_id="inj-1" if source == "injected" else None,
        started_at=1_700_000_000.0 + seed,
        extra={"feasible": info["feasible"], "horizon": info["horizon"]},
    )
    while not builder.done:
        action = rng.randrange(len(info["admissible_actions"]))
        obs, r, terminated, truncated, info = env.step(action)
        builder.add_step(
            action,
            r,
            terminated,
            truncated,
            info["achieved_goals"],
            policy_version,
            obs,
            info["admissible_actions"],
        )
    return builder.build(ended_at=1_700_000_000.0 + seed + 1)


def hand_episode(
    achieved: Sequence[Sequence[str]],
    *,
    goal: str = "Grasp cow",
    terminated_last: bool = False,
    truncated_last: bool = True,
    rewards: Sequence[float] | None = None,
    actions_per_state: int = 3,
    tag: str = "",
    final_admissible: Sequence[str] | None = None,
) -> Episode:
    """An episode whose per-step achieved goals are given; observations name their step."""
    builder = EpisodeBuilder(
        goal=goal,
        goal_category="grasp",
        goal_source="discovered",
        env_id="test/hand-v0",
        scene_seed=7,
        observation=f"{tag}state 0",
        admissible_actions=[f"act {k}" for k in range(actions_per_state)],
        started_at=1.0,
    )
    n = len(achieved)
    for t, goals in enumerate(achieved):
        last = t == n - 1
        reward = rewards[t] if rewards is not None else (1.0 if goal in goals else 0.0)
        next_actions = [f"act {k}" for k in range(actions_per_state)]
        if last and final_admissible is not None:
            next_actions = list(final_admissible)
        builder.add_step(
            t % actions_per_state,
            reward,
            terminated_last and last,
            truncated_last and last and not terminated_last,
            list(goals),
            policy_version=100 + t,
            next_observation=f"{tag}state {t + 1}",
            next_admissible=next_actions,
        )
    return builder.build(ended_at=2.0)


def numbered_episode(number: int) -> Episode:
    """A deterministic episode that encodes ``number`` everywhere (crash-test payload)."""
    rng = random.Random(number)
    length = 1 + rng.randrange(12)
    steps = [
        [f"Grasp thing{number}"] if t == length - 1 and number % 3 == 0 else []
        for t in range(length)
    ]
    return hand_episode(
        steps,
        goal=f"Grasp item{number}",
        tag=f"#{number} é漢字 " + "x" * rng.randrange(200),
    )


def _writer(path: str, capacity: int, durable: bool, map_size: int) -> None:
    """Write ``numbered_episode(id)`` forever, printing each id after its commit."""
    store = EpisodeStore(path, capacity_transitions=capacity, durable=durable, map_size=map_size)
    print("open", flush=True)
    number = store.stats().next_episode_id
    while True:
        episode_id = store.put(numbered_episode(number))
        if episode_id != number:
            raise SystemExit(f"id {episode_id} for episode {number}")
        print(episode_id, flush=True)
        number += 1


def _fill_until_full(path: str, limit_bytes: int) -> None:
    """Write under a file-size limit until the store refuses; report what was acknowledged."""
    import resource

    from autotelic.storage import StorageFullError

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    store = EpisodeStore(path, capacity_transitions=10**9, map_size=1 << 20)
    number = store.stats().next_episode_id
    try:
        while True:
            episode_id = store.put(numbered_episode(number))
            print("ok", episode_id, flush=True)
            number += 1
    except StorageFullError as exc:
        print("full", str(exc).replace("\n", " "), flush=True)
    store.close()


def _read_stats(path: str) -> None:
    """Open read-only while another process writes; print stats and export."""
    import io

    store = EpisodeStore(path, readonly=True)
    stats = store.stats()
    out = io.StringIO()
    count = store.export_jsonl(out)
    print("stats", stats.episodes, stats.transitions, stats.next_episode_id)
    print("exported", count, len(out.getvalue().splitlines()))
    sys.stdout.write(out.getvalue())
    store.close()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "writer":
        _writer(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "durable", int(sys.argv[5]))
    elif mode == "fill":
        _fill_until_full(sys.argv[2], int(sys.argv[3]))
    elif mode == "read":
        _read_stats(sys.argv[2])
    else:
        raise SystemExit(f"unknown mode {mode}")
