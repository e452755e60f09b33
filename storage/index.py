"""The in-memory index that makes uniform sampling cheap without touching LMDB.

Stored transitions are numbered consecutively in the order their episodes were
stored (an absolute offset that keeps growing; eviction only moves the start).
Three int64 arrays say where each live episode begins and how long it is, so a
uniform draw over transitions is one ``searchsorted`` and the index costs 24
bytes per episode, not a copy of the replay.

Snapshots are views that never change under the reader: appends write past the
snapshot's end, eviction only advances the start, and compaction or growth
allocates new arrays instead of moving data in place.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]


@dataclass(frozen=True)
class IndexSnapshot:
    """A consistent, immutable view of the live episodes, oldest first."""

    ids: Int64Array
    """Episode ids (increasing)."""
    starts: Int64Array
    """Absolute offset of each episode's first transition."""
    lengths: Int64Array
    """Transitions per episode."""

    @property
    def num_episodes(self) -> int:
        return len(self.ids)

    @property
    def num_transitions(self) -> int:
        if len(self.ids) == 0:
            return 0
        return int(self.starts[-1] + self.lengths[-1] - self.starts[0])

    def locate(self, positions: Int64Array) -> tuple[Int64Array, Int64Array]:
        """Map transition positions in ``[0, num_transitions)`` to (row in ids, step)."""
        absolute = positions + self.starts[0]
        rows = np.searchsorted(self.starts, absolute, side="right") - 1
        return rows.astype(np.int64), (absolute - self.starts[rows]).astype(np.int64)


_EMPTY = np.zeros(0, dtype=np.int64)


class TransitionIndex:
    """Episode ids and lengths in storage order: append at the end, evict at the front."""

    def __init__(self, ids: Int64Array | None = None, lengths: Int64Array | None = None) -> None:
        self._lock = threading.Lock()
        ids = _EMPTY if ids is None else np.asarray(ids, dtype=np.int64)
        lengths = _EMPTY if lengths is None else np.asarray(lengths, dtype=np.int64)
        if ids.shape != lengths.shape:
            raise ValueError(f"{len(ids)} ids for {len(lengths)} lengths")
        if len(ids) > 1 and not bool(np.all(np.diff(ids) > 0)):
            raise ValueError("episode ids must be strictly increasing (storage order)")
        if bool(np.any(lengths < 1)):
            raise ValueError("every episode has at least one transition")
        capacity = max(1024, 2 * len(ids))
        self._ids = np.zeros(capacity, dtype=np.int64)
        self._starts = np.zeros(capacity, dtype=np.int64)
        self._lengths = np.zeros(capacity, dtype=np.int64)
        n = len(ids)
        self._ids[:n] = ids
        self._lengths[:n] = lengths
        if n:
            self._starts[1:n] = np.cumsum(lengths[:-1])
        self._head = 0
        self._tail = n
        self._next_start = int(lengths.sum()) if n else 0

    def __len__(self) -> int:
        return self._tail - self._head

    @property
    def num_transitions(self) -> int:
        with self._lock:
            if self._tail == self._head:
                return 0
            return self._next_start - int(self._starts[self._head])

    def snapshot(self) -> IndexSnapshot:
        with self._lock:
            h, t = self._head, self._tail
            return IndexSnapshot(self._ids[h:t], self._starts[h:t], self._lengths[h:t])

    def oldest_to_evict(self, incoming: int, capacity: int) -> tuple[Int64Array, Int64Array]:
        """Ids and lengths of the oldest episodes to drop so ``incoming`` more transitions fit."""
        with self._lock:
            h, t = self._head, self._tail
            if h == t:
                return _EMPTY, _EMPTY
            live = self._next_start - int(self._starts[h])
            excess = live + incoming - capacity
            if excess <= 0:
                return _EMPTY, _EMPTY
            target = int(self._starts[h]) + excess
            k = int(np.searchsorted(self._starts[h:t], target, side="left"))
            return self._ids[h : h + k].copy(), self._lengths[h : h + k].copy()

    def append(self, ids: list[int], lengths: list[int]) -> None:
        with self._lock:
            n = len(ids)
            if self._tail + n > len(self._ids):
                self._reallocate(self._tail - self._head + n)
            t = self._tail
            start = self._next_start
            for k in range(n):  # scalar stores: cheaper than array ops for a few episodes
                self._ids[t + k] = ids[k]
                self._lengths[t + k] = lengths[k]
                self._starts[t + k] = start
                start += lengths[k]
            self._next_start = start
            self._tail = t + n

    def evict(self, ids: Int64Array) -> None:
        """Drop the given ids, which must be the oldest ones, in order."""
        if len(ids) == 0:
            return
        with self._lock:
            h = self._head
            k = len(ids)
            if not np.array_equal(self._ids[h : h + k], ids):
                raise ValueError("evicted ids are not the oldest episodes of the index")
            self._head = h + k

    def _reallocate(self, live_needed: int) -> None:
        # New arrays, never in-place moves: snapshots taken earlier keep their data.
        h, t = self._head, self._tail
        capacity = max(1024, 2 * live_needed)
        ids = np.zeros(capacity, dtype=np.int64)
        starts = np.zeros(capacity, dtype=np.int64)
        lengths = np.zeros(capacity, dtype=np.int64)
        ids[: t - h] = self._ids[h:t]
        starts[: t - h] = self._starts[h:t]
        lengths[: t - h] = self._lengths[h:t]
        self._ids, self._starts, self._lengths = ids, starts, lengths
        self._head, self._tail = 0, t - h
