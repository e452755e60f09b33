"""What the MQTT bridge publishes of a run, subscribed through its control interface.

:func:`relay_run` is the whole subscription: the injection results the goal daemon
still owes (from before a restart) are published first, then every stored episode
(QoS 0), every injection report (kept in the daemon's durable outbox until the broker
acknowledged it: at least once, also across a crash) and every finished evaluation
(retained, so a dashboard that subscribes later still sees the latest). It asks
nothing of the run but :class:`~autotelic.runtime.loop.control.Control`, whatever the
backend that runs it.
"""

from __future__ import annotations

import logging
from typing import Any

from autotelic.runtime.loop.control import Control, FinishedEpisode
from autotelic.runtime.transport.messages import Topics, evaluation_message
from autotelic.runtime.transport.mqtt import MQTTBridge

log = logging.getLogger(__name__)


def relay_run(bridge: MQTTBridge, topics: Topics, control: Control) -> None:
    """Subscribe ``bridge`` to what ``control``'s run does (see the module docstring); call
    before the run's workers start, so no owed result is published twice."""

    def publish_result(data: dict[str, Any]) -> None:
        message_id = str(data["message_id"])
        bridge.publish(topics.results, data, on_ack=lambda: control.acknowledge(message_id))

    owed = control.owed_results()
    if owed:
        log.info("MQTT: %d injection results owed from before the restart", len(owed))
    for data in owed:
        publish_result(data)
    control.subscribe(
        reports=lambda report: publish_result(report.to_dict()),
        episodes=lambda done: bridge.publish(topics.episodes, episode_message(done), qos=0),
        evaluations=lambda report: bridge.publish(
            topics.evaluations, evaluation_message(report), retain=True
        ),
    )


def episode_message(done: FinishedEpisode) -> dict[str, Any]:
    """A stored episode as its payload on the episodes topic."""
    return {
        "episode_id": done.episode_id,
        "goal": done.goal,
        "category": done.category,
        "source": done.source,
        "injection_id": done.injection_id,
        "success": done.success,
        "steps": done.steps,
        "policy_version": done.policy_version,
    }
