"""An MQTT broker inside the service, for machines where none is configured.

It listens on loopback only and allows anonymous clients: it exists so that a
laptop run needs nothing installed. Real deployments point ``mqtt.url`` at
Mosquitto (see ops/mosquitto.conf).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedBroker:
    """An amqtt broker bound to ``host:port`` (port 0 picks a free one)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        from amqtt.broker import Broker  # only services that embed a broker need amqtt

        self._broker = Broker(config)
        self._running = False

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        # amqtt logs every connection at INFO; keep the service's log readable.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        await self._broker.start()
        self._running = True
        log.info("embedded MQTT broker listening on %s", self.url)

    async def stop(self) -> None:
        if self._running:
            self._running = False
            await self._broker.shutdown()
