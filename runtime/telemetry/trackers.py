"""Experiment trackers as sinks of the learner's stats: W&B and MLflow.

Each is a :class:`~autotelic.runtime.telemetry.tracking.Sink`: it takes whatever keys
the learner reports and knows none of them. Both keep their files in the run
directory by default (W&B offline, MLflow's file store), so turning one on needs no
account, no server and no network. Both keep the tracker's run id in a small file in
the run directory, written once: a restarted service opens the same tracker run and
goes on at the update count its checkpoint restored, instead of starting a second run.

Both record the run's full configuration as hyperparameters (W&B's run config, MLflow's
params, dotted keys such as ``algorithm.batch_size``), and both draw every figure
against env steps, the update count being a series of its own (``updates``): W&B by
naming the env-step key each figure's x axis (its step stays the update count, which
only moves forward and which a checkpoint saves), MLflow by taking the env steps as the
step of each metric.

The package of each is imported by the constructor, so neither loads unless a run
asks for it, and a missing one is one line naming the command that installs it.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

import yaml

from autotelic.files import fsync_dir
from autotelic.runtime.extras import MissingPackageError, pip_command
from autotelic.runtime.telemetry.tracking import (
    AXIS_KEYS,
    ENV_STEPS,
    EVAL_ENV_STEPS,
    UPDATES,
    flat_hyperparameters,
    on_env_steps,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    from wandb import Run

log = logging.getLogger(__name__)

WANDB = "wandb>=0.19.10,<1"
"""What ``tracking.wandb`` logs with (the ``wandb`` extra pins the same)."""
MLFLOW = "mlflow-skinny>=2.16,<4"
"""What ``tracking.mlflow`` logs with (the ``mlflow`` extra pins the same)."""
WANDB_RUN_ID = "wandb_run_id"
"""The file in the run directory that holds the W&B run id every start resumes."""
MLFLOW_RUN_ID = "mlflow_run_id"
"""The file in the run directory that holds the MLflow run id every start resumes."""
MLFLOW_DIR = "mlruns"
"""MLflow's file store in the run directory, when no tracking URI is configured."""
MLFLOW_BATCH = 1000
"""The most metrics MLflow takes in one ``log_batch`` call."""
ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"
"""MLflow 3's opt-in to its file store, which it keeps in maintenance mode."""
MLFLOW_PARAM_BATCH = 100
"""The most params MLflow takes in one ``log_batch`` call."""
MLFLOW_CONFIG = "config.yaml"
"""The artifact that holds the configuration of the run's latest start, in full."""

WandbMode = Literal["offline", "online", "disabled"]


def kept_run_id(path: Path) -> str | None:
    """The run id a previous start wrote to ``path``, or None when there is none."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def keep_run_id(path: Path, run_id: str) -> None:
    """Write ``run_id`` to ``path`` atomically (a temporary file, fsynced, renamed): a
    crash leaves the previous content or the new id, never a half-written id that the
    next start would open a wrong run with."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    with scratch.open("w") as file:
        file.write(f"{run_id}\n")
        file.flush()
        os.fsync(file.fileno())
    scratch.replace(path)
    fsync_dir(path.parent)


def _missing(option: str, package: str, requirement: str) -> MissingPackageError:
    return MissingPackageError(
        f"tracking.{option} needs the {package} package, which is not installed: "
        f"{pip_command(requirement)}"
    )


