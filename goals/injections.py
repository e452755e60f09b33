"""Goals people inject: a priority queue served before the agent's own choices.

Each injection asks for a number of episodes of one goal, optionally with a
priority (higher first, first-come first-served within a priority) and an
expiry for the episodes not yet served. Every episode's outcome, and then one
final ``completed`` or ``expired`` status, are reported as
:class:`InjectionReport` so the runtime can publish them.

Persistence keeps accepted injections across restarts: episodes that were
handed out but never reported are served again after a restart.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from autotelic.core import ParsedGoal
from autotelic.goals.config import InjectionConfig
from autotelic.goals.errors import InjectionRejected

log = logging.getLogger(__name__)

ReportStatus = Literal["episode", "completed", "expired"]


@dataclass(slots=True)
class Injection:
    """One accepted injection and its progress."""

    id: str
    goal: str
    category: str
    episodes: int
    priority: int
    created_at: float
    expires_at: float | None
    seq: int
    done: int = 0
    successes: int = 0
    dispatched: int = 0
    expired: bool = False

    @property
    def unserved(self) -> int:
        """Episodes not yet handed out (0 once expired)."""
        return 0 if self.expired else self.episodes - self.dispatched

    @property
    def in_flight(self) -> int:
        """Episodes handed out whose outcome has not come back."""
        return self.dispatched - self.done

    def to_dict(self) -> dict[str, Any]:
        """Msgpack- and JSON-able form; in-flight episodes are saved as not yet served."""
        data = asdict(self)
        data["dispatched"] = self.done
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Injection:
        """The inverse of :meth:`to_dict`."""
        return cls(
            id=str(data["id"]),
            goal=str(data["goal"]),
            category=str(data["category"]),
            episodes=int(data["episodes"]),
            priority=int(data["priority"]),
            created_at=float(data["created_at"]),
            expires_at=None if data.get("expires_at") is None else float(data["expires_at"]),
            seq=int(data["seq"]),
            done=int(data["done"]),
            successes=int(data["successes"]),
            dispatched=int(data["done"]),
            expired=bool(data.get("expired", False)),
        )


@dataclass(frozen=True, slots=True)
class InjectionReport:
    """What the runtime publishes about an injection.

    ``status`` is ``episode`` for each episode outcome (``episode_index`` counts
    them from 0, ``success``/``steps``/``episode_id``/``achieved_goals`` describe
    it), then once ``completed`` (every requested episode reported) or
    ``expired`` (unserved episodes dropped at their expiry; outcomes of episodes
    already running still follow as ``episode`` reports).

    :attr:`message_id` names the report for consumers that drop duplicates (results
    are delivered at least once): ``<injection id>:<n>`` with ``n`` the episode
    index, or ``episodes_requested`` for the one final report.
    """

    injection_id: str
    goal: str
    status: ReportStatus
    episodes_requested: int
    episodes_done: int
    successes: int
    time: float
    episode_index: int | None = None
    success: bool | None = None
    steps: int | None = None
    episode_id: int | None = None
    achieved_goals: tuple[str, ...] = field(default_factory=tuple)

    @property
    def message_id(self) -> str:
        """Stable id of this report: the same for every delivery of it, across restarts."""
        n = self.episodes_requested if self.episode_index is None else self.episode_index
        return f"{self.injection_id}:{n}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, ready to publish (``message_id`` included)."""
        data = asdict(self)
        data["achieved_goals"] = list(self.achieved_goals)
        data["message_id"] = self.message_id
        return data


