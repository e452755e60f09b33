"""Where a run keeps its files: the one place that names them.

The service writes them, and the CLI, evaluation and experiments read them, so
every reader goes through :class:`RunLayout` and a renamed file cannot leave one
of them looking in the wrong place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class RunLayout:
    """The files of one run directory."""

    STORE = "store"
    CHECKPOINTS = "checkpoints"
    CONFIG = "config.yaml"
    ENDPOINTS = "endpoints.json"
    EVALUATIONS = "evaluations.csv"
    PROGRESS = "progress.csv"
    PLOTS = "plots"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def store(self) -> Path:
        """The LMDB episode store (and the curriculum's durable state)."""
        return self.root / self.STORE

    @property
    def checkpoints(self) -> Path:
        """Learner, curriculum and counters, saved together."""
        return self.root / self.CHECKPOINTS

    @property
    def config(self) -> Path:
        """The effective configuration the run was started with."""
        return self.root / self.CONFIG

    @property
    def endpoints(self) -> Path:
        """Where a running service listens (metrics, MQTT, topics)."""
        return self.root / self.ENDPOINTS

    def read_endpoints(self) -> dict[str, Any]:
        """What the running (or last) service of this run published in :attr:`endpoints`.

        Here, not beside the service, so that the thin commands that read it (``inject``,
        ``status``) load no agent, torch or model."""
        if not self.endpoints.is_file():
            raise FileNotFoundError(
                f"{self.endpoints} not found: has `autotelic run` been started there?"
            )
        data: dict[str, Any] = json.loads(self.endpoints.read_text())
        return data

    @property
    def evaluations(self) -> Path:
        """The periodic evaluations: one row per evaluation, split, way of acting and goal
        category, appended as they finish (see docs/evaluation.md)."""
        return self.root / self.EVALUATIONS

    @property
    def progress(self) -> Path:
        """Counters, losses, throughput and curriculum figures, one row per progress
        interval of the service."""
        return self.root / self.PROGRESS

    @property
    def plots(self) -> Path:
        """Where ``autotelic plot`` writes its PNG files by default."""
        return self.root / self.PLOTS

    def require_run(self) -> None:
        """Raise :class:`FileNotFoundError` unless this looks like a run directory."""
        if not self.config.is_file():
            raise FileNotFoundError(
                f"{self.root} is not a run directory (no {self.CONFIG}): "
                "start one with `autotelic run`"
            )
