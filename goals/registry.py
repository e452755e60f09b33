"""The goals the agent knows, where each came from, and when it first appeared.

The registry is the autotelic part of the curriculum: every goal the agent
achieves enters it (once), so the space it practises grows from what it
manages to do. It is small (hundreds of goals), so it persists as one value.
It holds held-out goals too (known and reported like the others); the daemon
keeps them out of the training pool it samples from.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast, get_args

from autotelic.core import GoalSpace

log = logging.getLogger(__name__)

Source = Literal["configured", "discovered", "injected"]
"""Where a goal came from: the configuration, the agent's own achievements, or a person."""

SOURCES: tuple[Source, ...] = get_args(Source)


@dataclass(frozen=True, slots=True)
class GoalRecord:
    """One known goal. ``added_episode`` is the episode that first achieved a discovered goal."""

    text: str
    category: str
    source: Source
    added_at: float
    added_episode: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Msgpack- and JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GoalRecord:
        """The inverse of :meth:`to_dict`."""
        source = data["source"]
        if source not in SOURCES:
            raise ValueError(f"unknown goal source {source!r}; expected one of {SOURCES}")
        return cls(
            text=str(data["text"]),
            category=str(data["category"]),
            source=cast(Source, source),
            added_at=float(data["added_at"]),
            added_episode=None if data.get("added_episode") is None else int(data["added_episode"]),
        )


class GoalRegistry:
    """Known goals in insertion order; not thread-safe (the daemon holds the lock)."""

    def __init__(self, goal_space: GoalSpace) -> None:
        self.goal_space = goal_space
        self._records: dict[str, GoalRecord] = {}

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, text: object) -> bool:
        return text in self._records

    def __iter__(self) -> Iterator[GoalRecord]:
        return iter(list(self._records.values()))

    def goals(self) -> list[str]:
        """Canonical texts of every known goal, in the order they arrived."""
        return list(self._records)

    def get(self, text: str) -> GoalRecord | None:
        """The record of a canonical goal text, or None."""
        return self._records.get(text)

    def add(
        self, text: str, source: Source, *, time: float, episode: int | None = None
    ) -> tuple[GoalRecord, bool]:
        """Register a goal unless known; returns its record and whether it is new.

        A goal keeps the source it first arrived with: a configured goal the
        agent later achieves is still configured. An invalid text raises
        :class:`InvalidGoalError` with the goal space's reason.
        """
        parsed = self.goal_space.parse(text)
        known = self._records.get(parsed.text)
        if known is not None:
            return known, False
        record = GoalRecord(parsed.text, parsed.category, source, time, episode)
        self._records[parsed.text] = record
        return record, True

    def discover(
        self, achieved: Iterable[str], *, time: float, episode: int | None
    ) -> list[GoalRecord]:
        """Register every achieved goal not yet known; invalid texts are logged and skipped."""
        new: list[GoalRecord] = []
        for text in achieved:
            try:
                record, added = self.add(text, "discovered", time=time, episode=episode)
            except ValueError as err:
                log.warning("ignoring achieved goal the goal space rejects: %s", err)
                continue
            if added:
                new.append(record)
        return new

    def counts_by_source(self) -> dict[str, int]:
        """How many goals came from each source (every source present, zeros included)."""
        counts: dict[str, int] = dict.fromkeys(SOURCES, 0)
        for record in self._records.values():
            counts[record.source] += 1
        return counts

    def state_dict(self) -> dict[str, Any]:
        """Msgpack- and JSON-able state."""
        return {"goals": [r.to_dict() for r in self._records.values()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Merge saved records: a goal known on either side stays known, earliest record wins."""
        merged: dict[str, GoalRecord] = {}
        for data in state.get("goals", []):
            record = GoalRecord.from_dict(data)
            merged[record.text] = record
        for text, record in self._records.items():
            if text not in merged or record.added_at < merged[text].added_at:
                merged[text] = record
        self._records = merged
