"""Text environments with gymnasium APIs, registered under the ``autotelic/`` namespace."""

from __future__ import annotations

import gymnasium as gym

from autotelic.envs.playground import ENV_ID

_ENTRY_POINTS = {ENV_ID: "autotelic.envs.playground.env:PlaygroundTextEnv"}


def register_envs() -> None:
    """Register every autotelic env with gymnasium (idempotent)."""
    for env_id, entry_point in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, disable_env_checker=True)


def registered_env_ids() -> list[str]:
    """The gymnasium ids autotelic provides."""
    return list(_ENTRY_POINTS)


register_envs()