class WandbSink:
    """Every key as a W&B metric of one run, ``offline`` by default (files under
    ``<run>/wandb``, uploaded later with ``wandb sync``).

    The run id is made once and kept in ``<run>/wandb_run_id``; each start calls
    ``wandb.init(id=..., resume="allow")``, so W&B sees one run however often the
    service restarts. Offline, each start writes its own ``offline-run-*`` folder under
    that id; ``wandb sync --id <id>`` uploads them in the order they started.

    W&B's history only moves forward: it drops a step lower than the last one it holds.
    So this sink passes on only steps above both ``start_step`` (the update count the
    checkpoint restored, which the previous start already logged) and, on an online
    resume, the step after the last one W&B holds (``run.starting_step``). The steps a
    killed start logged past its checkpoint therefore keep that start's values online:
    unlike TensorBoard, W&B cannot hide them, and skipping here is what W&B would do
    anyway, without a warning per record. Offline the sink cannot know those steps: the
    later start's folder holds them again, and which value W&B keeps is settled when
    ``wandb sync`` uploads the folders.

    Several records may come at one update count (the learner's stats, then the
    readings or an evaluation that finished meanwhile): W&B merges them into that step's
    row, so each is kept. Every key is drawn against env steps: the first time a key
    comes, the sink names its x axis with ``define_metric`` (``env_steps``, or an
    evaluation's ``eval/env_steps``, the env steps of the policy it evaluated), and
    ``updates`` is the update count as a series of its own.

    The run's configuration is W&B's run config (``hyperparameters``, nested by section
    as W&B shows it), given again at each start with ``allow_val_change``: a restart that
    changes a value (``--set run.max_env_steps=...``) records the new one.

    The console is not captured (``console="off"``): the service writes its own logs,
    and W&B's capture would wrap the whole process's output.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        project: str,
        mode: WandbMode = "offline",
        start_step: int = 0,
        hyperparameters: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            import wandb
        except ImportError:
            raise _missing("wandb", "wandb", WANDB) from None
        self.run_id = _wandb_run_id(run_dir / WANDB_RUN_ID)
        self.run: Run = wandb.init(
            mode=mode,
            dir=str(run_dir),
            project=project,
            id=self.run_id,
            name=run_dir.name,
            resume="allow",
            reinit="create_new",  # two agents in one process keep their own runs
            settings=wandb.Settings(console="off"),
            config=dict(hyperparameters or {}),
            allow_val_change=True,
        )
        self._floor = max(start_step + 1, self.run.starting_step)
        """The lowest step W&B takes now: past the checkpoint's, then the last logged."""
        self._axes: dict[str, str] = {}
        for axis in AXIS_KEYS:
            self.run.define_metric(axis, hidden=True)

    def record(self, step: int, values: Mapping[str, float]) -> None:
        """Log ``values`` at ``step`` against their env steps, unless W&B already holds a
        later step (class doc)."""
        if step < self._floor:
            return
        data = dict(values)
        axis = EVAL_ENV_STEPS if EVAL_ENV_STEPS in data else ENV_STEPS
        if axis == ENV_STEPS and ENV_STEPS in data:
            data[UPDATES] = float(step)
        if axis in data:
            for key in data.keys() - self._axes.keys() - set(AXIS_KEYS):
                self.run.define_metric(key, step_metric=axis)
                self._axes[key] = axis
        self.run.log(data, step=step)
        self._floor = step

    def close(self) -> None:
        """Finish the run; the next start resumes it by its kept id."""
        self.run.finish()


def _wandb_run_id(path: Path) -> str:
    """The kept W&B run id, made (16 hex digits: none of the characters W&B forbids in
    an id) and kept on the first start."""
    run_id = kept_run_id(path)
    if run_id is None:
        run_id = secrets.token_hex(8)
        keep_run_id(path, run_id)
    return run_id


