"""One open path for the learner's stats: every key an update reports, to every sink.

An algorithm's ``update`` returns a dict of floats under names it chooses (SAC's
``critic_loss`` and ``entropy``, PPO's ``clip_fraction``, a plug-in's own losses).
:class:`~autotelic.runtime.loop.learner_loop.LearnerLoop` hands each dict to a
:class:`Tracking`, which hands it to each :class:`Sink`, with the learner's update
count as the step. Neither the loop nor the fan-out reads a key's name, so a new
algorithm's stat reaches Prometheus, ``learner_stats.csv`` and TensorBoard without
a change here; only a sink may give some names a meaning of its own (the
Prometheus sink keeps the dashboard's named gauges, ``metrics.PrometheusSink``).

The step is the update count because a checkpoint saves it: a resumed run starts
its sinks at the restored count, so its series continue where the checkpoint
left them rather than at 0.

W&B and MLflow are sinks of ``trackers.py`` (``tracking.wandb``, ``tracking.mlflow``),
each resuming one tracker run by an id kept in the run directory. Writing a sink for
another tracker (a database, a service) is writing a class with ``record(step,
values)`` and ``close()``; ``agent.tracking.add(sink)`` plugs it in, and
``agent.tracking.start_step`` is the step a resumed run starts from (the point to
resume the tracker's own run at). docs/architecture.md, "Learner stats", shows one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from autotelic.runtime.extras import MissingPackageError, pip_command
from autotelic.runtime.telemetry.config import TrackingConfig
from autotelic.runtime.telemetry.run_logs import CsvLog
from autotelic.runtime.telemetry.trackers import MlflowSink, WandbSink

STATS_CSV = "learner_stats.csv"
"""The long-format stats file in the run directory: ``time,step,key,value``."""
STATS_FIELDS = ("time", "step", "key", "value")
TENSORBOARD_DIR = "tensorboard"
"""The run's TensorBoard log directory: one run, however often the service restarts."""
TENSORBOARD = "tensorboard>=2.16,<3"
"""What ``tracking.tensorboard`` writes with (the ``tensorboard`` extra pins the same)."""
TENSORBOARD_FLUSH_S = 10
"""Seconds between flushes of the event file: what a live TensorBoard lags by."""


class Sink(Protocol):
    """Somewhere stats go. ``values`` are floats (NaN and inf included) under the keys
    the reporter chose."""

    def record(self, step: int, values: Mapping[str, float]) -> None:
        """Take the stats of update ``step``."""

    def close(self) -> None:
        """Flush and release; no record follows."""


class Tracking:
    """Fans each record out to its sinks, knowing none of them nor any key."""

    def __init__(self, sinks: Iterable[Sink] = (), *, start_step: int = 0) -> None:
        self.sinks: list[Sink] = list(sinks)
        self.start_step = start_step
        """The update count this process started from (restored from the checkpoint)."""

    def add(self, sink: Sink) -> None:
        """Plug in another sink (e.g. an experiment tracker's); it gets later records."""
        self.sinks.append(sink)

    def record(self, step: int, values: Mapping[str, Any]) -> None:
        """Hand ``values`` (as floats; a value that is not a number is left out) to every
        sink."""
        clean = _numbers(values)
        for sink in self.sinks:
            sink.record(step, clean)

    def close(self) -> None:
        """Close every sink, also when one fails to (its error is raised after)."""
        failure: Exception | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as err:  # the others must still flush
                failure = failure or err
        if failure is not None:
            raise failure


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
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
    for a second record of the same step.
    """

    def __init__(self, sink: Sink, every: int, *, start_step: int = 0) -> None:
        self.sink = sink
        self.every = every
        self._start = start_step // every
        self._marks: dict[str, int] = {}

    def record(self, step: int, values: Mapping[str, float]) -> None:
        mark = step // self.every
        due = {k: v for k, v in values.items() if mark > self._marks.get(k, self._start)}
        if due:
            self._marks.update(dict.fromkeys(due, mark))
            self.sink.record(step, due)

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
    """Scalars in TensorBoard event files under ``log_dir``, one tag per key.

    Every start of the run writes into the same directory, so TensorBoard shows
    one run. Its ``purge_step`` is the first step this start records: events a
    killed predecessor wrote past the checkpoint this start resumed from are hidden
    by TensorBoard, so each step has one value.
    """

    def __init__(self, log_dir: Path, *, start_step: int = 0) -> None:
        writer_class = _summary_writer()
        self.log_dir = log_dir
        self.writer = writer_class(
            log_dir=str(log_dir),
            purge_step=start_step + 1 if start_step > 0 else None,
            flush_secs=TENSORBOARD_FLUSH_S,
        )

    def record(self, step: int, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, global_step=step)

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


def open_tracking(
    config: TrackingConfig,
    run_dir: Path,
    *,
    start_step: int,
    live: Sink | None = None,
) -> Tracking:
    """The sinks ``config`` asks for, in ``run_dir``, resuming at ``start_step``, after
    ``live`` (e.g. the service's Prometheus metrics), which gets every record."""
    sinks: list[Sink] = [live] if live is not None else []
    files = _open_files(config, run_dir, start_step)
    sinks.extend(Every(f, config.every_updates, start_step=start_step) for f in files)
    return Tracking(sinks, start_step=start_step)


def _open_files(config: TrackingConfig, run_dir: Path, start_step: int) -> list[Sink]:
    """The file and tracker sinks ``config`` enables, those needing an optional package
    first; when one fails to open (a package is missing), those already open are closed
    before the error is raised, so a run that stops leaves no tracker run open."""
    openers: list[Callable[[], Sink]] = []
    if config.tensorboard:
        openers.append(lambda: TensorBoardSink(run_dir / TENSORBOARD_DIR, start_step=start_step))
    if config.wandb:
        project, mode = config.wandb_project, config.wandb_mode
        openers.append(
            lambda: WandbSink(run_dir, project=project, mode=mode, start_step=start_step)
        )
    if config.mlflow:
        experiment, uri = config.mlflow_experiment, config.mlflow_tracking_uri
        openers.append(lambda: MlflowSink(run_dir, experiment=experiment, tracking_uri=uri))
    if config.csv:
        openers.append(lambda: CsvSink(run_dir / STATS_CSV))
    files: list[Sink] = []
    try:
        for open_sink in openers:
            files.append(open_sink())
    except BaseException:
        with contextlib.suppress(Exception):  # the error that stopped the opening is raised
            Tracking(files).close()
        raise
    return files
