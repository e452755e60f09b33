"""The live progress line on the console."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


@dataclass
class Snapshot:
    """Counters the progress line reads."""

    env_steps: int
    episodes: int
    successes: int
    updates: int
    policy_version: int
    replay_transitions: int
    started_from: Snapshot | None = None
    """The counters when this process started (restored from a checkpoint after a
    restart): the first line's rates and success count from them, not from zero."""


BEHIND = 0.9
"""Below this share of the updates ``algorithm.update_every`` asks for, the line says the
learner is behind."""


class ProgressLine:
    """Prints throughput and success since the last line; rewrites in place on a terminal.

    The first line measures from when the line was made, and from the snapshot's
    ``started_from`` counters: a resumed run's restored steps are not this process's work.

    With ``update_every`` (an off-policy algorithm's update-to-data ratio, one update per
    that many env steps), the line also gives the env steps per update it measured over
    the interval, once learning has started (``learning_starts`` stored transitions), and
    says ``learner behind`` when fewer than 90% of the updates asked were made: a
    concurrent run whose learner is slower than collection may otherwise look healthy
    while it learns from a fraction of what was set.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        update_every: int | None = None,
        learning_starts: int = 0,
    ) -> None:
        self.stream = stream or sys.stderr
        self.update_every = update_every
        self.learning_starts = learning_starts
        self._last: Snapshot | None = None
        self._last_time = time.monotonic()

    def render(self, now: Snapshot) -> str:
        elapsed = max(time.monotonic() - self._last_time, 1e-9)
        last = self._last or now.started_from or Snapshot(0, 0, 0, 0, 0, 0)
        steps_rate = (now.env_steps - last.env_steps) / elapsed
        update_rate = (now.updates - last.updates) / elapsed
        episodes = now.episodes - last.episodes
        success = (now.successes - last.successes) / episodes if episodes else float("nan")
        return (
            f"steps {now.env_steps:,} ({steps_rate:.1f}/s) | episodes {now.episodes:,} "
            f"| success {success:.0%} | updates {now.updates:,} ({update_rate:.2f}/s) "
            f"| policy v{now.policy_version} | replay {now.replay_transitions:,}"
            f"{self._ratio(last, now)}"
        ).replace("nan%", "-")

    def _ratio(self, last: Snapshot, now: Snapshot) -> str:
        """`` | 8.0 steps/update (asked 8)`` (`` | no update (asked 8)`` in an interval
        without one), and ``: learner behind`` under 90% of the updates asked; empty
        without a ratio to hold or before learning started."""
        steps, updates = now.env_steps - last.env_steps, now.updates - last.updates
        if (
            self.update_every is None
            or steps <= 0
            or last.replay_transitions < self.learning_starts
        ):
            return ""
        asked = steps / self.update_every
        measured = f"{steps / updates:.1f} steps/update" if updates > 0 else "no update"
        behind = ": learner behind" if updates < BEHIND * asked else ""
        return f" | {measured} (asked {self.update_every}){behind}"

    def emit(self, now: Snapshot) -> None:
        line = self.render(now)
        self._last, self._last_time = now, time.monotonic()
        if self.stream.isatty():
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


class CountProgress:
    """``what: done/total (rate/s, ~time left)`` for a long command, on stderr.

    A command that runs for minutes without a word looks hung (``autotelic eval`` of a
    pretrained checkpoint on a CPU): this shows how far it is and how long it has left.
    On a terminal the line is rewritten in place; elsewhere a line is written at most
    every ``every`` seconds, and always at the end.
    """

    def __init__(
        self, what: str, total: int, stream: TextIO | None = None, every: float = 5.0
    ) -> None:
        self.what = what
        self.total = total
        self.stream = stream or sys.stderr
        self.every = every
        self.done = 0
        self._start = time.monotonic()
        self._shown = -math.inf
        self._ended = False

    def render(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else math.nan
        eta = f"~{_duration(left)} left" if math.isfinite(left) else "time left unknown"
        return f"{self.what}: {self.done:,}/{self.total:,} ({rate:.2f}/s, {eta})"

    def update(self, done: int) -> None:
        """``done`` items finished so far; shows the line when it is due (the last once)."""
        if self._ended:
            return
        changed, self.done = done != self.done, min(done, self.total)
        now, tty = time.monotonic(), self.stream.isatty()
        final = self.done >= self.total
        if not (final or (changed and (tty or now - self._shown >= self.every))):
            return
        self._shown, self._ended = now, final
        line = self.render()
        if tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``1h02m``."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def count_progress(what: str) -> Callable[[int, int], None]:
    """A ``(done, total)`` callback that shows a :class:`CountProgress` line, made on the
    first call (the total is known only once the work has started)."""
    shown: list[CountProgress] = []

    def update(done: int, total: int) -> None:
        if not shown:
            shown.append(CountProgress(what, total))
        shown[0].update(done)

    return update