class MlflowSink:
    """Every key as an MLflow metric of one run, in a file store under ``<run>/mlruns``
    unless ``tracking_uri`` names another store (a server, a database).

    Written with ``MlflowClient`` rather than ``mlflow.start_run``: the client holds no
    process-wide active run, so two agents in one process do not write into each
    other's runs. The run id is kept in ``<run>/mlflow_run_id``; a restart sets the run
    back to RUNNING and logs on at the restored update count, and ``close`` marks it
    FINISHED. If the kept run is not in the store (another tracking URI), a new run is
    made and its id kept.

    NaN and infinite values are left out: some MLflow stores reject them and others
    store infinity as the largest float, so the MLflow series holds only the finite
    values (learner_stats.csv, TensorBoard and Prometheus keep all). A key MLflow
    rejects (its names are at most 250 characters, of a limited alphabet) is left out,
    with a warning the first time, and the others are logged. MLflow keeps every value
    of a step, so the steps a killed start logged past its checkpoint appear twice, the
    later ones being the run that went on (as in learner_stats.csv).

    MLflow 3 keeps its file store in maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE``
    (MLflow reads it from the environment): the sink sets it to true when it uses a
    file store, unless the operator set it. The file store rather than a SQLite file
    by default: a database store needs sqlalchemy and alembic, and seconds to create
    its schema, where the file store is plain files that open in a moment.

    Each metric's step is the env-step count its record carries (an evaluation's own),
    and the update count is the metric ``updates``; MLflow takes steps in any order.

    The run's configuration becomes MLflow params, one per dotted key
    (``algorithm.batch_size``), and, whole, the artifact ``config.yaml``. MLflow never
    changes a param once logged: a restart logs the keys the run lacks, keeps the first
    value of a key whose value changed (with a warning naming it), and replaces
    ``config.yaml`` with the configuration of that start.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        experiment: str,
        tracking_uri: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            from mlflow import MlflowClient
            from mlflow.entities import Metric, Param
            from mlflow.exceptions import MlflowException
        except ImportError:
            raise _missing("mlflow", "mlflow-skinny", MLFLOW) from None
        self._metric: type[Metric] = Metric
        self._param: type[Param] = Param
        self._error: type[MlflowException] = MlflowException
        self.tracking_uri = tracking_uri or (run_dir / MLFLOW_DIR).resolve().as_uri()
        if urlparse(self.tracking_uri).scheme in ("", "file"):  # a file store (a path or file:)
            os.environ.setdefault(ALLOW_FILE_STORE, "true")
        self.client: MlflowClient = MlflowClient(tracking_uri=self.tracking_uri)
        self.run_id = self._open_run(run_dir, experiment)
        self._rejected: set[str] = set()
        if hyperparameters:
            self._log_hyperparameters(hyperparameters)

    def _open_run(self, run_dir: Path, experiment: str) -> str:
        """The kept run, set RUNNING again, or a new run of ``experiment``, kept."""
        id_file = run_dir / MLFLOW_RUN_ID
        kept = kept_run_id(id_file)
        if kept is not None and self._in_store(kept):
            self.client.update_run(kept, status="RUNNING")
            return kept
        run = self.client.create_run(self._experiment_id(experiment), run_name=run_dir.name)
        run_id = str(run.info.run_id)  # typed Any by MLflow
        keep_run_id(id_file, run_id)
        return run_id

    def _in_store(self, run_id: str) -> bool:
        try:
            run = self.client.get_run(run_id)
        except self._error as err:
            if err.error_code == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise
        return run.info.lifecycle_stage == "active"

    def _experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        return str(self.client.create_experiment(name))

    def _log_hyperparameters(self, config: Mapping[str, Any]) -> None:
        """The params the run lacks, a warning for those whose value changed, and the whole
        configuration as the artifact ``config.yaml`` (class doc)."""
        held: dict[str, str] = dict(self.client.get_run(self.run_id).data.params)
        flat = {key: str(value) for key, value in flat_hyperparameters(config).items()}
        changed = sorted(k for k, v in flat.items() if k in held and held[k] != v)
        if changed:
            log.warning(
                "MLflow keeps a param's first value: %s changed since the run's first start "
                "(the artifact %s holds this start's configuration)",
                ", ".join(changed),
                MLFLOW_CONFIG,
            )
        params = [self._param(k, v) for k, v in flat.items() if k not in held]
        for start in range(0, len(params), MLFLOW_PARAM_BATCH):
            self._log_params(params[start : start + MLFLOW_PARAM_BATCH])
        self.client.log_text(self.run_id, yaml.safe_dump(dict(config), sort_keys=False),
                             MLFLOW_CONFIG)  # fmt: skip

    def _log_params(self, params: list[Param]) -> None:
        """One batch; when MLflow rejects it, each param alone, and a param MLflow refuses
        (a value over its length limit) is left out with a warning."""
        try:
            self.client.log_batch(self.run_id, params=params)
        except self._error as err:
            if err.error_code != "INVALID_PARAMETER_VALUE":
                raise
            for param in params:
                try:
                    self.client.log_batch(self.run_id, params=[param])
                except self._error as alone:
                    if alone.error_code != "INVALID_PARAMETER_VALUE":
                        raise
                    log.warning("MLflow rejects the param %r: %s", param.key, alone)

    def record(self, step: int, values: Mapping[str, float]) -> None:
        """Log the finite ``values`` at the env steps they carry (:func:`on_env_steps`), in
        batches MLflow accepts."""
        x, series = on_env_steps(step, values)
        now = int(time.time() * 1000)
        metrics = [
            self._metric(key, value, now, x)
            for key, value in series.items()
            if math.isfinite(value) and key not in self._rejected
        ]
        for start in range(0, len(metrics), MLFLOW_BATCH):
            self._log(metrics[start : start + MLFLOW_BATCH])

    def _log(self, metrics: list[Metric]) -> None:
        """One batch; when MLflow rejects it as invalid, each metric alone, so that one
        key MLflow refuses costs that key, not the record (nor the learner)."""
        try:
            self.client.log_batch(self.run_id, metrics=metrics)
        except self._error as err:
            if err.error_code != "INVALID_PARAMETER_VALUE":
                raise
            for metric in metrics:
                self._log_alone(metric)

    def _log_alone(self, metric: Metric) -> None:
        try:
            self.client.log_batch(self.run_id, metrics=[metric])
        except self._error as err:
            if err.error_code != "INVALID_PARAMETER_VALUE":
                raise
            self._rejected.add(metric.key)
            log.warning("MLflow rejects the stat %r, which it will not get: %s", metric.key, err)

    def close(self) -> None:
        """Mark the run FINISHED; the next start sets it RUNNING again."""
        self.client.set_terminated(self.run_id)
