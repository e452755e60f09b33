"""Shared pytest configuration."""

from __future__ import annotations

import os

# Never reach for a model hub: every model the tests use is local or built from a config.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = ["tests.runtime_fixtures"]
