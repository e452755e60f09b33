"""Shared pytest configuration."""

from __future__ import annotations

import os

# Never reach for a model hub: every model the tests use is local or built from a config.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = ["tests.runtime_fixtures"]


def plain(value: object) -> object:
    """``value`` with NumPy arrays (e.g. ``info["action_mask"]``) as lists, so results and
    infos compare with ``==``."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    return value
