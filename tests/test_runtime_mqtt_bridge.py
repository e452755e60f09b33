"""The MQTT bridge against a real Mosquitto: replies, retained status, outages, last will."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from autotelic.envs.playground import GoalError, PlaygroundGoalSpace, canonical_goal
from autotelic.runtime.loop.control import Accepted, AgentStatus, InjectionRejected
from autotelic.runtime.telemetry.metrics import Metrics
from autotelic.runtime.transport.messages import Topics
from autotelic.runtime.transport.mqtt import MQTTBridge, cancel_all
from autotelic.runtime.transport.mqtt_config import MQTTConfig
from tests.runtime_fixtures import Mosquitto

TOPICS = Topics("tester")


def grammar_inject(
    goal: str, episodes: int = 1, *, priority: int = 0, ttl_s: float | None = None
) -> Accepted:
    """An agent's ``inject`` reduced to the goal grammar: the bridge sees the same."""
    try:
        canonical = canonical_goal(goal)
    except GoalError as err:
        raise InjectionRejected(str(err), goal) from None
    feasible = PlaygroundGoalSpace().feasible(canonical)
    return Accepted(f"inj-{canonical}-{episodes}", canonical, episodes, feasible)


def status_now() -> AgentStatus:
    return AgentStatus(
        agent="tester", pid=1, learner="sac", policy_version=3, env_steps=7, updates=2,
        episodes=1, results_pending=0, backend="local",
    )  # fmt: skip


def make_bridge(url: str, metrics: Metrics | None = None, **overrides: Any) -> MQTTBridge:
    settings: dict[str, Any] = {"reconnect_min_s": 0.2, "reconnect_max_s": 1.0, **overrides}
    config = MQTTConfig(url=url, **settings)
    return MQTTBridge(
        config,
        TOPICS,
        grammar_inject,
        status=status_now,
        client_id="autotelic-tester",
        events=metrics.events() if metrics is not None else None,  # its events, as Prometheus
    )


async def collect(
    port: int,
    topic: str | list[str],
    count: int,
    action: Callable[[aiomqtt.Client], Awaitable[None]] | None = None,
    timeout: float = 10.0,
) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=f"probe-{time.monotonic_ns()}"
    ) as client:
        for t in [topic] if isinstance(topic, str) else topic:
            await client.subscribe(t, qos=1)
        if action is not None:
            await action(client)

        async def read() -> None:
            async for message in client.messages:
                got.append(message)
                if len(got) >= count:
                    return

        await asyncio.wait_for(read(), timeout)
    return got


def test_requests_get_replies_and_status_is_retained(mosquitto: Mosquitto) -> None:
    metrics = Metrics()

    async def scenario() -> None:
        bridge = make_bridge(mosquitto.url, metrics)
        task = asyncio.create_task(bridge.run())
        await asyncio.wait_for(bridge.connected.wait(), 10)

        async def send(client: aiomqtt.Client) -> None:
            await client.publish(
                TOPICS.inject,
                json.dumps({"goal": "grow  Carrot", "episodes": 2, "request_id": "a"}),
                qos=1,
            )
            await client.publish(TOPICS.inject, b"{not json", qos=1)
            await client.publish(
                TOPICS.inject, json.dumps({"goal": "Grow unicorn", "request_id": "b"}), qos=1
            )
            await client.publish(
                TOPICS.inject, json.dumps({"goal": "Grasp cow", "episodes": "3"}), qos=1
            )
            await client.publish(TOPICS.inject, json.dumps({"goal": "grow chair"}), qos=1)

        replies = await collect(mosquitto.port, [TOPICS.accepted, TOPICS.rejected], 5, send)
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for m in replies:
            by_topic.setdefault(str(m.topic), []).append(json.loads(m.payload))
        accepted = by_topic[TOPICS.accepted]
        assert accepted[0] == {
            **accepted[0],
            "status": "accepted",
            "injection_id": "inj-Grow carrot-2",
            "goal": "Grow carrot",
            "episodes": 2,
            "feasible": True,
            "request_id": "a",
        }
        assert [(a["goal"], a["feasible"]) for a in accepted[1:]] == [("Grow chair", False)]
        reasons = [r["reason"] for r in by_topic[TOPICS.rejected]]
        assert any("not JSON" in r for r in reasons)
        assert any("unknown object 'unicorn'" in r for r in reasons)
        assert any("episodes" in r and "integer" in r for r in reasons)

        status = await collect(mosquitto.port, TOPICS.status, 1)
        assert status[0].retain and json.loads(status[0].payload)["state"] == "online"
        assert json.loads(status[0].payload)["env_steps"] == 7

        bridge.stop()
        await asyncio.wait_for(task, 30)
        status = await collect(mosquitto.port, TOPICS.status, 1)
        assert json.loads(status[0].payload)["state"] == "offline"

    asyncio.run(scenario())
    assert metrics.injected_goals.labels(status="accepted")._value.get() == 2
    assert metrics.injected_goals.labels(status="rejected")._value.get() == 3


