"""The agent as a long-lived service: an :class:`~autotelic.runtime.loop.agent.Agent` plus
what a service needs around it.

:func:`serve` adds metrics over HTTP, the MQTT bridge (and an embedded broker
when none is configured), signals, periodic checkpoints and the progress line,
then supervises the agent's worker threads until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from autotelic.core.errors import UserError
from autotelic.runtime.config import Settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.startup import check_startup, removed_on_failure
from autotelic.runtime.telemetry.events import RunEvents
from autotelic.runtime.telemetry.metrics import Metrics, MetricsServer
from autotelic.runtime.telemetry.run_logs import ProgressLog
from autotelic.runtime.transport.messages import Topics
from autotelic.storage import StorageError

if TYPE_CHECKING:
    from autotelic.runtime.transport.broker import EmbeddedBroker
    from autotelic.runtime.transport.mqtt import MQTTBridge

log = logging.getLogger(__name__)


class ServiceError(UserError, RuntimeError):
    """The service cannot start as configured; the message says what to change."""


# -- the service ---------------------------------------------------------------------------


def build_agent(settings: Settings, events: RunEvents | None = None) -> Agent:
    """The run composed of the parts ``run.backend``'s registration supplies (local:
    everything in this process; ray: collectors and goal daemon as actors). The service
    names no backend, so one plugs in by registering, and a local run imports nothing of
    another."""
    return Agent(settings, events)


async def serve(settings: Settings, ready: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Run the agent as a service until SIGTERM/SIGINT (or ``max_env_steps``).

    Returns the exit code: 0 after a clean stop, 1 if a worker failed. The start-up
    checks (:func:`~autotelic.runtime.startup.check_startup`) come first; a start that
    fails on a run directory it created removes that directory again.
    """
    check_startup(settings)
    metrics = Metrics()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = _metrics_server(settings, metrics) if settings.metrics.enabled else None
    try:
        with removed_on_failure(settings.run.dir):
            agent = await loop.run_in_executor(None, build_agent, settings, metrics.events())
    except BaseException:
        if server is not None:
            server.close()
        raise
    broker, bridge, bridge_task = await _start_mqtt(settings, agent)
    endpoints = {
        "agent": settings.run.agent,
        "pid": os.getpid(),
        "metrics": server.url if server else None,
        "mqtt": bridge.config.url if bridge else None,
        "topic_prefix": bridge.topics.prefix if bridge else None,
        "backend": settings.run.backend,
    }
    agent.layout.endpoints.write_text(json.dumps(endpoints, indent=2))
    progress_log = ProgressLog(agent.layout.progress, agent.goal_space.categories())
    threads = agent.start_threads()
    if ready is not None:
        ready(endpoints)
    log.info("autotelic running: %s", json.dumps(endpoints))
    try:
        await _supervise(agent, stop, settings, progress_log)
    finally:
        code = await _shutdown(
            agent, threads, bridge, bridge_task, broker, server, settings, progress_log
        )
    return code


def _metrics_server(settings: Settings, metrics: Metrics) -> MetricsServer:
    """Serve the metrics on ``metrics.port``; when another process holds that port (a
    second run on the same machine), on a free one instead, said in the log and recorded
    in ``endpoints.json``, which is where Prometheus' file discovery and the CLI look."""
    host, port = settings.metrics.host, settings.metrics.port
    try:
        return MetricsServer(metrics, host, port)
    except OSError as err:
        if err.errno != errno.EADDRINUSE or port == 0:
            raise ServiceError(
                f"cannot serve metrics on {host}:{port}: {err.strerror or err}; choose another "
                "metrics.port (AUTOTELIC_METRICS__PORT, 0 picks a free one)"
            ) from None
    server = MetricsServer(metrics, host, 0)
    log.warning(
        "metrics port %s:%d is in use (another run?): serving metrics on %s instead",
        host,
        port,
        server.url,
    )
    return server


async def _start_mqtt(
    settings: Settings, agent: Agent
) -> tuple[EmbeddedBroker | None, MQTTBridge | None, asyncio.Task[None] | None]:
    if not settings.service.mqtt_enabled:
        return None, None, None
    # Imported here: headless runs (experiments, GPU boxes) need no MQTT packages.
    from autotelic.runtime.transport.broker import EmbeddedBroker
    from autotelic.runtime.transport.mqtt import MQTTBridge
    from autotelic.runtime.transport.relay import relay_run

    broker = None
    config = settings.mqtt
    if config.url is None:
        broker = EmbeddedBroker(port=config.embedded_port)
        await broker.start()
        config = config.model_copy(update={"url": broker.url})
    topics = Topics(settings.run.agent, config.topic_root)
    bridge = MQTTBridge(
        config,
        topics,
        agent.inject,
        agent.status,
        client_id=f"autotelic-{settings.run.agent}",
        events=agent.events,  # the bridge reports on the run's event stream
    )
    relay_run(bridge, topics, agent)  # through the control interface, before the workers
    task = asyncio.create_task(bridge.run())
    return broker, bridge, task


async def _supervise(
    agent: Agent, stop: asyncio.Event, settings: Settings, progress_log: ProgressLog
) -> None:
    """Wait for a stop; meanwhile refresh gauges, print progress (and append it to the run's
    progress.csv), checkpoint periodically."""
    loop = asyncio.get_running_loop()
    interval = settings.service.progress_interval_s
    next_progress = time.monotonic() + interval
    next_checkpoint = time.monotonic() + settings.checkpoint.interval_s
    ratio = RatioReport()
    while not stop.is_set() and not agent.stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        agent.refresh_gauges()
        now = time.monotonic()
        if now >= next_progress:
            agent.events.progress(agent.snapshot())  # the console's line, any sink's
            ratio.check(agent)
            try:
                progress_log.record(agent)
            except OSError as err:  # the run's own data goes on; only this row is lost
                log.warning("could not append to %s: %s", agent.layout.progress, err)
            next_progress = now + interval
        if now >= next_checkpoint and not agent.stopping.is_set():
            try:
                await loop.run_in_executor(None, lambda: agent.checkpoint(pause=True))
            except StorageError as err:  # e.g. a full disk: stop as a failed worker would
                log.error("periodic checkpoint failed, stopping: %s", err)
                agent.fail(err)
                return
            next_checkpoint = time.monotonic() + settings.checkpoint.interval_s


