"""The MQTT bridge: goal requests in, replies, results, episodes and status out.

The bridge never stops the service. When the broker goes away it reconnects
with capped exponential backoff and jitter; messages for the broker wait in a
bounded outbox meanwhile and are removed only once the broker acknowledged them
(QoS 1). A message published with ``on_ack`` (an injection result the daemon
keeps durably) is never dropped from the outbox, and ``on_ack`` runs, in a worker
thread, once the broker acknowledged it: that is when it leaves the durable outbox,
so results are delivered at least once, also across a crash. The session is persistent
(fixed client id, clean session off), so goal requests published while the
bridge was disconnected are queued by the broker and arrive on reconnect. The
retained status is ``online`` while connected and the broker publishes the
``offline`` last will if the process dies; a clean stop publishes ``offline``
itself before disconnecting.

The bridge is an adapter: it calls the agent's plain ``inject`` and ``status``
(:mod:`autotelic.runtime.loop.control`) and maps their answers to and from the payloads of
:mod:`autotelic.runtime.transport.messages`, so the agent knows no MQTT.

Connection failures are explained once per cause, in one log line that names the
``mqtt.*`` setting to check (:func:`diagnose`): a TLS certificate the CA file does
not vouch for, credentials the broker refuses, nothing listening at the URL... The
same failure at the next retries is logged at debug level only. A TLS file that is
missing or unreadable is a configuration error when the bridge is made.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiomqtt
import paho.mqtt.client as mqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel

from autotelic.runtime.loop.control import Accepted, AgentStatus, InjectionRejected
from autotelic.runtime.telemetry.events import RunEvents
from autotelic.runtime.transport.messages import (
    Acceptance,
    Rejection,
    RequestError,
    Status,
    Topics,
    acceptance,
    parse_inject_request,
    status_message,
)
from autotelic.runtime.transport.mqtt_config import MQTTConfig

log = logging.getLogger(__name__)


class Injector(Protocol):
    """What queues a requested goal: the agent's ``inject`` (raises
    :class:`~autotelic.goals.InjectionRejected` with the reason to refuse it)."""

    def __call__(
        self, goal: str, episodes: int = 1, *, priority: int = 0, ttl_s: float | None = None
    ) -> Accepted: ...


StatusSource = Callable[[], AgentStatus]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message waiting for the broker."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    on_ack: Callable[[], object] | None = None
    """Called once the broker acknowledged the message (QoS 1 PUBACK)."""


def encode(message: BaseModel | dict[str, object] | str) -> bytes:
    if isinstance(message, BaseModel):
        return message.model_dump_json().encode()
    if isinstance(message, str):
        return message.encode()
    return json.dumps(message).encode()


# -- explaining connection failures ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Why a connection failed, as one log line naming the setting to check."""

    message: str
    level: int = logging.WARNING


_RETRYING = "retrying with back-off, training continues"
_SSL_REASON = re.compile(r"\[SSL(?:: [A-Z0-9_]+)?\]\s*(.*?)\s*(?:\(_ssl\.c:\d+\))?$")
_CREDENTIALS = {4, 5, 134, 135}  # MQTT 3.1.1 and 5 codes for bad credentials / not authorised
_CLIENT_CERT = (
    "certificate required",
    "peer did not return a certificate",
    "alert bad certificate",
    "alert unknown ca",
    "alert certificate unknown",
    "alert certificate expired",
    "alert certificate revoked",
    "alert unsupported certificate",
)


def _connack(rc: int | ReasonCode) -> tuple[int, str]:
    """The code and words of a refused CONNACK (MQTT 3.1.1 code or MQTT 5 reason code)."""
    if isinstance(rc, ReasonCode):
        return rc.value, str(rc).lower()
    return rc, mqtt.connack_string(rc).lower().removeprefix("connection refused: ").rstrip(".")


def _ssl_reason(text: str) -> str:
    """``[SSL: X] words (_ssl.c:123)`` -> ``words``."""
    found = _SSL_REASON.search(text)
    return found.group(1) if found and found.group(1) else text


