"""Joining a Ray cluster, with a clear error when it cannot be reached.

``ray.init`` towards an address where nothing listens retries for minutes without a
word; the service checks first that the head's GCS port accepts a connection and says
what to do otherwise. Ray's token authentication (``RAY_AUTH_MODE=token`` and
``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH`` in the environment) is read by Ray
itself, on the driver as on every node (docs/scale.md).
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

import ray

from autotelic.runtime.config import RayConfig
from autotelic.runtime.service import ServiceError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
"""How long the head's GCS port may take to accept a connection."""


class ClusterUnreachableError(ServiceError):
    """The configured Ray cluster cannot be reached; the message says what to check."""


@dataclass
class Connection:
    """This process's membership of a cluster, left by :meth:`close` when we joined it."""

    address: str
    owned: bool
    """Whether this process called ``ray.init`` (and so calls ``ray.shutdown``)."""

    def close(self) -> None:
        if self.owned and ray.is_initialized():
            ray.shutdown()


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`ClusterUnreachableError` unless ``host:port`` accepts a TCP connection."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ClusterUnreachableError(
            f"ray.address {address!r} is not host:port (the GCS address `ray start --head` "
            "printed, e.g. 10.0.0.1:6379) or 'auto'"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ClusterUnreachableError(
            f"cannot reach the Ray cluster at {address}: {err.strerror or err}. Start its head "
            f"with `ray start --head --port={port} ...` (docs/scale.md), check the address "
            "and firewalls, or leave ray.address unset to start a private cluster"
        ) from None


def connect(config: RayConfig) -> Connection:
    """Join the configured cluster (or start a private one when ``address`` is None)."""
    address = config.address
    if address is not None and address != "auto":
        check_reachable(address)
    if ray.is_initialized():  # e.g. tests or a notebook that joined the cluster already
        return Connection(address=str(ray.get_runtime_context().gcs_address), owned=False)
    try:
        context = ray.init(
            address=address,
            namespace=config.namespace,
            _node_ip_address=config.node_ip_address,
            include_dashboard=False,
            configure_logging=False,
            log_to_driver=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = address or "a new local cluster"
        raise ClusterUnreachableError(f"cannot join the Ray cluster at {where}: {err}") from None
    gcs = str(getattr(context, "address_info", {}).get("gcs_address", address or "local"))
    nodes = ray.nodes()  # type: ignore[no-untyped-call]
    resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
    log.info(
        "joined Ray cluster %s (%d nodes, resources %s)",
        gcs,
        len([n for n in nodes if n.get("Alive")]),
        resources,
    )
    return Connection(address=gcs, owned=True)
