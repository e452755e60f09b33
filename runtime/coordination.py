"""How the collector and the learner share time: the update-to-data ratio and safe points.

The same objects serve the serial driver (tests, experiments: one thread,
deterministic) and the concurrent one (a collector thread and a learner thread).
Serially, the driver asks :meth:`UpdateThrottle.owed` how many updates to run
after each collection step. Concurrently, each side blocks on the throttle:
the learner waits while it is ahead of the ratio, the collector waits while the
learner is too far behind. That is back-pressure both ways: neither outruns the
other by more than ``max_lag_updates``.
"""

from __future__ import annotations

import math
import threading
import time


class UpdateThrottle:
    """Keeps learner updates at ``ratio`` per env step once ``learning_starts`` steps exist."""

    def __init__(self, ratio: float, learning_starts: int, max_lag_updates: int = 4) -> None:
        if ratio <= 0:
            raise ValueError(f"update-to-data ratio must be > 0, got {ratio}")
        self.ratio = ratio
        self.learning_starts = learning_starts
        self.max_lag_updates = max_lag_updates
        self.env_steps = 0
        self.updates = 0
        self._cond = threading.Condition()
        self._stopped = False

    def target(self) -> int:
        """Updates that should have been done for the env steps so far."""
        if self.env_steps < self.learning_starts:
            return 0
        return math.floor((self.env_steps - self.learning_starts) * self.ratio) + 1

    def owed(self) -> int:
        """Updates the learner may do now (never negative)."""
        with self._cond:
            return max(0, self.target() - self.updates)

    def restore(self, env_steps: int, updates: int) -> None:
        """Continue counting from a checkpoint."""
        with self._cond:
            self.env_steps, self.updates = env_steps, updates
            self._cond.notify_all()

    def record_steps(self, n: int) -> None:
        with self._cond:
            self.env_steps += n
            self._cond.notify_all()

    def record_update(self) -> None:
        with self._cond:
            self.updates += 1
            self._cond.notify_all()

    def wait_for_work(self, timeout: float | None = None) -> bool:
        """Learner side: block until an update is owed; False if stopped or timed out."""
        with self._cond:
            ok = self._cond.wait_for(lambda: self._stopped or self.target() > self.updates, timeout)
            return ok and not self._stopped

    def wait_for_room(self, timeout: float | None = None) -> bool:
        """Collector side: block while the learner is more than the allowed lag behind."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._stopped or self.target() - self.updates <= self.max_lag_updates,
                timeout,
            )
            return ok and not self._stopped

    def stop(self) -> None:
        """Release every waiter for good."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()


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
