"""Append-only CSV logs in the run directory, safe against kill -9 and readable live.

The service appends rows (evaluations, progress) with one ``write`` on a file
opened with ``O_APPEND`` and fsyncs it, so a row is on disk when the call
returns: nothing written is lost by a crash. A kill -9 in the middle of a write
can leave at most a cut-off last line; :func:`read_rows` reads only complete
lines with the header's number of fields, and :class:`CsvLog`, opening the
file again on restart, cuts such a tail off before appending. The header is
written once, when the file is created; a file started with other columns
keeps its own (values of columns it lacks are dropped, its other columns are
left empty), so a file never mixes layouts.

Other processes (``autotelic plot``, the tests) may read the files at any
time, without a lock.
"""

from __future__ import annotations

import csv
import errno
import io
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from autotelic.files import fsync_dir
from autotelic.goals import CurriculumStats
from autotelic.runtime.telemetry.progress import Snapshot
from autotelic.storage.errors import StorageFullError

EVAL_FIELDS = (
    "time",
    "evaluation",
    "env_steps",
    "policy_version",
    "updates",
    "env_steps_end",
    "policy_version_end",
    "duration_s",
    "split",
    "acting",
    "category",
    "episodes",
    "successes",
    "success",
    "steps",
)
"""Columns of ``evaluations.csv``: one row per evaluation, split, way of acting and category
(docs/evaluation.md describes each)."""

PROGRESS_FIELDS = (
    "time",
    "env_steps",
    "episodes",
    "successes",
    "updates",
    "policy_version",
    "replay_transitions",
    "env_steps_per_s",
    "updates_per_s",
    "critic_loss",
    "actor_loss",
    "alpha",
    "entropy",
    "policy_lag",
    "eval_env_steps",
)
"""Columns of ``progress.csv`` before the per-category ones (:func:`progress_fields`)."""

CURRICULUM_COLUMNS = ("success_rate", "lp")
"""Per-category columns of ``progress.csv``, named ``<column>:<category>``."""

_TAIL_CHUNK = 1 << 16


def progress_fields(categories: Iterable[str]) -> list[str]:
    """Every column of ``progress.csv`` for an environment with ``categories``."""
    cats = list(categories)
    return [*PROGRESS_FIELDS, *(f"{col}:{c}" for col in CURRICULUM_COLUMNS for c in cats)]


