"""The local backend: the whole run in this process, registered like any other.

``run.backend`` names a registered backend (:func:`autotelic.core.register_backend`)
by the parts it supplies to a run (:class:`~autotelic.runtime.loop.parts.RunParts`);
the agent asks the registry for them and names no backend itself, so a backend such as
Ray (:mod:`autotelic.distributed.plugin`) plugs in without the runtime importing it.
This module is a built-in plug-in: it only registers, and the parts (and torch with
them) are imported when a run is built, not when a configuration is checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotelic.core import register_backend

if TYPE_CHECKING:
    from autotelic.runtime.loop.config import RunSettings
    from autotelic.runtime.loop.local import LocalParts


def local_parts(settings: RunSettings) -> LocalParts:
    """The goal daemon, the collector and the driver, all in this process."""
    from autotelic.runtime.loop.local import LocalParts

    return LocalParts(settings)


register_backend(
    "local",
    parts=local_parts,
    description="everything in this process: collector and learner threads (or one "
    "serial loop), the goal daemon, the episode store",
)
