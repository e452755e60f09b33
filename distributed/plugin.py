"""Registers the Ray backend (``run.backend: ray``) with autotelic's registry.

A built-in plug-in: importing it registers the name only, so a configuration naming
``ray`` validates without Ray installed or imported; Ray and the actors are imported
when a Ray run asks for its parts (:class:`~autotelic.distributed.backend.RayParts`).
The runtime finds this backend through the registry and never imports this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotelic.core import register_backend

if TYPE_CHECKING:
    from autotelic.distributed.backend import RayParts
    from autotelic.runtime.config import Settings


def process_environment(settings: Settings) -> dict[str, str]:
    """The bind shim's variables for the service process, whose listeners (the driver's,
    and a private cluster's, started from it) then bind the node's address only."""
    from autotelic.distributed import bind_shim

    if not settings.ray.bind_own_address or not bind_shim.supported():
        return {}
    address = settings.ray.node_ip_address or _node_address()
    return bind_shim.environment(address)


def _node_address() -> str:
    """The address Ray will give this node when none is configured."""
    import ray.util

    return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]


def ray_parts(settings: Settings) -> RayParts:
    """Collector actors and the goal daemon as a named actor (docs/scale.md); connects to
    (or starts) the cluster the ``ray`` section names."""
    from autotelic.distributed.backend import RayParts

    return RayParts(settings)


register_backend(
    "ray",
    parts=ray_parts,
    description="collector actors on a Ray cluster, the goal daemon as a named actor, "
    "the learner and the episode store in this process (the `ray` section)",
    modes=("concurrent",),
    process_environment=process_environment,
)
