"""Scale-out: the local backend against the Ray backend with 1, 2 and 4 collector actors.

One run measures every variant side by side, one after the other on the same machine:
``local`` (the collector and learner threads of ``run.backend: local``) and ``ray-N``
(``run.backend: ray`` with N collector actors on a loopback cluster this bench starts:
a head on 127.0.0.2 and ``--nodes - 1`` more nodes, token authentication on). Each
variant warms up (actors started, learning started) and is then measured over a window
of ``--window`` seconds:

* env steps/s and its ratio against ``local``;
* learner busy: the share of the window the learner spent in updates;
* cores used: CPU seconds of the driver and of every cluster process over the window,
  per second of wall time; steps/s per core used;
* per-episode overhead of the Ray path: the driver's wait on actor calls beyond the
  actors' own collection time, per stored episode, and a direct measurement of what
  every episode costs in calls of the goal actor (one ``next_goals`` and one
  ``report`` round trip).

    .venv/bin/python bench/scaleout.py                      # tiny model, 20 s windows
    .venv/bin/python bench/scaleout.py --model smollm2 --window 60

On a 2-core machine the cores are the ceiling: more actors cannot add steps/s beyond
them; read steps/s per core used, and docs/scale.md for what more nodes add.
"""

from __future__ import annotations

import argparse
import os
import secrets

# Ray reads its authentication mode when imported.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import json
import logging
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import ray

from autotelic.distributed.backend import RayParts, parts_of
from autotelic.distributed.local_cluster import LocalCluster
from autotelic.goals import EpisodeOutcome
from autotelic.runtime.config import deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent

HEAD = "127.0.0.2"
MODELS = {"tiny": "tiny-causal", "smollm2": "smollm2"}
TINY_SAC = {
    "name": "sac",
    "batch_size": 16,
    "learning_starts": 64,
    "update_every": 8,
    "critic_hidden": [64, 64],
}


@dataclass
class Row:
    """One variant's window."""

    variant: str
    actors: int
    env_steps_per_s: float
    learner_busy: float
    cores_used: float
    steps_per_s_per_core: float
    episodes: int
    ray_wait_ms_per_episode: float
    actor_lag_versions: float


def overrides(args: argparse.Namespace, run_dir: Path, actors: int) -> dict[str, Any]:
    base: dict[str, Any] = {
        "run": {"dir": str(run_dir), "agent": run_dir.name},
        "model": {"path": MODELS.get(args.model, args.model)},
        "env": {"num_envs": args.envs},
        "algorithm": TINY_SAC if args.model == "tiny" else {"name": "sac"},
        "replay": {"capacity_transitions": 50_000, "durable": True},
        "eval": {"enabled": False},
        "service": {"mqtt_enabled": False},
    }
    if actors:
        base = deep_merge(
            base,
            {
                "run": {"backend": "ray"},
                "ray": {
                    "address": args.address,
                    "node_ip_address": HEAD,
                    "num_collectors": actors,
                    "collector_num_cpus": 0.5,
                    "steps_per_call": args.steps_per_call,
                },
            },
        )
    return base


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            continue
    return total


def cluster_processes(cluster: LocalCluster | None) -> list[psutil.Process]:
    found = [psutil.Process()]
    for node in cluster.nodes if cluster is not None else []:
        root = psutil.Process(node.proc.pid)
        found += [root, *root.children(recursive=True)]
    return found


def measure(name: str, agent: Agent, args: argparse.Namespace, cluster: LocalCluster | None) -> Row:
    threads = agent.start_threads()
    try:
        deadline = time.monotonic() + args.warmup_timeout
        while agent.learner.num_updates < 2 or agent.collection.env_steps < args.envs * 8:
            if agent.stopping.is_set() or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: no learning after warm-up: {agent.error!r}")
            time.sleep(0.5)
        processes = cluster_processes(cluster)
        steps0, episodes0 = agent.collection.env_steps, agent.collection.episodes
        busy0 = agent.schedule.shares.snapshot().get("learning", 0.0)
        cpu0, wall0 = cpu_seconds(processes), time.perf_counter()
        ray_parts = parts_of(agent) if isinstance(agent.parts, RayParts) else None
        wait0 = ray_parts.cluster.ray_seconds if ray_parts is not None else 0.0
        time.sleep(args.window)
        wall = time.perf_counter() - wall0
        cores = (cpu_seconds(processes) - cpu0) / wall
        steps = (agent.collection.env_steps - steps0) / wall
        episodes = agent.collection.episodes - episodes0
        busy = (agent.schedule.shares.snapshot().get("learning", 0.0) - busy0) / wall
        wait = 0.0
        lag = 0.0
        actors = 0
        if ray_parts is not None:
            views = ray_parts.cluster.views
            wait = (ray_parts.cluster.ray_seconds - wait0) / max(1, episodes) * 1000
            lag = sum(v.lag for v in views) / len(views)
            actors = len(views)
    finally:
        agent.stop()
        for t in threads:
            t.join(timeout=30)
    return Row(
        variant=name,
        actors=actors,
        env_steps_per_s=round(steps, 1),
        learner_busy=round(busy, 3),
        cores_used=round(cores, 2),
        steps_per_s_per_core=round(steps / cores, 1) if cores > 0 else 0.0,
        episodes=episodes,
        ray_wait_ms_per_episode=round(wait, 2),
        actor_lag_versions=round(lag, 2),
    )


