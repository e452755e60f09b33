"""The Ray backend's account of an actor death, on a real two-node loopback cluster.

One SIGKILL of a collector actor's process is one restart, however many calls fail
while Ray brings up the new process.
"""

from __future__ import annotations

import os
import secrets

# Ray reads its authentication mode when it is imported: set it first.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import functools
import signal
import threading
import time
from pathlib import Path

import ray

from autotelic.distributed.backend import parts_of
from autotelic.distributed.local_cluster import LocalCluster
from autotelic.runtime.config import load_settings
from autotelic.runtime.loop.agent import Agent
from tests.ray_fixtures import cluster, ray_config, wait_until

__all__ = ["cluster"]  # the module's fixture

_wait = functools.partial(wait_until, timeout=300.0)
"""Restarted actors take longer than a first start: the bound these tests always had."""


def test_one_actor_death_is_one_restart(cluster: LocalCluster, tmp_path: Path) -> None:
    settings = load_settings(
        None,
        **ray_config(
            cluster,
            tmp_path / "run",
            run={"agent": "r1"},
            env={"num_envs": 2},
            ray={"num_collectors": 2},
        ),
    )
    agent = Agent(settings)
    threads: list[threading.Thread] = []
    try:
        views = parts_of(agent).cluster.views
        threads = agent.start_threads()
        _wait(agent, lambda: views[1].episodes > 0)
        victim = views[1].pid
        os.kill(victim, signal.SIGKILL)
        _wait(agent, lambda: views[1].pid not in (0, victim) and views[1].alive)
        episodes = views[1].episodes
        _wait(agent, lambda: views[1].episodes > episodes)
        assert views[1].restarts == 1
        assert views[0].restarts == 0
        status = {a.actor: a for a in agent.status().actors or []}
        assert status[1].restarts == 1 and status[1].pid == views[1].pid
    finally:
        agent.stop()
        for t in threads:
            t.join(timeout=30)
        agent.close()


def test_a_goal_actor_restarted_by_ray_starts_from_the_latest_checkpoint(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    settings = load_settings(
        None,
        **ray_config(
            cluster,
            tmp_path / "run",
            run={"agent": "r2"},
            env={"num_envs": 2},
            ray={"num_collectors": 1},
        ),
    )
    agent = Agent(settings)
    threads: list[threading.Thread] = []
    try:
        client = parts_of(agent).goal_client
        assert client is not None
        handle = client.handle
        threads = agent.start_threads()
        _wait(
            agent,
            lambda: client.outcomes_received() >= 6,
        )
        agent.stop()
        for t in threads:
            t.join(timeout=30)
        threads = []
        agent.checkpoint()
        saved = client.state_dict()["learning"]
        assert not ray.get(handle.was_restored.remote())
        victim = ray.get(handle.pid.remote())
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 180
        while True:
            assert time.monotonic() < deadline, "the goal actor did not come back"
            try:
                if ray.get(handle.pid.remote(), timeout=10) != victim:
                    break
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                pass
            time.sleep(0.5)
        assert ray.get(handle.was_restored.remote())
        assert client.state_dict()["learning"] == saved
    finally:
        agent.stop()
        for t in threads:
            t.join(timeout=30)
        agent.close()


def test_injected_episodes_held_by_an_actor_that_dies_are_served_again_at_once(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """With no ttl, an episode lost with its actor would wait forever: the injection
    completes only because what the dead process held is served again."""
    from autotelic.goals import InjectionReport

    settings = load_settings(
        None,
        **ray_config(
            cluster,
            tmp_path / "run",
            run={"agent": "r3"},
            env={"num_envs": 2},
            ray={"num_collectors": 2},
        ),
    )
    agent = Agent(settings)
    reports: list[InjectionReport] = []
    agent.subscribe(reports=reports.append)
    threads: list[threading.Thread] = []
    try:
        views = parts_of(agent).cluster.views
        threads = agent.start_threads()
        _wait(agent, lambda: views[0].episodes > 0 and views[1].episodes > 0)
        injection_id = agent.inject("Grasp cow", episodes=24).injection_id
        committed = parts_of(agent).cluster.committed[1]
        handed = parts_of(agent).goal_client.handle.handed_to  # type: ignore[union-attr]

        def holding() -> bool:  # actor 1 holds episodes of the injection it has not finished
            given = ray.get(handed.remote(1)).get(injection_id, 0)
            return bool(given - committed.get(injection_id, 0) > 0)

        _wait(agent, holding)
        victim = views[1].pid
        os.kill(victim, signal.SIGKILL)
        _wait(
            agent,
            lambda: any(
                r.injection_id == injection_id and r.status == "completed" for r in reports
            ),
            timeout=600,
        )
        episodes = [r for r in reports if r.injection_id == injection_id and r.status == "episode"]
        assert len(episodes) == 24
        assert parts_of(agent).requeued >= 1  # the dead process held some of them
        assert views[1].restarts == 1
    finally:
        agent.stop()
        for t in threads:
            t.join(timeout=30)
        agent.close()
