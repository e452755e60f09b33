"""The Ray backend on a real two-node cluster on loopback addresses, with token auth.

One cluster serves the whole module: a head node on 127.0.0.2 and a second node on
127.0.0.3 (separate raylets, object stores and worker processes), started with
``ray start`` and stopped, with everything they started, at the end. The driver is
this process (or an ``autotelic run`` service joining the same cluster).
"""

from __future__ import annotations

import os
import secrets

# Ray reads its authentication mode when it is imported: set it first.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import ipaddress
import signal
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest

from autotelic.distributed.backend import parts_of
from autotelic.distributed.cluster import ClusterUnreachableError
from autotelic.distributed.local_cluster import LocalCluster
from autotelic.runtime.config import ConfigError, load_settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.loop.collector import FinishedEpisode
from autotelic.runtime.transport.broker import free_port
from autotelic.runtime.transport.messages import Topics
from autotelic.storage import EpisodeStore
from tests.ray_fixtures import NODES, cluster, ray_config, wait_until
from tests.runtime_fixtures import TINY_PPO, Mosquitto, Probe, ServiceProcess

__all__ = ["cluster"]  # the module's fixture


def stop(agent: Agent, threads: list[threading.Thread]) -> None:
    agent.stop()
    for t in threads:
        t.join(timeout=30)
    assert agent.error is None, agent.error


def cluster_processes(cluster: LocalCluster) -> list[psutil.Process]:
    """This driver and every process the cluster's nodes started."""
    found = [psutil.Process()]
    for node in cluster.nodes:
        root = psutil.Process(node.proc.pid)
        found += [root, *root.children(recursive=True)]
    return found


def remote_peers(processes: list[psutil.Process]) -> set[tuple[str, str]]:
    """(process, address) of every established connection to a non-loopback address."""
    outside = set()
    for proc in processes:
        try:
            connections = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for conn in connections:
            if conn.status != psutil.CONN_ESTABLISHED or not conn.raddr:
                continue
            address = ipaddress.ip_address(conn.raddr.ip.split("%")[0])
            mapped = getattr(address, "ipv4_mapped", None)
            if not (address.is_loopback or (mapped is not None and mapped.is_loopback)):
                outside.add((proc.name(), conn.raddr.ip))
    return outside


