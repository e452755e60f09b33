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
rather than at 0.

This module holds the plain :class:`Sink` shape (``record(step, values)`` and
``close()``) and the file sinks; ``trackers.py`` holds W&B and MLflow; ``sinks.py``
registers them all by name (the ``tracking:`` section chooses them). Writing a sink for
another tracker is writing a class with ``record`` and ``close`` and registering it, or
adding it from Python with ``agent.events.add(sink)``. docs/architecture.md, "Telemetry",
shows one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

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