def diagnose(err: BaseException, config: MQTTConfig, socket_error: str | None = None) -> Diagnosis:
    """Turn what aiomqtt raised into one line that names the cause and the setting to fix.

    ``socket_error`` is the last error paho logged for this attempt: with TLS 1.3 a
    broker that rejects the client certificate says so only after the handshake, and
    the connection attempt then ends in a timeout that alone explains nothing.
    """
    host, port, tls = config.endpoint()
    where = f"{host}:{port}"
    text = str(err)
    low = text.lower()
    if isinstance(err, MqttConnectError) and err.rc is not None:
        code, said = _connack(err.rc)
        if code in _CREDENTIALS:
            user, _password = config.credentials()
            if user is None:
                return Diagnosis(
                    f"MQTT: the broker at {where} wants a user name and password ({said}): "
                    f"set mqtt.username and mqtt.password; {_RETRYING}",
                    logging.ERROR,
                )
            return Diagnosis(
                f"MQTT: the broker refused the credentials of user {user!r} ({said}): "
                f"check mqtt.username and mqtt.password; {_RETRYING}",
                logging.ERROR,
            )
        return Diagnosis(
            f"MQTT: the broker at {where} refused the connection ({said}): check the "
            f"broker's log and mqtt.url; {_RETRYING}",
            logging.ERROR,
        )
    if socket_error and ("timed out" in low or not text):
        return diagnose(aiomqtt.MqttError(socket_error), config)
    if "certificate verify failed" in low:
        reason = _ssl_reason(text)
        if "mismatch" in low:
            return Diagnosis(
                f"MQTT: TLS handshake failed ({reason}): the broker's certificate is not "
                f"for {host!r}; check the host in mqtt.url; {_RETRYING}",
                logging.ERROR,
            )
        if "expired" in low or "not yet valid" in low:
            return Diagnosis(
                f"MQTT: TLS handshake failed ({reason}): the broker's certificate is out "
                f"of date; renew it (mqtt.tls_ca_file must hold its CA); {_RETRYING}",
                logging.ERROR,
            )
        setting = "check mqtt.tls_ca_file" if config.tls_ca_file else "set mqtt.tls_ca_file"
        return Diagnosis(
            f"MQTT: TLS handshake failed ({reason}): {setting} (the CA that signed the "
            f"broker's certificate); {_RETRYING}",
            logging.ERROR,
        )
    if any(words in low for words in _CLIENT_CERT):
        return Diagnosis(
            f"MQTT: the broker rejected the TLS client certificate ({_ssl_reason(text)}): "
            f"check mqtt.tls_cert_file and mqtt.tls_key_file; {_RETRYING}",
            logging.ERROR,
        )
    if "[ssl" in low or "ssl:" in low or "_ssl.c" in low:
        return Diagnosis(
            f"MQTT: TLS handshake failed ({_ssl_reason(text)}): check that mqtt.url is "
            f"mqtts:// on the broker's TLS port, and the mqtt.tls_* files; {_RETRYING}",
            logging.ERROR,
        )
    if "connection refused" in low:
        return Diagnosis(
            f"MQTT: nothing accepts connections at {where} (connection refused): check "
            f"mqtt.url and that the broker runs; {_RETRYING}"
        )
    if "name or service not known" in low or "name resolution" in low or "nodename" in low:
        return Diagnosis(
            f"MQTT: cannot resolve the broker's host {host!r} ({text}): check mqtt.url; {_RETRYING}"
        )
    if "unreachable" in low or "no route to host" in low:
        return Diagnosis(
            f"MQTT: cannot reach {where} ({text}): check mqtt.url and the network; {_RETRYING}"
        )
    if "timed out" in low:
        speaks = "TLS (mqtts://)" if tls else "plain MQTT (mqtt://)"
        return Diagnosis(
            f"MQTT: no answer from the broker at {where} (timed out): check that mqtt.url "
            f"names a port that speaks {speaks}; {_RETRYING}"
        )
    return Diagnosis(
        f"MQTT: cannot connect to {where} ({text or type(err).__name__}): "
        f"check mqtt.url; {_RETRYING}"
    )