def goal_round_trip_ms(agent: Agent, n: int = 200) -> float:
    """Milliseconds of goal-actor calls one episode costs: one next_goals, one report."""
    client = parts_of(agent).goal_client
    assert client is not None
    began = time.perf_counter()
    for _ in range(n):
        (assignment,) = client.next_goals(1)
        client.report(
            EpisodeOutcome(
                goal=assignment.goal,
                source=assignment.source,
                injection_id=None,
                success=False,
                steps=1,
                achieved_goals=[],
                episode_id=None,
            )
        )
    return (time.perf_counter() - began) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny, smollm2, or a model.path")
    parser.add_argument("--envs", type=int, default=4, help="envs per collector")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--nodes", type=int, default=2, help="cluster nodes (head included)")
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--warmup-timeout", type=float, default=300.0)
    parser.add_argument("--steps-per-call", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows: list[Row] = []
    overhead_ms = 0.0
    with tempfile.TemporaryDirectory(prefix="scaleout-") as tmp:
        work = Path(tmp)
        local = Agent(load_settings(None, **overrides(args, work / "local", 0)))
        try:
            rows.append(measure("local", local, args, None))
        finally:
            local.close()
        cluster = LocalCluster(
            work / "cluster",
            workers=args.nodes - 1,
            num_cpus=8,
            token=os.environ["RAY_AUTH_TOKEN"],
        )
        cluster.start()
        args.address = cluster.address
        try:
            ray.init(address=cluster.address, _node_ip_address=HEAD, include_dashboard=False)
            for n in args.actors:
                agent = Agent(load_settings(None, **overrides(args, work / f"ray-{n}", n)))
                try:
                    rows.append(measure(f"ray-{n}", agent, args, cluster))
                    if not overhead_ms:
                        overhead_ms = goal_round_trip_ms(agent)
                finally:
                    agent.close()
        finally:
            if ray.is_initialized():
                ray.shutdown()
            cluster.stop()
    print_rows(rows, overhead_ms, args)
    if args.json is not None:
        args.json.write_text(
            json.dumps({"rows": [asdict(r) for r in rows], "goal_calls_ms": overhead_ms})
        )


def print_rows(rows: list[Row], overhead_ms: float, args: argparse.Namespace) -> None:
    base = rows[0].env_steps_per_s or 1.0
    print(
        f"model {args.model}, {args.envs} envs per collector, {args.window:.0f} s windows, "
        f"{os.cpu_count()} cores, cluster of {args.nodes} loopback nodes"
    )
    header = (
        f"{'variant':<8} {'steps/s':>8} {'x local':>8} {'learner':>8} {'cores':>6} "
        f"{'steps/s/core':>13} {'episodes':>9} {'wait ms/ep':>11} {'lag':>5}"
    )
    print(header)
    for r in rows:
        print(
            f"{r.variant:<8} {r.env_steps_per_s:>8.1f} {r.env_steps_per_s / base:>8.2f} "
            f"{r.learner_busy:>8.1%} {r.cores_used:>6.2f} {r.steps_per_s_per_core:>13.1f} "
            f"{r.episodes:>9d} {r.ray_wait_ms_per_episode:>11.2f} {r.actor_lag_versions:>5.1f}"
        )
    print(f"goal-actor calls per episode (next_goals + report): {overhead_ms:.2f} ms")


if __name__ == "__main__":
    threading.current_thread().name = "scaleout"
    main()
