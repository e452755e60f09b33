"""Kill -9 against the real service and a real Mosquitto: results owed to requesters
survive a crash during a broker outage, and random kills lose no announced episode and
never reuse a start's seed streams."""

from __future__ import annotations

import itertools
import json
import random
import re
import time
from pathlib import Path
from typing import Any

import pytest

from autotelic.goals.daemon import INJECTIONS_KEY, RESULTS_PREFIX
from autotelic.runtime.config import deep_merge
from autotelic.runtime.transport.messages import Topics
from autotelic.storage import EpisodeStore
from tests.runtime_fixtures import TINY_SERVICE, Mosquitto, Probe, ServiceProcess

AGENT = "crash"
TOPICS = Topics(AGENT)


def finished_injections(run_dir: Path) -> set[str]:
    with EpisodeStore(run_dir / "store", readonly=True) as store:
        state = store.get_state(INJECTIONS_KEY) or {}
    return {str(f[0]) for f in state.get("finished", [])}


def owed_in_store(run_dir: Path) -> set[str]:
    with EpisodeStore(run_dir / "store", readonly=True) as store:
        owed = [store.get_state(k) for k in store.state_keys(RESULTS_PREFIX)]
    return {str(data["message_id"]) for data in owed if data is not None}


def collect(probe: Probe, topic: str, until: float) -> list[dict[str, Any]]:
    """Messages on ``topic`` until nothing arrives for ``until`` seconds."""
    got = []
    while True:
        try:
            got.append(probe.next(timeout=until, topic=topic)[1])
        except TimeoutError:
            return got


def test_results_owed_when_the_service_is_killed_during_a_broker_outage_arrive_after_restart(
    tmp_path: Path,
) -> None:
    broker = Mosquitto(tmp_path)
    broker.start()
    config = deep_merge(
        TINY_SERVICE,
        {
            "run": {"agent": AGENT},
            "mqtt": {"url": broker.url, "reconnect_max_s": 1.0, "status_interval_s": 30},
            "checkpoint": {"interval_s": 3600},
        },
    )
    service = ServiceProcess(tmp_path, config)
    episodes = 150
    try:
        service.start()
        service.wait_connected()
        before = Probe(broker.port, [TOPICS.accepted, TOPICS.results])
        before.publish(TOPICS.inject, json.dumps({"goal": "Grasp cow", "episodes": episodes}))
        _, accepted, _ = before.next(topic=TOPICS.accepted)
        broker.stop()  # at once: most of the injection runs while the broker is away
        injection = accepted["injection_id"]
        early = [r for r in collect(before, TOPICS.results, 0.5) if r["injection_id"] == injection]
        before.close()
        service.wait_connected(False, timeout=30)
        service.wait_for(
            lambda: injection in finished_injections(service.run_dir),
            timeout=120,
            what="every injected episode run while the broker is away",
        )
        service.wait_for(
            lambda: service.metrics()["autotelic_results_pending"] > 0,
            timeout=10,
            what="the pending gauge",
        )
        service.kill()
        owed = owed_in_store(service.run_dir)
        expected = {f"{injection}:{n}" for n in range(episodes + 1)}  # episodes + completed
        assert owed and owed <= expected
        assert {r["message_id"] for r in early} | owed == expected  # sent, or else kept

        broker.start()
        after = Probe(broker.port, [TOPICS.results, TOPICS.status])
        service.start()
        service.wait_connected()
        received: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 60
        while not owed <= received.keys() and time.monotonic() < deadline:
            _, result, _ = after.next(timeout=60, topic=TOPICS.results)
            received.setdefault(result["message_id"], result)  # a duplicate is dropped
        assert owed <= received.keys()
        while True:  # the retained status counts the owed results down to 0
            _, status, _ = after.next(timeout=30, topic=TOPICS.status)
            if status["results_pending"] == 0:
                break
        after.close()
        results = [*early, *received.values()]
        assert {r["message_id"] for r in results} == expected
        done = [r for r in results if r["status"] == "completed"]
        assert len(done) == 1 and done[0]["episodes_done"] == episodes
        steps = [r for r in results if r["status"] == "episode"]
        assert sorted(r["episode_index"] for r in steps) == list(range(episodes))
        assert done[0]["successes"] == len({r["episode_index"] for r in steps if r["success"]})
        service.wait_for(  # the gauge is refreshed every second
            lambda: service.metrics()["autotelic_results_pending"] == 0,
            timeout=10,
            what="the pending gauge back to 0",
        )
        assert service.terminate() == 0
        assert owed_in_store(service.run_dir) == set()
        with EpisodeStore(service.run_dir / "store", readonly=True) as store:
            for r in steps:  # every result names a stored episode of that injection
                assert store.get(r["episode_id"]).injection_id == injection
    finally:
        if service.alive():
            service.kill()
        broker.stop()


@pytest.mark.slow
def test_random_kill_9s_give_every_start_new_seeds_and_lose_no_announced_episode(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """20 kills at seeded random moments: while starting, and while running across two
    checkpoint intervals. Start indices (the seed streams' second key) strictly increase;
    every episode announced on ``episodes`` (sent only once stored) is in the store."""
    interval = 2.0
    config = deep_merge(
        TINY_SERVICE,
        {
            "run": {"agent": AGENT},
            "mqtt": {"url": mosquitto.url},
            "checkpoint": {"interval_s": interval},
            "replay": {"capacity_transitions": 1_000_000},  # nothing evicted: all must be there
        },
    )
    service = ServiceProcess(tmp_path, config)
    announced = Probe(mosquitto.port, [TOPICS.episodes])
    rng = random.Random(1234)
    began = time.monotonic()
    service.start()
    startup = time.monotonic() - began
    ids: set[int] = set()
    waited_starts = 1
    try:
        for kill in range(20):
            if kill and rng.random() < 0.25:  # while it starts: store, counter, checkpoint load
                service.start(wait=False)
                time.sleep(rng.uniform(0.5 * startup, startup))  # the first half is imports
            else:  # while it runs: kills land before, between and after two checkpoints
                if kill:
                    service.start()
                    waited_starts += 1
                time.sleep(rng.uniform(0, 2 * interval + 1))
            service.kill()
            ids |= {m["episode_id"] for m in collect(announced, TOPICS.episodes, 0.2)}
        service.start()
        service.wait_connected()
        service.wait_for(
            lambda: service.metrics()["autotelic_env_steps_total"] > 0, what="a last step"
        )
        assert service.terminate() == 0
        ids |= {m["episode_id"] for m in collect(announced, TOPICS.episodes, 1.0)}
    finally:
        announced.close()
        if service.alive():
            service.kill()
    starts = [int(n) for n in re.findall(r": restart (\d+) at ", service.log.read_text())]
    assert len(starts) >= waited_starts + 1, starts
    assert all(a < b for a, b in itertools.pairwise(starts)), starts
    assert len(ids) > 100, "episodes are announced only after they are stored"
    with EpisodeStore(service.run_dir / "store", readonly=True) as store:
        stored = set(store.ids())
    assert ids <= stored, sorted(ids - stored)[:10]
    assert any((service.run_dir / "checkpoints").glob("ckpt-*"))