class RatioReport:
    """Says in the log how far the update-to-data ratio a user set falls behind.

    In a concurrent run whose learner is slower than collection, the ``skip`` policy
    (``collector.when_learner_behind``, the cpu profile's choice) forgives the updates owed
    beyond ``collector.max_lag_updates``: ``algorithm.update_every`` then becomes a ceiling,
    and a run that looks healthy may learn from a fraction of what was asked. This writes
    the share done and how to keep the ratio, when the skipped count has grown, at most
    once every ``every_s`` seconds."""

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s = every_s
        self.reported_skips = 0
        self.next_report = 0.0

    def check(self, agent: Agent) -> str | None:
        """Log (and return) the line when skips grew and a report is due; else None."""
        throttle = getattr(agent.schedule, "throttle", None)
        skipped = int(getattr(throttle, "skipped", 0))
        now = time.monotonic()
        if throttle is None or skipped <= self.reported_skips or now < self.next_report:
            return None
        self.reported_skips = skipped
        self.next_report = now + self.every_s
        done = int(throttle.updates)
        asked = done + skipped
        # The agent's settings, with the profile applied: what the run asks, not the file.
        update_every = getattr(agent.settings.algorithm, "update_every", None)
        line = (
            "learner behind the update-to-data ratio "
            f"(algorithm.update_every={update_every}): {done:,} updates done of "
            f"{asked:,} asked ({done / asked:.0%}), {skipped:,} skipped under "
            "collector.when_learner_behind: skip; run.mode: serial or "
            "collector.when_learner_behind: wait keeps the ratio (collection then waits)"
        )
        log.warning("%s", line)
        return line


async def _shutdown(
    agent: Agent,
    threads: list[threading.Thread],
    bridge: MQTTBridge | None,
    bridge_task: asyncio.Task[None] | None,
    broker: EmbeddedBroker | None,
    server: MetricsServer | None,
    settings: Settings,
    progress_log: ProgressLog,
) -> int:
    """Finish the step in hand, checkpoint, say offline, close everything."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + settings.service.stop_timeout_s
    agent.stop()
    for t in threads:
        # The learner may be mid-update; its optimizer step waits for the lock we take
        # to checkpoint, so it need not be joined for the checkpoint to be consistent.
        wait = 0.5 if t.name == "learner" else max(0.1, deadline - time.monotonic() - 5)
        await loop.run_in_executor(None, t.join, wait)
    code = 0
    if agent.error is not None:
        log.error("stopping after a worker failed: %r", agent.error)
        code = 1
    elif not busy_before_checkpoint(threads):
        began = time.monotonic()
        try:  # a short run that ended at run.max_env_steps still gets its first point
            await loop.run_in_executor(None, agent.evaluate_if_none)
        except Exception:
            log.exception("the evaluation at the end of the run failed")
        deadline += time.monotonic() - began  # the stop's own time is not spent on it
    try:
        await loop.run_in_executor(None, agent.checkpoint)
    except Exception:
        log.exception("final checkpoint failed")
        code = 1
    # The checkpoint released the lock the learner's optimizer step waits for: it now
    # finishes the update in hand and returns. It must be joined: a daemon thread still in
    # torch when the interpreter exits is stopped mid-native-call, which aborts the
    # process (exit 134, "terminate called without an active exception").
    busy = await loop.run_in_executor(None, _join_all, threads, deadline)
    agent.refresh_gauges()
    try:
        progress_log.record(agent)  # where the run stopped
    except Exception:
        log.exception("could not append the last progress row")
    progress_log.close()
    if bridge is not None and bridge_task is not None:
        bridge.stop()
        try:
            await asyncio.wait_for(bridge_task, timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("MQTT bridge did not stop in time")
            bridge_task.cancel()
    if broker is not None:
        await broker.stop()
    if server is not None:
        server.close()
    if busy:
        log.warning(
            "workers still busy after service.stop_timeout_s=%ss: %s; leaving without them",
            settings.service.stop_timeout_s,
            ", ".join(t.name for t in busy),
        )
        _exit_before_finalizing(code)
    else:
        agent.close()
    return code


def busy_before_checkpoint(threads: list[threading.Thread]) -> bool:
    """Whether a worker other than the learner (which waits for the checkpoint's lock) is
    still running: the collector or evaluator would then race an evaluation run here."""
    return any(t.is_alive() for t in threads if t.name != "learner")


def _join_all(threads: list[threading.Thread], deadline: float) -> list[threading.Thread]:
    """Join every thread until ``deadline``; returns those still running."""
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t for t in threads if t.is_alive()]


def _exit_before_finalizing(code: int) -> None:
    """End the process with ``code`` as soon as the interpreter starts to exit.

    Used when a worker did not stop in time: interpreter finalization would stop its
    thread inside native code and abort the process. The exit handler registered here
    runs before that (handlers run first, newest first): it flushes the logs and the
    standard streams and leaves at once. The store is not closed under the running
    worker; everything it committed is durable already.
    """
    import atexit
    import sys

    def leave() -> None:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)

    atexit.register(leave)
