"""The learner's stats and the sinks that write them: every key an update reports.

An algorithm's ``update`` returns a dict of floats under names it chooses (SAC's
``critic_loss`` and ``entropy``, PPO's ``clip_fraction``, a plug-in's own losses).
:class:`~autotelic.runtime.loop.learner_loop.LearnerLoop` reports each dict as the
``learner_stats`` event of the run's one event stream
(:class:`~autotelic.runtime.telemetry.events.EventStream`), with the learner's update
count as the step; the stream hands it to every sink, with the run's other events.
Neither reads a key's name, so a new algorithm's stat reaches Prometheus,
``learner_stats.csv``, TensorBoard, W&B and MLflow without a change here; only a sink may
give some names a meaning of its own (Prometheus keeps the dashboard's named gauges).

The step is the update count because a checkpoint saves it: a resumed run starts its
sinks at the restored count, so its series continue where the checkpoint left them
rather than at 0. Each record also carries the env-step count its figures belong to
(:data:`ENV_STEPS`, or :data:`EVAL_ENV_STEPS` for an evaluation's), and the trackers
draw on that: TensorBoard and MLflow take it as their step and W&B as the x axis of
every key, with the update count as a series of its own (:data:`UPDATES`), so a
tracker's figures line up with ``autotelic plot``'s and with runs of other
update-to-data ratios. Each tracker also gets the run's full configuration as
hyperparameters (:func:`flat_hyperparameters`).

This module holds the plain :class:`Sink` shape (``record(step, values)`` and
``close()``) and the file sinks; ``trackers.py`` holds W&B and MLflow; ``sinks.py``
registers them all by name (the ``tracking:`` section chooses them). Writing a sink for
another tracker is writing a class with ``record`` and ``close`` and registering it, or
adding it from Python with ``agent.events.add(sink)``. docs/architecture.md, "Telemetry",
shows one.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml

from autotelic.runtime.extras import MissingPackageError, pip_command
from autotelic.runtime.telemetry.run_logs import CsvLog

STATS_CSV = "learner_stats.csv"
"""The long-format stats file in the run directory: ``time,step,key,value``."""
STATS_FIELDS = ("time", "step", "key", "value")
TENSORBOARD_DIR = "tensorboard"
"""The run's TensorBoard log directory: one run, however often the service restarts."""
TENSORBOARD = "tensorboard>=2.16,<3"
"""What ``tracking.tensorboard`` writes with (the ``tensorboard`` extra pins the same)."""
TENSORBOARD_FLUSH_S = 10
"""Seconds between flushes of the event file: what a live TensorBoard lags by."""


ENV_STEPS = "env_steps"
"""The key under which a record carries the training env steps taken when its figures
were read (the learner's stats, the readings): the trackers' x axis."""
EVAL_ENV_STEPS = "eval/env_steps"
"""The key under which an evaluation's record carries the env steps of the policy it
evaluated (the evaluation began then; it may finish thousands of steps later)."""
UPDATES = "updates"
"""The learner's update count as a tracker series of its own, beside the env-step axis."""
AXIS_KEYS = (ENV_STEPS, EVAL_ENV_STEPS)
"""Keys that place a record rather than measure something: passed with every record."""
HEADLINE_METRICS = ("eval/train/greedy/success", "eval/test/greedy/success")
"""The evaluation means TensorBoard's hyperparameter table shows beside each run."""

Hyperparameter = str | int | float | bool


def flat_hyperparameters(config: Mapping[str, Any], prefix: str = "") -> dict[str, Hyperparameter]:
    """The run's configuration (nested sections, as ``config.yaml`` holds it) as one level
    of dotted keys, ``algorithm.batch_size`` and so on, each a string, number or bool:
    what TensorBoard's hyperparameters and MLflow's params take. A list or null becomes
    its JSON text (``["Grasp door", ...]``, ``null``), so no value is lost or guessed."""
    out: dict[str, Hyperparameter] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_hyperparameters(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str)
    return out


def on_env_steps(step: int, values: Mapping[str, float]) -> tuple[int, dict[str, float]]:
    """Where a tracker draws a record, and what: ``(x, series)``. ``x`` is the env-step
    count the record carries (an evaluation's own, else the one read with the stats);
    the series are the record's figures, and for a stats record the update count
    ``step`` as :data:`UPDATES`. A record that carries no env-step count (a caller of the
    sink outside the run's event stream) stays at ``step``."""
    series = {k: v for k, v in values.items() if k not in AXIS_KEYS}
    if EVAL_ENV_STEPS in values:
        return int(values[EVAL_ENV_STEPS]), series
    if ENV_STEPS in values:
        return int(values[ENV_STEPS]), {**series, UPDATES: float(step)}
    return step, series


class Sink(Protocol):
    """Somewhere stats go. ``values`` are floats (NaN and inf included) under the keys
    the reporter chose."""

    def record(self, step: int, values: Mapping[str, float]) -> None:
        """Take the stats of update ``step``."""

    def close(self) -> None:
        """Flush and release; no record follows."""


def numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """``values`` as floats: a learner may return NumPy scalars or ints, and one value
    that is not a number should cost that value, not the record."""
    out: dict[str, float] = {}
    for key, value in values.items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue
    return out


class Every:
    """Passes on each key's values at the steps that cross a multiple of ``every`` (a file
    sink's volume, chosen by the step so that a resumed run keeps the same steps).

    Marked per key: the run's figures (an evaluation's, the curriculum's) are recorded at
    the learner's current step, after its own stats of that step, and must not be taken
    for a second record of the same step. The env-step counts that place a record
    (:data:`AXIS_KEYS`) go with every record passed on: they are not figures to thin.
    """

    def __init__(self, sink: Sink, every: int, *, start_step: int = 0) -> None:
        self.sink = sink
        self.every = every
        self._start = start_step // every
        self._marks: dict[str, int] = {}

    def record(self, step: int, values: Mapping[str, float]) -> None:
        mark = step // self.every
        due = {
            k: v
            for k, v in values.items()
            if k not in AXIS_KEYS and mark > self._marks.get(k, self._start)
        }
        if due:
            self._marks.update(dict.fromkeys(due, mark))
            axis = {k: v for k, v in values.items() if k in AXIS_KEYS}
            self.sink.record(step, {**due, **axis})

    def close(self) -> None:
        self.sink.close()


class CsvSink:
    """Appends ``time,step,key,value`` rows, one per key, to a CSV log.

    Long rather than wide: the header of an append-only log never changes, and a
    key first reported at update 10,000 (or by another algorithm after a restart)
    needs no new column, so the file is never rewritten and stays safe against a
    kill -9 and readable live (run_logs.py). Not fsynced per row: a write is in
    the kernel when it returns, so a killed process loses nothing, and the rows a
    machine crash could cost come after the last checkpoint, which the resumed run
    records again. After a kill, steps past the checkpoint appear twice; the later
    rows are those of the run that went on.
    """

    def __init__(self, path: Path) -> None:
        self.log = CsvLog(path, STATS_FIELDS, durable=False)

    def record(self, step: int, values: Mapping[str, float]) -> None:
        now = round(time.time(), 3)
        self.log.append([{"time": now, "step": step, "key": k, "value": v}
                         for k, v in values.items()])  # fmt: skip

    def close(self) -> None:
        self.log.close()


class TensorBoardSink:
    """Scalars in TensorBoard event files under ``log_dir``, one tag per key, at the env
    steps each record carries (:func:`on_env_steps`), with the update count as the tag
    ``updates``; the run's configuration as TensorBoard hyperparameters (the HParams
    dashboard, one column per dotted key) and as YAML text (the Text dashboard, tag
    ``config``), written at each start, since a restart may change some of it.

    Every start of the run writes into the same directory, so TensorBoard shows
    one run. Its ``purge_step`` is the first env step this start records past: events a
    killed predecessor wrote past the checkpoint this start resumed from
    (``start_env_steps``, the checkpoint's count) are hidden by TensorBoard, so each
    step has one value. The hyperparameters go into the run's own event file rather
    than the subfolder ``SummaryWriter.add_hparams`` makes, which TensorBoard would list
    as a second run.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        start_env_steps: int = 0,
        hyperparameters: Mapping[str, Any] | None = None,
    ) -> None:
        writer_class = _summary_writer()
        self.log_dir = log_dir
        self.writer = writer_class(
            log_dir=str(log_dir),
            purge_step=start_env_steps + 1 if start_env_steps > 0 else None,
            flush_secs=TENSORBOARD_FLUSH_S,
        )
        if hyperparameters:
            self._hyperparameters(hyperparameters, start_env_steps)

    def _hyperparameters(self, config: Mapping[str, Any], step: int) -> None:
        # Untyped in torch: imported as a module of unknown type.
        summaries: Any = importlib.import_module("torch.utils.tensorboard.summary")
        flat = flat_hyperparameters(config)
        for summary in summaries.hparams(flat, dict.fromkeys(HEADLINE_METRICS, 0.0)):
            self.writer.file_writer.add_summary(summary, step)
        text = yaml.safe_dump(dict(config), sort_keys=False)
        # Markdown: indented four spaces, the YAML shows as a code block.
        self.writer.add_text("config", "\n".join(f"    {line}" for line in text.splitlines()),
                             global_step=step)  # fmt: skip

    def record(self, step: int, values: Mapping[str, float]) -> None:
        x, series = on_env_steps(step, values)
        for key, value in series.items():
            self.writer.add_scalar(key, value, global_step=x)

    def close(self) -> None:
        self.writer.close()


def _summary_writer() -> Any:
    """torch's ``SummaryWriter``, imported here: torch and tensorboard load only for a
    run that asks for event files, and a missing package is one line naming the
    command that installs it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise MissingPackageError(
            "tracking.tensorboard needs the tensorboard package, which is not installed: "
            f"{pip_command(TENSORBOARD)}"
        ) from None
    return SummaryWriter
