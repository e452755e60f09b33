"""The live progress line on the console."""

from __future__ import annotations

import sys
import time
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


class ProgressLine:
    """Prints throughput and success since the last line; rewrites in place on a terminal.

    The first line measures from when the line was made, and from the snapshot's
    ``started_from`` counters: a resumed run's restored steps are not this process's work.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
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
        ).replace("nan%", "-")

    def emit(self, now: Snapshot) -> None:
        line = self.render(now)
        self._last, self._last_time = now, time.monotonic()
        if self.stream.isatty():
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
