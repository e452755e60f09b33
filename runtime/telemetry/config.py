"""The telemetry sections: ``metrics:`` (the Prometheus endpoint) and ``tracking:`` (the
stats sinks). They live beside the code they configure; the root configuration
(``runtime/config.py``) composes them, and telemetry never imports it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MetricsConfig(BaseModel):
    """The Prometheus endpoint."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Serve /metrics.")
    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0 for containers).")
    port: int = Field(9477, ge=0, le=65535, description="Port to listen on (0 picks a free one).")


class TrackingConfig(BaseModel):
    """Where the learner's stats go besides Prometheus (runtime/telemetry/tracking.py).

    Every key an algorithm's update returns reaches every sink enabled here, under
    the algorithm's own name for it; the step is the learner's update count, which
    a checkpoint saves, so a resumed run continues the same series.
    """

    model_config = ConfigDict(extra="forbid")

    console: bool = Field(
        True,
        description="Print the progress line (steps/s, episodes, success, updates) on the "
        "console at each service.progress_interval_s (a service's; a headless run has none).",
    )
    csv: bool = Field(
        True,
        description="Append every stat to <run>/learner_stats.csv, one row per "
        "(step, key, value): any key an algorithm reports, without a fixed header.",
    )
    tensorboard: bool = Field(
        False,
        description="Write TensorBoard event files under <run>/tensorboard; a restart "
        "continues the same run there (needs the tensorboard extra).",
    )
    wandb: bool = Field(
        False,
        description="Log every stat to one W&B run whose id is kept in <run>/wandb_run_id, "
        "so a restart resumes it (needs the wandb extra).",
    )
    wandb_project: str = Field("autotelic", description="The W&B project of the run.")
    wandb_mode: Literal["offline", "online", "disabled"] = Field(
        "offline",
        description="offline: files under <run>/wandb, uploaded later with wandb sync; "
        "online: streamed to the W&B server; disabled: nothing written.",
    )
    mlflow: bool = Field(
        False,
        description="Log every finite stat to one MLflow run whose id is kept in "
        "<run>/mlflow_run_id, so a restart resumes it (needs the mlflow extra).",
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        description="The MLflow store to log to; null: a file store in <run>/mlruns.",
    )
    mlflow_experiment: str = Field("autotelic", description="The MLflow experiment of the run.")
    sinks: list[str] = Field(
        default_factory=list,
        description="More sinks of the run's events by registered name (a plug-in's, "
        "registered with autotelic.runtime.telemetry.sinks.register_sink).",
    )
    every_updates: int = Field(
        1,
        ge=1,
        description="The file and tracker sinks (csv, tensorboard, wandb, mlflow) record "
        "the updates whose count crosses a multiple of this; Prometheus shows the latest.",
    )