def _format(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""  # NaN, inf: empty
    return str(value)


class CsvLog:
    """Appends rows to one CSV file of the run directory (see the module docstring)."""

    def __init__(self, path: Path, fields: Sequence[str], *, durable: bool = True) -> None:
        if not fields:
            raise ValueError("a CSV log needs at least one column")
        self.path = Path(path)
        self.durable = durable
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            header = self._repair()
            if header is None:
                self.fields = list(fields)
                self._write(self._encode([self.fields]))
            else:
                self.fields = header
            if created and durable:
                fsync_dir(self.path.parent)
        except BaseException:
            os.close(self._fd)
            raise

    def _repair(self) -> list[str] | None:
        """Cut off a line a crash left incomplete; the file's header, or None if it has none."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return None
        end = size
        while end > 0:  # find the last newline, reading backwards in chunks
            start = max(0, end - _TAIL_CHUNK)
            chunk = os.pread(self._fd, end - start, start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                end = start + cut + 1
                break
            end = start
        if end != size:
            os.ftruncate(self._fd, end)
            if self.durable:
                os.fsync(self._fd)
        if end == 0:
            return None
        first = os.pread(self._fd, min(end, _TAIL_CHUNK), 0).split(b"\n", 1)[0]
        header = next(csv.reader([first.decode("utf-8", errors="replace")]), [])
        return header or None

    def _encode(self, rows: Iterable[Sequence[object]]) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in rows:
            writer.writerow([_format(v) for v in row])
        return buffer.getvalue().encode("utf-8")

    def _write(self, data: bytes) -> None:
        """Write ``data`` whole or not at all: a full disk truncates the log back to where
        it was and raises the store's :class:`StorageFullError`, so the run stops the way
        it does when the episode store fills, with no half row left behind."""
        start = os.lseek(self._fd, 0, os.SEEK_END)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if self.durable:
                os.fsync(self._fd)
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            os.ftruncate(self._fd, start)
            raise StorageFullError(
                f"cannot append to {self.path} ({err}): the disk is full; the rows before "
                "this one are kept"
            ) from err

    def append(self, rows: Sequence[Mapping[str, object]]) -> None:
        """Append ``rows`` (column -> value) in one write; durable when this returns."""
        if not rows:
            return
        data = self._encode([row.get(f) for f in self.fields] for row in rows)
        with self._lock:
            if self._fd < 0:
                raise ValueError(f"{self.path} is closed")
            self._write(data)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def read_rows(path: Path) -> list[dict[str, str]]:
    """The complete rows of a CSV log (empty if the file does not exist yet).

    A last line without its newline (a write cut short) is not read, nor is any
    line whose number of fields differs from the header's.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    data = data[: data.rfind(b"\n") + 1]
    lines = data.decode("utf-8", errors="replace").splitlines()
    if not lines:
        return []
    reader = csv.reader(lines)
    header = next(reader)
    return [dict(zip(header, row, strict=True)) for row in reader if len(row) == len(header)]


def to_float(value: str | None) -> float:
    """A CSV cell as a float (NaN when empty or not a number)."""
    if not value:
        return float("nan")
    try:
        return float(value)
    except ValueError:
        return float("nan")


class _Curriculum(Protocol):
    def stats(self, detail: bool = False) -> CurriculumStats: ...


class _Learning(Protocol):
    @property
    def last(self) -> Mapping[str, float]: ...


class _Evaluating(Protocol):
    @property
    def spent(self) -> int: ...


class ProgressSource(Protocol):
    """What a progress row reads of the agent. Named here, structurally, so that this
    module (which the evaluator the agent builds imports) depends on nothing above it:
    :class:`~autotelic.runtime.loop.agent.Agent` satisfies it without importing it."""

    def snapshot(self) -> Snapshot: ...

    @property
    def daemon(self) -> _Curriculum: ...

    @property
    def learner_loop(self) -> _Learning: ...

    @property
    def evaluator(self) -> _Evaluating | None: ...


class ProgressLog:
    """Appends a row of counters, losses, throughput and curriculum figures to
    ``progress.csv`` at each progress interval of the service.

    Its loss columns are a fixed summary for the progress plot; every key of every
    update, whatever the algorithm, is in ``learner_stats.csv`` (runtime/telemetry/tracking.py),
    whose long rows never need a new column."""

    def __init__(self, path: Path, categories: Iterable[str]) -> None:
        self.log = CsvLog(path, progress_fields(categories))
        self._last: tuple[float, int, int] | None = None
        self._made = time.monotonic()

    def record(self, agent: ProgressSource) -> None:
        """Append the agent's figures now. The first row's rates count from when this log
        was made and from the counters the process started with (``started_from``), so a
        resumed run shows its own speed, not its restored steps as a burst."""
        now = time.monotonic()
        snap = agent.snapshot()
        stats = agent.daemon.stats()
        last = dict(agent.learner_loop.last)
        steps_rate = updates_rate = None
        start = snap.started_from
        if self._last is None and start is not None:
            self._last = (self._made, start.env_steps, start.updates)
        if self._last is not None and now > self._last[0]:
            elapsed = now - self._last[0]
            steps_rate = (snap.env_steps - self._last[1]) / elapsed
            updates_rate = (snap.updates - self._last[2]) / elapsed
        self._last = (now, snap.env_steps, snap.updates)

        def first(*keys: str) -> float | None:
            return next((float(last[k]) for k in keys if k in last), None)

        evaluator = agent.evaluator
        row: dict[str, object] = {
            "time": round(time.time(), 3),
            "env_steps": snap.env_steps,
            "episodes": snap.episodes,
            "successes": snap.successes,
            "updates": snap.updates,
            "policy_version": snap.policy_version,
            "replay_transitions": snap.replay_transitions,
            "env_steps_per_s": steps_rate,
            "updates_per_s": updates_rate,
            "critic_loss": first("critic_loss", "value_loss"),
            "actor_loss": first("actor_loss", "policy_loss"),
            "alpha": first("alpha"),
            "entropy": first("entropy"),
            "policy_lag": first("policy_lag"),
            "eval_env_steps": evaluator.spent if evaluator is not None else None,
        }
        for name, c in stats.categories.items():
            row[f"success_rate:{name}"] = c.success_rate
            row[f"lp:{name}"] = c.mean_goal_lp
        self.log.append([row])

    def close(self) -> None:
        self.log.close()
