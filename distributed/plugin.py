"""Registers the Ray backend (``run.backend: ray``) with autotelic's registry.

A built-in plug-in: importing it registers the name only, so a configuration naming
``ray`` validates without Ray installed or imported; Ray and the actors are imported
when a Ray run builds its agent. The runtime finds this backend through the registry
and never imports this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotelic.core import register_backend

if TYPE_CHECKING:
    from autotelic.runtime.config import Settings
    from autotelic.runtime.loop.agent import Agent
    from autotelic.runtime.telemetry.metrics import Metrics


def build_ray(settings: Settings, metrics: Metrics | None) -> Agent:
    """The agent whose collectors and goal daemon are Ray actors (docs/scale.md)."""
    from autotelic.distributed.backend import RayAgent

    return RayAgent(settings, metrics)


register_backend(
    "ray",
    build=build_ray,
    description="collector actors on a Ray cluster, the goal daemon as a named actor, "
    "the learner and the episode store in this process (the `ray` section)",
    modes=("concurrent",),
)