def test_two_collector_actors_on_two_nodes_fill_one_store_that_the_learner_learns_from(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    agent = Agent(load_settings(None, **ray_config(cluster, tmp_path / "run")))
    announced: list[FinishedEpisode] = []
    agent.collection.listeners.append(announced.append)
    try:
        threads = agent.start_threads()
        wait_until(
            agent,
            lambda: (
                agent.learner.policy_version >= 3
                and all(
                    v.episodes > 0 and v.policy_version >= 1 for v in parts_of(agent).cluster.views
                )
            ),
        )
        assert remote_peers(cluster_processes(cluster)) == set()
        stop(agent, threads)
        views = parts_of(agent).cluster.views
        assert {v.node_ip for v in views} == NODES  # the actors live on both nodes
        assert len({v.pid for v in views} | {os.getpid()}) == 3
        stored = list(agent.store.iter_episodes())
        by_actor = {e.extra["collector"]["actor"] for e in stored}
        assert by_actor == {0, 1}
        assert {e.extra["collector"]["node"] for e in stored} == NODES
        assert {d.episode_id for d in announced} <= {e.id for e in stored}
        assert agent.learner.num_updates > 0
        # Versions propagate: both actors acted with weights the learner published later.
        newer = {e.extra["collector"]["actor"] for e in stored if e.steps[-1].policy_version >= 1}
        assert newer == {0, 1}
        # The shared goal daemon heard of every stored episode, and only of those.
        client = parts_of(agent).goal_client
        assert client is not None
        assert client.outcomes_received() == len(stored) == agent.collection.episodes
        assert len(agent.status().actors or []) == 2
    finally:
        agent.close()


def test_a_collector_actor_killed_with_sigkill_is_restarted_and_ppo_goes_on(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    config = {**ray_config(cluster, tmp_path / "run"), "algorithm": TINY_PPO}
    agent = Agent(load_settings(None, **config))
    announced: list[FinishedEpisode] = []
    agent.collection.listeners.append(announced.append)
    try:
        views = parts_of(agent).cluster.views
        threads = agent.start_threads()
        wait_until(agent, lambda: views[1].episodes > 0 and agent.learner.num_updates > 0)
        victim = views[1].pid
        os.kill(victim, signal.SIGKILL)
        wait_until(
            agent,
            lambda: views[1].pid not in (0, victim) and views[1].episodes > 0 and views[1].alive,
        )
        updates = agent.learner.num_updates
        episodes = views[1].episodes
        wait_until(agent, lambda: agent.learner.num_updates > updates + 1)
        wait_until(agent, lambda: views[1].episodes > episodes)
        stop(agent, threads)
        assert views[1].restarts >= 1
        stored = {e.id: e for e in agent.store.iter_episodes()}
        assert all(d.episode_id in stored for d in announced)
        pids = {e.extra["collector"]["pid"] for e in stored.values()}
        assert {victim, views[1].pid} <= pids  # before and after the restart
    finally:
        agent.close()


def test_a_ray_run_that_died_after_a_checkpoint_resumes_from_it_as_a_local_run_does(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    settings = load_settings(None, **ray_config(cluster, tmp_path / "run"))
    agent = Agent(settings)
    try:
        threads = agent.start_threads()
        wait_until(agent, lambda: agent.learner.num_updates >= 2)
        agent.checkpoint(pause=True)
        loaded = agent.checkpoints.load()  # what was saved (the threads go on meanwhile)
        assert loaded is not None
        saved = dict(loaded.state["counters"])
        curriculum = loaded.state["curriculum"]["learning"]["episodes"]
        wait_until(agent, lambda: agent.collection.episodes > saved["episodes"] + 4)
        stop(agent, threads)  # and no checkpoint: what was learned since is lost
    finally:
        agent.close()
    resumed = Agent(settings)
    try:
        stored = list(resumed.store.iter_episodes())
        assert resumed.restarts == 1
        assert resumed.learner.policy_version == saved["policy_version"]
        assert resumed.collection.episodes == len(stored) > saved["episodes"]
        assert resumed.daemon.state_dict()["learning"]["episodes"] == curriculum
        threads = resumed.start_threads()
        wait_until(resumed, lambda: resumed.collection.episodes > len(stored))
        stop(resumed, threads)
    finally:
        resumed.close()


def wildcard_listeners(processes: list[psutil.Process]) -> set[tuple[str, str, int]]:
    """(process, address, port) of every TCP listener bound to 0.0.0.0 or ::."""
    found = set()
    for proc in processes:
        try:
            connections = proc.net_connections(kind="tcp")
            name = proc.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for conn in connections:
            if conn.status == psutil.CONN_LISTEN and conn.laddr.ip in ("0.0.0.0", "::"):
                found.add((name, conn.laddr.ip, conn.laddr.port))
    return found


def service_processes(service: ServiceProcess, cluster: LocalCluster) -> list[psutil.Process]:
    """The service (the Ray driver, re-executed under the bind shim) and everything it
    started, and every process of the cluster's nodes (not this test's own driver)."""
    assert service.proc is not None
    root = psutil.Process(service.proc.pid)
    return [root, *root.children(recursive=True), *cluster_processes(cluster)[1:]]


def test_the_service_on_ray_serves_an_mqtt_injection_from_an_actor_and_shows_its_actors(
    cluster: LocalCluster, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = ray_config(
        cluster,
        tmp_path / "run",
        run={"agent": "rayservice"},
        service={"mqtt_enabled": True, "progress_interval_s": 2},
        mqtt={"url": mosquitto.url, "status_interval_s": 1},
        metrics={"port": 0},
        checkpoint={"interval_s": 5},
    )
    config["run"].pop("dir")
    service = ServiceProcess(tmp_path, config)
    topics = Topics("rayservice")
    probe = Probe(mosquitto.port, [topics.accepted, topics.results, topics.status])
    try:
        service.start()
        service.wait_connected()
        probe.publish(topics.inject, '{"goal": "grasp cow", "episodes": 2}')
        _, accepted, _ = probe.next(topic=topics.accepted, timeout=60)
        results: list[dict[str, Any]] = []
        while not results or results[-1]["status"] != "completed":
            _, report, _ = probe.next(topic=topics.results, timeout=120)
            results.append(report)
        assert [r["status"] for r in results] == ["episode", "episode", "completed"]
        assert {r["injection_id"] for r in results} == {accepted["injection_id"]}
        status: dict[str, Any] = {}
        while not status.get("actors") or not all(a["episodes"] for a in status["actors"]):
            _, status, _ = probe.next(topic=topics.status, timeout=60)
        assert status["backend"] == "ray"
        assert {a["node"] for a in status["actors"]} == NODES
        assert service.proc is not None
        assert service.proc.pid not in {a["pid"] for a in status["actors"]}
        processes = service_processes(service, cluster)
        assert len(processes) > 6
        assert wildcard_listeners(processes) == set()
        assert "bind-shim-" in Path(f"/proc/{service.proc.pid}/maps").read_text()
        metrics = service.metrics()
        assert metrics['autotelic_actor_env_steps_total{actor="0"}'] > 0
        assert 'autotelic_actor_policy_lag_versions{actor="1"}' in metrics
        assert service.terminate() == 0
    finally:
        probe.close()
        if service.alive():
            service.kill()
    store = EpisodeStore(service.run_dir / "store", readonly=True)
    try:
        served = [e for e in store.iter_episodes() if e.injection_id == accepted["injection_id"]]
        assert len(served) == 2
        assert all(e.extra["collector"]["node"] in NODES for e in served)
    finally:
        store.close()


def test_a_cluster_that_cannot_be_reached_is_a_clear_error_at_start(tmp_path: Path) -> None:
    nowhere = f"127.0.0.2:{free_port('127.0.0.2')}"
    settings = load_settings(
        None,
        run={"dir": str(tmp_path / "run"), "backend": "ray"},
        model={"path": "tiny-causal"},
        ray={"address": nowhere},
    )
    with pytest.raises(ClusterUnreachableError, match=f"cannot reach the Ray cluster at {nowhere}"):
        Agent(settings)


def test_the_ray_backend_needs_the_concurrent_mode() -> None:
    with pytest.raises(ConfigError, match=r"run\.backend ray needs run\.mode concurrent"):
        load_settings(None, run={"backend": "ray", "mode": "serial"})
