"""The primitives the schedules are built of: the update-to-data throttle, time shares, safe points.

The same objects serve the serial driver (tests, experiments: one thread,
deterministic) and the concurrent one (a collector thread and a learner thread).
Serially, the driver asks :meth:`UpdateThrottle.owed` how many updates to run
after each collection step, so the ratio holds exactly. Concurrently, the
learner waits while it is ahead of the ratio, and what happens when it falls
more than ``max_lag_updates`` behind is the ``when_behind`` policy:

* ``"wait"``: the collector waits until the learner catches up. The ratio holds
  exactly (back-pressure both ways), but a learner slower than collection makes
  collection stop and go: measured with the packaged SmolLM2 on two CPU cores,
  minutes without a single env step while one update of 256 transitions ran.
  A learner that reports the share of its update already done (micro-batches,
  :meth:`UpdateThrottle.record_progress`) is credited for it, so the collector
  moves a little after each micro-batch instead of once per update.
* ``"skip"``: the collector never waits; the updates owed beyond the lag are
  skipped, so the ratio becomes a ceiling, the learner's backlog (the policy lag
  the data may reach before it is learned from) stays at most
  ``max_lag_updates``, and env steps and updates both keep moving.

:class:`TimeShares` adds up where each side's time goes (learning, waiting), which
the throughput benchmark reports as busy and waiting fractions.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from typing import Literal

WhenBehind = Literal["wait", "skip"]


class UpdateThrottle:
    """Keeps learner updates at ``ratio`` per env step once ``learning_starts`` steps exist.

    ``updates`` counts the updates done, ``skipped`` those forgiven under the
    ``"skip"`` policy, and ``progress`` the share of the update in hand already
    done; the learner's backlog is what the ratio asks for minus all three.
    """

    def __init__(
        self,
        ratio: float,
        learning_starts: int,
        max_lag_updates: int = 4,
        when_behind: WhenBehind = "wait",
    ) -> None:
        if ratio <= 0:
            raise ValueError(f"update-to-data ratio must be > 0, got {ratio}")
        if when_behind not in ("wait", "skip"):
            raise ValueError(f"when_behind must be 'wait' or 'skip', got {when_behind!r}")
        self.ratio = ratio
        self.learning_starts = learning_starts
        self.max_lag_updates = max_lag_updates
        self.when_behind: WhenBehind = when_behind
        self.env_steps = 0
        self.updates = 0
        self.skipped = 0
        self.progress = 0.0
        self._cond = threading.Condition()
        self._stopped = False
        self._blocked = 0

    @property
    def collector_blocked(self) -> bool:
        """Whether a collector is waiting for the learner right now."""
        with self._cond:
            return self._blocked > 0

    def target(self) -> int:
        """Updates that should have been done for the env steps so far."""
        if self.env_steps < self.learning_starts:
            return 0
        return math.floor((self.env_steps - self.learning_starts) * self.ratio) + 1

    def owed(self) -> int:
        """Updates the learner may do now (never negative)."""
        with self._cond:
            return max(0, self.target() - self.updates - self.skipped)

    def lag(self) -> float:
        """The learner's backlog in updates, crediting the share of the one in hand."""
        with self._cond:
            return self._lag()

    def _lag(self) -> float:
        return self.target() - self.updates - self.skipped - self.progress

    def restore(self, env_steps: int, updates: int) -> None:
        """Continue counting from a checkpoint, owing at most ``max_lag_updates``.

        Skipped updates are not saved: a run that skipped thousands (``"skip"``), resumed
        under ``"wait"`` or serially, must not first run them all before collecting.
        """
        with self._cond:
            self.env_steps, self.updates = env_steps, updates
            self.progress = 0.0
            self.skipped = 0
            self.skipped = max(0, self.target() - updates - self.max_lag_updates)
            self._cond.notify_all()

    def record_steps(self, n: int) -> None:
        with self._cond:
            self.env_steps += n
            self._cond.notify_all()

    def record_progress(self, share: float) -> None:
        """Learner side: ``share`` (0 to 1) of the update in hand is done."""
        with self._cond:
            self.progress = min(max(share, 0.0), 1.0)
            self._cond.notify_all()

    def record_update(self) -> None:
        with self._cond:
            self.updates += 1
            self.progress = 0.0
            self._cond.notify_all()

    def wait_for_work(self, timeout: float | None = None) -> bool:
        """Learner side: block until an update is owed; False if stopped or timed out."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._stopped or self.target() > self.updates + self.skipped, timeout
            )
            return ok and not self._stopped

    def wait_for_room(self, timeout: float | None = None) -> bool:
        """Collector side: True once it may step (False if stopped or timed out).

        ``"wait"`` blocks while the backlog exceeds ``max_lag_updates``;
        ``"skip"`` never blocks and forgives the updates owed beyond it.
        """
        with self._cond:
            if self.when_behind == "skip":
                excess = self.target() - self.updates - self.skipped - self.max_lag_updates
                if excess > 0:
                    self.skipped += excess
                return not self._stopped
            self._blocked += 1
            try:
                ok = self._cond.wait_for(
                    lambda: self._stopped or self._lag() <= self.max_lag_updates, timeout
                )
            finally:
                self._blocked -= 1
            return ok and not self._stopped

    def stop(self) -> None:
        """Release every waiter for good."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()


class TimeShares:
    """Seconds spent in named activities (``learning``, ``collector_waiting``...), summed
    across threads; read as fractions of a window by the throughput benchmark.

    An activity still running counts up to the moment of :meth:`snapshot`, so a
    window that ends in the middle of a long update is credited with its share.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = {}
        self._open: dict[tuple[str, int], float] = {}

    @contextlib.contextmanager
    def timing(self, name: str) -> Iterator[None]:
        """Count the time spent inside this block under ``name``."""
        key = (name, threading.get_ident())
        with self._lock:
            self._open[key] = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                began = self._open.pop(key)
                self._seconds[name] = self._seconds.get(name, 0.0) + time.perf_counter() - began

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self._seconds[name] = self._seconds.get(name, 0.0) + seconds

    def snapshot(self) -> dict[str, float]:
        """Seconds per activity so far, activities in progress included."""
        now = time.perf_counter()
        with self._lock:
            seen = dict(self._seconds)
            for (name, _), began in self._open.items():
                seen[name] = seen.get(name, 0.0) + now - began
            return seen


class SafePoints:
    """Lets the supervisor pause the worker threads between steps, e.g. to checkpoint.

    Workers call :meth:`checkpoint` at the top of each iteration, where their
    state is consistent. :meth:`pause` returns once every registered worker is
    parked there (or has finished), and :meth:`resume` lets them go on.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._workers: set[str] = set()
        self._parked: set[str] = set()
        self._pausing = False

    def register(self, name: str) -> None:
        with self._cond:
            self._workers.add(name)

    def unregister(self, name: str) -> None:
        with self._cond:
            self._workers.discard(name)
            self._parked.discard(name)
            self._cond.notify_all()

    def checkpoint(self, name: str) -> None:
        """Worker side: park here while a pause is requested."""
        with self._cond:
            if not self._pausing:
                return
            self._parked.add(name)
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._pausing)
            self._parked.discard(name)

    def pause(self, timeout: float = 60.0) -> bool:
        """Supervisor side: request a pause; True once every worker is parked."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._pausing = True
            while self._workers - self._parked:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
            return True

    def resume(self) -> None:
        with self._cond:
            self._pausing = False
            self._cond.notify_all()
