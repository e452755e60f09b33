"""The MQTT bridge: goal requests in, replies, results, episodes and status out.

The bridge never stops the service. When the broker goes away it reconnects
with capped exponential backoff and jitter; messages for the broker wait in a
bounded outbox meanwhile and are removed only once the broker acknowledged them
(QoS 1), so results are delivered at least once. The session is persistent
(fixed client id, clean session off), so goal requests published while the
bridge was disconnected are queued by the broker and arrive on reconnect. The
retained status is ``online`` while connected and the broker publishes the
``offline`` last will if the process dies; a clean stop publishes ``offline``
itself before disconnecting.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt
from pydantic import BaseModel

from autotelic.runtime.messages import (
    Acceptance,
    InjectRequest,
    Rejection,
    RequestError,
    Status,
    Topics,
    parse_inject_request,
)
from autotelic.runtime.metrics import Metrics
from autotelic.runtime.mqtt_config import MQTTConfig

log = logging.getLogger(__name__)

InjectHandler = Callable[[InjectRequest], Acceptance | Rejection]
StatusSource = Callable[[], Status]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message waiting for the broker."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


def encode(message: BaseModel | dict[str, object] | str) -> bytes:
    if isinstance(message, BaseModel):
        return message.model_dump_json().encode()
    if isinstance(message, str):
        return message.encode()
    return json.dumps(message).encode()


class MQTTBridge:
    """Connects the service to a broker and keeps it connected."""

    def __init__(
        self,
        config: MQTTConfig,
        topics: Topics,
        handle_inject: InjectHandler,
        status: StatusSource,
        client_id: str,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.topics = topics
        self._handle_inject = handle_inject
        self._status = status
        self._client_id = client_id
        self._metrics = metrics
        self._outbox: collections.deque[Outgoing] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self.connected = asyncio.Event()
        self.dropped = 0

    # -- publishing (any thread) ---------------------------------------------------------------

    def publish(
        self,
        topic: str,
        message: BaseModel | dict[str, object] | str,
        qos: int = 1,
        retain: bool = False,
    ) -> None:
        """Queue a message for the broker; safe to call from any thread."""
        item = Outgoing(topic, encode(message), qos, retain)
        loop = self._loop
        if loop is None or loop.is_closed():
            self._enqueue(item)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._enqueue(item)
        else:
            loop.call_soon_threadsafe(self._enqueue, item)

    def _enqueue(self, item: Outgoing) -> None:
        if len(self._outbox) >= self.config.outbox_size:
            self._outbox.popleft()
            self.dropped += 1
            if self._metrics:
                self._metrics.mqtt_dropped.inc()
        self._outbox.append(item)
        if self._wakeup is not None:
            self._wakeup.set()

    @property
    def pending(self) -> int:
        """Messages not yet acknowledged by the broker."""
        return len(self._outbox)

    # -- the connection loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until :meth:`stop`; never raises for broker trouble."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        if self._outbox:
            self._wakeup.set()
        backoff = self.config.reconnect_min_s
        while not self._stop.is_set():
            try:
                await self._session()
                backoff = self.config.reconnect_min_s
            except aiomqtt.MqttError as err:
                log.warning("MQTT connection lost or refused (%s); retrying in %.1fs", err, backoff)
            self._set_connected(False)
            if self._stop.is_set():
                break
            if self._metrics:
                self._metrics.mqtt_reconnects.inc()
            await self._sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self.config.reconnect_max_s)

    def stop(self) -> None:
        """Ask :meth:`run` to flush (bounded), publish ``offline``, disconnect and return."""
        if self._stop is not None:
            self._stop.set()

    def _client(self) -> aiomqtt.Client:
        host, port, _tls = self.config.endpoint()
        user, password = self.config.credentials()
        offline = Status(state="offline", agent=self.topics.prefix.rsplit("/", 1)[-1])
        return aiomqtt.Client(
            host,
            port,
            identifier=self._client_id,
            clean_session=False,
            username=user,
            password=password,
            tls_context=self.config.ssl_context(),
            keepalive=self.config.keepalive_s,
            timeout=10,
            will=aiomqtt.Will(self.topics.status, encode(offline), qos=1, retain=True),
        )

    async def _session(self) -> None:
        assert self._stop is not None
        async with self._client() as client:
            await client.subscribe(self.topics.inject, qos=1)
            await client.publish(self.topics.status, encode(self._status()), qos=1, retain=True)
            self._set_connected(True)
            log.info("MQTT connected to %s as %s", self.config.url, self._client_id)
            tasks = {
                asyncio.create_task(self._receive(client)),
                asyncio.create_task(self._send(client)),
                asyncio.create_task(self._status_loop(client)),
                asyncio.create_task(self._stop.wait()),
            }
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if self._stop.is_set():
                await self._farewell(client)

    async def _farewell(self, client: aiomqtt.Client) -> None:
        """On a clean stop: flush the outbox (bounded), then say offline."""
        try:
            await asyncio.wait_for(self._flush(client), timeout=5.0)
        except TimeoutError:
            log.warning("MQTT stop: %d messages not flushed", len(self._outbox))
        offline = self._status().model_copy(update={"state": "offline"})
        await client.publish(self.topics.status, encode(offline), qos=1, retain=True)

    async def _flush(self, client: aiomqtt.Client) -> None:
        while self._outbox:
            item = self._outbox[0]
            await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
            self._outbox.popleft()

    async def _send(self, client: aiomqtt.Client) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._flush(client)

    async def _status_loop(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(self.config.status_interval_s)
            await client.publish(self.topics.status, encode(self._status()), qos=1, retain=True)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if message.topic.matches(self.topics.inject):
                payload = message.payload
                raw = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
                self._answer(raw)

    def _answer(self, payload: bytes | bytearray) -> None:
        """Validate a goal request and reply; nothing in here may take the bridge down."""
        reply: Acceptance | Rejection
        try:
            request = parse_inject_request(payload)
            reply = self._handle_inject(request)
        except RequestError as err:
            reply = Rejection(reason=err.reason, request_id=err.request_id)
        except Exception as err:  # a bug in a handler must not stop goal intake
            log.exception("goal request handler failed")
            reply = Rejection(reason=f"internal error: {type(err).__name__}: {err}")
        topic = self.topics.accepted if isinstance(reply, Acceptance) else self.topics.rejected
        if self._metrics:
            status = "accepted" if isinstance(reply, Acceptance) else "rejected"
            self._metrics.injected_goals.labels(status=status).inc()
        self._enqueue(Outgoing(topic, encode(reply), 1, False))

    # -- helpers -------------------------------------------------------------------------------

    def _set_connected(self, up: bool) -> None:
        if up:
            self.connected.set()
        else:
            self.connected.clear()
        if self._metrics:
            self._metrics.mqtt_connected.set(1 if up else 0)

    async def _sleep(self, seconds: float) -> None:
        assert self._stop is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