class InjectionQueue:
    """Accepted injections, ordered by (priority desc, arrival); not thread-safe."""

    def __init__(self, config: InjectionConfig | None = None) -> None:
        self.config = config if config is not None else InjectionConfig()
        self._active: dict[str, Injection] = {}
        self._finished: deque[tuple[str, str]] = deque(maxlen=self.config.history)
        self._seq = 0

    def __len__(self) -> int:
        return len(self._active)

    def get(self, injection_id: str) -> Injection | None:
        """The active injection with this id, or None."""
        return self._active.get(injection_id)

    def active(self) -> list[Injection]:
        """Active injections in serving order."""
        return sorted(self._active.values(), key=lambda i: (-i.priority, i.seq))

    def pending_episodes(self) -> int:
        """Episodes accepted but not yet handed out."""
        return sum(i.unserved for i in self._active.values())

    def submit(
        self,
        goal: ParsedGoal,
        *,
        episodes: int,
        priority: int,
        expires_at: float | None,
        now: float,
    ) -> Injection:
        """Queue an injection or raise :class:`InjectionRejected` with the reason."""
        _check_int("episodes", episodes, goal.text)
        _check_int("priority", priority, goal.text)
        if not 1 <= episodes <= self.config.max_episodes:
            raise InjectionRejected(
                f"episodes must be between 1 and {self.config.max_episodes}, got {episodes}",
                goal.text,
            )
        if expires_at is not None:
            if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
                raise InjectionRejected(
                    f"expiry must be a time in seconds, got {expires_at!r}", goal.text
                )
            if not math.isfinite(expires_at):
                raise InjectionRejected(
                    f"expiry must be a finite time, got {expires_at}", goal.text
                )
            if expires_at <= now:
                raise InjectionRejected(
                    f"expiry {expires_at:.3f} is not in the future (now {now:.3f})", goal.text
                )
        if len(self._active) >= self.config.max_pending:
            raise InjectionRejected(
                f"queue full: {self.config.max_pending} injections pending", goal.text
            )
        self._seq += 1
        injection = Injection(
            id=uuid.uuid4().hex,
            goal=goal.text,
            category=goal.category,
            episodes=episodes,
            priority=priority,
            created_at=now,
            expires_at=expires_at,
            seq=self._seq,
        )
        self._active[injection.id] = injection
        return injection

    def take(self, n: int) -> list[Injection]:
        """Hand out up to ``n`` episodes in serving order (one entry per episode)."""
        taken: list[Injection] = []
        for injection in self.active():
            while injection.unserved > 0 and len(taken) < n:
                injection.dispatched += 1
                taken.append(injection)
            if len(taken) >= n:
                break
        return taken

    def expire(self, now: float) -> list[InjectionReport]:
        """Drop the unserved episodes of injections past their expiry; one report each."""
        reports: list[InjectionReport] = []
        for injection in list(self._active.values()):
            due = injection.expires_at is not None and injection.expires_at <= now
            if due and injection.unserved > 0:
                injection.expired = True
                reports.append(_final(injection, "expired", now))
                if injection.in_flight == 0:
                    self._retire(injection, "expired")
        return reports

    def record(
        self,
        injection_id: str,
        *,
        success: bool,
        steps: int,
        episode_id: int | None,
        achieved_goals: Sequence[str],
        now: float,
    ) -> list[InjectionReport]:
        """Account for one outcome of an injected episode; returns the reports it causes."""
        injection = self._active.get(injection_id)
        if injection is None:
            if any(fid == injection_id for fid, _ in self._finished):
                log.info("outcome for finished injection %s ignored", injection_id)
            else:
                log.warning("outcome for unknown injection %s ignored", injection_id)
            return []
        if injection.done >= injection.episodes:
            return []
        injection.done += 1
        injection.successes += int(success)
        injection.dispatched = max(injection.dispatched, injection.done)
        reports = [
            InjectionReport(
                injection_id=injection.id,
                goal=injection.goal,
                status="episode",
                episodes_requested=injection.episodes,
                episodes_done=injection.done,
                successes=injection.successes,
                time=now,
                episode_index=injection.done - 1,
                success=success,
                steps=steps,
                episode_id=episode_id,
                achieved_goals=tuple(achieved_goals),
            )
        ]
        if injection.done == injection.episodes and not injection.expired:
            reports.append(_final(injection, "completed", now))
            self._retire(injection, "completed")
        elif injection.expired and injection.in_flight == 0:
            self._retire(injection, "expired")
        return reports

    def withdraw(self, injection_id: str) -> None:
        """Forget an injection that was never acknowledged (its acceptance failed)."""
        self._active.pop(injection_id, None)

    def _retire(self, injection: Injection, status: str) -> None:
        self._active.pop(injection.id, None)
        self._finished.append((injection.id, status))

    def state_dict(self) -> dict[str, Any]:
        """Msgpack- and JSON-able state (in-flight episodes count as unserved)."""
        return {
            "seq": self._seq,
            "active": [i.to_dict() for i in self.active()],
            "finished": [list(f) for f in self._finished],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Merge saved injections: finished ones stay finished, progress never goes back."""
        finished = {fid: status for fid, status in self._finished}
        for fid, status in state.get("finished", []):
            if fid not in finished:
                finished[str(fid)] = str(status)
                self._finished.append((str(fid), str(status)))
        for data in state.get("active", []):
            saved = Injection.from_dict(data)
            if saved.id in finished:
                continue
            current = self._active.get(saved.id)
            if current is None or saved.done > current.done:
                self._active[saved.id] = saved
        for injection in list(self._active.values()):
            if injection.id in finished:
                del self._active[injection.id]
            elif injection.expired and injection.in_flight == 0:
                self._retire(injection, "expired")
        self._seq = max(self._seq, int(state.get("seq", 0)))


def _final(injection: Injection, status: ReportStatus, now: float) -> InjectionReport:
    return InjectionReport(
        injection_id=injection.id,
        goal=injection.goal,
        status=status,
        episodes_requested=injection.episodes,
        episodes_done=injection.done,
        successes=injection.successes,
        time=now,
    )


def _check_int(name: str, value: object, goal: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InjectionRejected(f"{name} must be an integer, got {value!r}", goal)
