"""Talking to a running agent over MQTT: what ``autotelic inject`` and ``status`` do."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import aiomqtt

from autotelic.runtime.transport.messages import Topics
from autotelic.runtime.transport.mqtt_config import MQTTConfig

Echo = Callable[[str], None]


def _client(config: MQTTConfig) -> aiomqtt.Client:
    """A short-lived client, connecting the way the service's bridge does."""
    host, port, _tls = config.endpoint()
    user, password = config.credentials()
    return aiomqtt.Client(
        host,
        port,
        username=user,
        password=password,
        identifier=f"autotelic-cli-{uuid.uuid4().hex[:12]}",
        tls_context=config.ssl_context(),
        timeout=10,
    )


async def inject_goal(
    broker: MQTTConfig,
    topics: Topics,
    request: dict[str, Any],
    *,
    wait: bool,
    timeout: float,
    out: Echo,
    feasible: bool | None = None,
) -> int:
    """Publish a goal request; print the reply and, with ``wait``, each result until done.

    ``feasible`` is what the caller's own goal space says of the goal; the acceptance's
    ``feasible`` field, when the agent sends one, wins. Either way an infeasible goal is
    accepted (people may test the agent with one) with a line saying so.

    Exit code: 0 accepted (and, with ``wait``, completed), 1 rejected or expired,
    2 no reply in time or no broker.
    """
    try:
        async with _client(broker) as client:
            for topic in (topics.accepted, topics.rejected, topics.results):
                await client.subscribe(topic, qos=1)
            await client.publish(topics.inject, json.dumps(request), qos=1)
            return await asyncio.wait_for(
                _follow(client, topics, request["request_id"], wait, out, feasible),
                timeout=None if wait else timeout,
            )
    except TimeoutError:
        out(f"no reply from agent {topics.agent!r} within {timeout:.0f}s (is it running?)")
        return 2
    except aiomqtt.MqttError as err:
        out(f"cannot reach the broker at {broker.url}: {err}")
        return 2


async def _follow(
    client: aiomqtt.Client,
    topics: Topics,
    request_id: str,
    wait: bool,
    out: Echo,
    feasible: bool | None,
) -> int:
    injection_id: str | None = None
    async for message in client.messages:
        data = json.loads(bytes(message.payload))
        if message.topic.matches(topics.rejected) and data.get("request_id") == request_id:
            out(f"rejected: {data['reason']}")
            return 1
        if message.topic.matches(topics.accepted) and data.get("request_id") == request_id:
            injection_id = data["injection_id"]
            out(f"accepted: {data['goal']!r} x{data['episodes']} (injection {injection_id})")
            if data.get("feasible", feasible) is False:
                out(infeasible_note(str(data["goal"])))
            if not wait:
                return 0
        elif message.topic.matches(topics.results) and data.get("injection_id") == injection_id:
            if data["status"] == "episode":
                verdict = "success" if data["success"] else "failure"
                out(
                    f"episode {data['episode_index'] + 1}/{data['episodes_requested']}: "
                    f"{verdict} in {data['steps']} steps (episode id {data['episode_id']})"
                )
            else:
                out(f"{data['status']}: {data['successes']}/{data['episodes_done']} successes")
                return 0 if data["status"] == "completed" else 1
    return 2


def infeasible_note(goal: str) -> str:
    """The line that says an accepted goal can never succeed, and why it was accepted."""
    return (
        f"note: the goal space knows {goal!r} is infeasible: no episode can achieve it "
        "(e.g. furniture never grows), so every episode of it will fail"
    )


async def read_status(broker: MQTTConfig, topics: Topics, timeout: float) -> dict[str, Any] | None:
    """The agent's retained status message, or None if none arrives in ``timeout``."""

    async def first() -> dict[str, Any]:
        async with _client(broker) as client:
            await client.subscribe(topics.status, qos=1)
            async for message in client.messages:
                data: dict[str, Any] = json.loads(bytes(message.payload))
                return data
        raise TimeoutError

    try:
        return await asyncio.wait_for(first(), timeout)
    except (TimeoutError, aiomqtt.MqttError):
        return None