class _ClientLog(logging.Handler):
    """Paho's log for one bridge: socket errors are kept to explain a failed attempt and
    shown at debug level only (the bridge reports them once, classified); the rest is
    passed on to this module's logger at its own level."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.socket_error: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "on socket" in message:
            self.socket_error = message.split(": ", 1)[-1]
            log.debug("paho: %s", message)
        else:
            log.log(record.levelno, "paho: %s", message)


async def cancel_all(tasks: set[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended.

    One ``cancel()`` is not always enough: on Python 3.11 ``asyncio.wait_for`` (inside
    aiomqtt's publish) drops a cancellation that arrives as the awaited acknowledgement
    completes, and the task carries on, e.g. back to waiting for the next outgoing
    message, forever. So a task still running a second later is cancelled again.
    """
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)


class MQTTBridge:
    """Connects the service to a broker and keeps it connected."""

    def __init__(
        self,
        config: MQTTConfig,
        topics: Topics,
        inject: Injector,
        status: StatusSource,
        client_id: str,
        events: RunEvents | None = None,
    ) -> None:
        self.config = config
        self.topics = topics
        self._inject = inject
        self._status = status
        self._client_id = client_id
        self._events = events or RunEvents()
        """Where the bridge reports its connection, drops and goal requests."""
        self._outbox: collections.deque[Outgoing] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self.connected = asyncio.Event()
        self.dropped = 0
        # A bad mqtt.tls_* setting raises TLSSettingError, a user error naming the setting.
        self._tls_context = config.ssl_context() if config.url else None
        self._client_log = _ClientLog()
        # Not in the logging tree: paho's records reach only the handler above.
        self._paho_logger = logging.Logger(f"{__name__}.paho", logging.INFO)
        self._paho_logger.addHandler(self._client_log)
        self._reported: str | None = None  # the failure last logged, until a success
        self._session_up = False
        self._refusal_logged = False

    # -- publishing (any thread) ---------------------------------------------------------------

    def publish(
        self,
        topic: str,
        message: BaseModel | dict[str, object] | str,
        qos: int = 1,
        retain: bool = False,
        on_ack: Callable[[], object] | None = None,
    ) -> None:
        """Queue a message for the broker; safe to call from any thread.

        ``on_ack`` marks a message kept durably elsewhere: it is never dropped, and
        is called (in a worker thread) once the broker acknowledged it; ``qos`` must
        then be 1 or 2.
        """
        if on_ack is not None and qos < 1:
            raise ValueError("a message with on_ack needs qos 1 or 2: QoS 0 is never acknowledged")
        item = Outgoing(topic, encode(message), qos, retain, on_ack)
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
            # The oldest message not kept durably elsewhere; durable ones are never dropped.
            oldest = next((i for i, o in enumerate(self._outbox) if o.on_ack is None), None)
            if oldest is not None:
                del self._outbox[oldest]
                self.dropped += 1
                self._events.mqtt_dropped()
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
            self._client_log.socket_error = None
            self._session_up = False
            try:
                await self._session()
                backoff = self.config.reconnect_min_s
            except (aiomqtt.MqttError, OSError) as err:
                self._report(err)
            self._set_connected(False)
            if self._stop.is_set():
                break
            self._events.mqtt_reconnecting()
            delay = backoff * random.uniform(0.8, 1.2)
            log.debug("MQTT: reconnecting in %.1fs", delay)
            await self._sleep(delay)
            backoff = min(backoff * 2, self.config.reconnect_max_s)

    def stop(self) -> None:
        """Ask :meth:`run` to flush (bounded), publish ``offline``, disconnect and return."""
        if self._stop is not None:
            self._stop.set()

    def _report(self, err: BaseException) -> None:
        """Log why the connection failed or ended: once per cause, until it works again."""
        if self._session_up:
            self._reported = None
            log.warning(
                "MQTT: the connection to the broker was lost (%s); reconnecting with back-off, "
                "training continues",
                err,
            )
            return
        diagnosis = diagnose(err, self.config, self._client_log.socket_error)
        if diagnosis.message == self._reported:
            log.debug("%s (again)", diagnosis.message)
            return
        self._reported = diagnosis.message
        log.log(diagnosis.level, "%s", diagnosis.message)

    def _check_granted(self, granted: Sequence[int | ReasonCode]) -> None:
        """A broker's ACL may refuse the goal topic without closing the connection: say so
        (once, until a later connection is granted it)."""
        codes = [c.value if isinstance(c, ReasonCode) else int(c) for c in granted]
        if not any(code >= 0x80 for code in codes):
            self._refusal_logged = False
            return
        if not self._refusal_logged:
            self._refusal_logged = True
            user = self.config.credentials()[0]
            log.error(
                "MQTT: the broker does not let user %r subscribe to %s (not authorised), so "
                "no goal can be injected: check the broker's ACL for mqtt.username (it needs "
                "readwrite on %s/#)",
                user,
                self.topics.inject,
                self.topics.prefix,
            )

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
            tls_context=self._tls_context,
            keepalive=self.config.keepalive_s,
            timeout=10,
            logger=self._paho_logger,
            will=aiomqtt.Will(self.topics.status, encode(offline), qos=1, retain=True),
        )

    async def _session(self) -> None:
        assert self._stop is not None
        async with self._client() as client:
            granted = await client.subscribe(self.topics.inject, qos=1)
            self._check_granted(granted)
            await client.publish(self.topics.status, encode(self._status_now()), qos=1, retain=True)
            self._set_connected(True)
            self._session_up = True
            self._reported = None
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
                await cancel_all(tasks)
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
        offline = self._status_now("offline")
        await client.publish(self.topics.status, encode(offline), qos=1, retain=True)

    async def _flush(self, client: aiomqtt.Client) -> None:
        acked = False
        while self._outbox:
            item = self._outbox[0]
            # With QoS >= 1 this returns once the broker acknowledged the message.
            await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
            if self._outbox and self._outbox[0] is item:
                self._outbox.popleft()
            else:  # moved while we waited (a drop when full): remove this very item
                with contextlib.suppress(ValueError):
                    self._outbox.remove(item)
            if item.on_ack is not None:
                acked = True
                try:
                    await asyncio.to_thread(item.on_ack)
                except Exception:
                    log.exception("MQTT: acknowledging a delivered message failed")
        if acked:  # the retained status tells how many results are still owed
            await client.publish(self.topics.status, encode(self._status_now()), qos=1, retain=True)

    async def _send(self, client: aiomqtt.Client) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._flush(client)

    async def _status_loop(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(self.config.status_interval_s)
            await client.publish(self.topics.status, encode(self._status_now()), qos=1, retain=True)

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
            reply = self._reply(payload)
        except RequestError as err:
            reply = Rejection(reason=err.reason, request_id=err.request_id)
        except Exception as err:  # a bug in a handler must not stop goal intake
            log.exception("goal request handler failed")
            reply = Rejection(reason=f"internal error: {type(err).__name__}: {err}")
        topic = self.topics.accepted if isinstance(reply, Acceptance) else self.topics.rejected
        self._events.injection_requested(
            "accepted" if isinstance(reply, Acceptance) else "rejected"
        )
        self._enqueue(Outgoing(topic, encode(reply), 1, False))

    def _reply(self, payload: bytes | bytearray) -> Acceptance | Rejection:
        """The agent's answer to one request, as the payload that says it."""
        request = parse_inject_request(payload)
        try:
            accepted = self._inject(
                request.goal, request.episodes, priority=request.priority, ttl_s=request.ttl_s
            )
        except InjectionRejected as err:
            return Rejection(reason=str(err), request_id=request.request_id)
        return acceptance(accepted, request.request_id)

    def _status_now(self, state: Literal["online", "offline"] = "online") -> Status:
        return status_message(self._status(), state)

    # -- helpers -------------------------------------------------------------------------------

    def _set_connected(self, up: bool) -> None:
        if up:
            self.connected.set()
        else:
            self.connected.clear()
        self._events.mqtt_connected(up)

    async def _sleep(self, seconds: float) -> None:
        assert self._stop is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
