"""The local backend: the whole agent in this process, registered like any other.

``run.backend`` names a registered backend (:func:`autotelic.core.register_backend`);
the service builds its agent through the registry and names none itself, so a backend
such as Ray (:mod:`autotelic.distributed.plugin`) plugs in without the runtime
importing it. This module is a built-in plug-in: it only registers, and the agent (and
torch with it) is imported when an agent is built, not when a configuration is checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotelic.core import register_backend

if TYPE_CHECKING:
    from autotelic.runtime.config import Settings
    from autotelic.runtime.loop.agent import Agent
    from autotelic.runtime.telemetry.events import RunEvents


def build_local(settings: Settings, events: RunEvents | None) -> Agent:
    """The agent with its collector and learner threads in this process."""
    from autotelic.runtime.loop.agent import Agent

    return Agent(settings, events)


register_backend(
    "local",
    build=build_local,
    description="everything in this process: collector and learner threads (or one "
    "serial loop), the goal daemon, the episode store",
)