def test_broker_outage_queues_messages_and_reconnects(mosquitto: Mosquitto) -> None:
    metrics = Metrics()

    async def scenario() -> None:
        bridge = make_bridge(mosquitto.url, metrics, reconnect_min_s=1.5, reconnect_max_s=1.5)
        task = asyncio.create_task(bridge.run())
        await asyncio.wait_for(bridge.connected.wait(), 10)
        mosquitto.stop()
        for _ in range(100):
            if not bridge.connected.is_set():
                break
            await asyncio.sleep(0.05)
        assert not bridge.connected.is_set()
        assert metrics.mqtt_connected._value.get() == 0
        for i in range(5):
            bridge.publish(TOPICS.results, {"n": i})
        assert bridge.pending == 5
        mosquitto.start()
        got = await collect(mosquitto.port, TOPICS.results, 5, timeout=20)
        assert [json.loads(m.payload)["n"] for m in got] == [0, 1, 2, 3, 4]
        assert bridge.connected.is_set() and bridge.pending == 0

        async def inject(client: aiomqtt.Client) -> None:
            await client.publish(
                TOPICS.inject, json.dumps({"goal": "Grasp cow", "request_id": "after"}), qos=1
            )

        reply = await collect(mosquitto.port, TOPICS.accepted, 1, inject)
        assert json.loads(reply[0].payload)["request_id"] == "after"
        bridge.stop()
        await asyncio.wait_for(task, 30)

    asyncio.run(scenario())
    assert metrics.mqtt_reconnects._value.get() >= 1


def test_durable_messages_are_never_dropped_and_acknowledged_only_once_the_broker_has_them(
    mosquitto: Mosquitto,
) -> None:
    metrics = Metrics()
    acked: list[int] = []

    async def scenario() -> None:
        # A reconnect delay well past the broker's restart, so the probe below subscribes
        # before the bridge comes back and delivers (else a loaded machine can lose the race).
        bridge = make_bridge(
            mosquitto.url, metrics, reconnect_min_s=4.0, reconnect_max_s=4.0, outbox_size=100
        )
        task = asyncio.create_task(bridge.run())
        await asyncio.wait_for(bridge.connected.wait(), 10)
        mosquitto.stop()
        while bridge.connected.is_set():
            await asyncio.sleep(0.05)
        for i in range(5):
            bridge.publish(TOPICS.results, {"n": i}, on_ack=functools.partial(acked.append, i))
        for i in range(150):  # overflows the outbox: only these may be dropped
            bridge.publish(TOPICS.episodes, {"e": i})
        assert bridge.pending == 100 and bridge.dropped == 55
        with pytest.raises(ValueError, match="qos 1 or 2"):
            bridge.publish(TOPICS.results, {}, qos=0, on_ack=lambda: None)
        await asyncio.sleep(0.5)
        assert acked == []  # nothing acknowledged while the broker is away
        mosquitto.start()
        got = await collect(mosquitto.port, TOPICS.results, 5, timeout=20)
        assert [json.loads(m.payload)["n"] for m in got] == [0, 1, 2, 3, 4]
        for _ in range(100):
            if len(acked) == 5:
                break
            await asyncio.sleep(0.05)
        assert acked == [0, 1, 2, 3, 4]
        bridge.stop()  # flushes (bounded to 5 s) and says offline: generous for a loaded box
        await asyncio.wait_for(task, 30)

    asyncio.run(scenario())
    assert metrics.mqtt_dropped._value.get() == 55


def test_last_will_says_offline_when_the_process_is_killed(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    script = tmp_path / "bridge.py"
    script.write_text(
        textwrap.dedent(f"""
        import asyncio, sys
        from tests.test_runtime_mqtt_bridge import make_bridge
        async def main():
            bridge = make_bridge({mosquitto.url!r})
            task = asyncio.create_task(bridge.run())
            await bridge.connected.wait()
            print("connected", flush=True)
            await task
        asyncio.run(main())
    """)
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"connected"

        async def online() -> str:
            got = await collect(mosquitto.port, TOPICS.status, 1)
            return str(json.loads(got[0].payload)["state"])

        assert asyncio.run(online()) == "online"
    finally:
        proc.kill()
        proc.wait()

    async def offline() -> str:
        for _ in range(50):
            got = await collect(mosquitto.port, TOPICS.status, 1)
            state = str(json.loads(got[0].payload)["state"])
            if state == "offline":
                return state
            await asyncio.sleep(0.2)
        return state

    assert asyncio.run(offline()) == "offline"


@pytest.mark.parametrize("url", ["http://x", "mqtt://", "ftp://host"])
def test_bad_broker_urls_are_rejected_by_name(url: str) -> None:
    with pytest.raises(ValueError, match="url"):
        MQTTConfig(url=url)


def test_ending_a_session_stops_a_task_that_swallowed_its_first_cancellation() -> None:
    """A task that loses one cancel (Python 3.11's wait_for does, when the awaited
    acknowledgement completes at that moment) must not keep the bridge from stopping."""
    swallowed: list[bool] = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            swallowed.append(True)  # carries on as if nothing happened
        await asyncio.sleep(60)

    async def scenario() -> asyncio.Task[None]:
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_all({task}), timeout=10)
        return task

    task = asyncio.run(scenario())
    assert swallowed == [True] and task.cancelled()
