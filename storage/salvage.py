"""Salvaging a damaged episode store: what :func:`~autotelic.storage.integrity.read_store`
found, written into a new store.

It sits above both the store and the reader it combines: the reader never opens a store
with LMDB (so :mod:`~autotelic.storage.integrity`, which the store uses to check its
files before opening them, imports nothing of the store), and writing a new store is
the store's own business.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autotelic.storage.errors import StorageError
from autotelic.storage.integrity import read_store
from autotelic.storage.records import decode_episode
from autotelic.storage.store import EpisodeStore


@dataclass(frozen=True)
class SalvageReport:
    """What :func:`salvage_store` copied and what it could not."""

    source: Path
    destination: Path
    episodes: int
    transitions: int
    unreadable: list[int]
    state_keys: int
    unreadable_state: list[str]
    problems: list[str]


def salvage_store(source: Path, destination: Path) -> SalvageReport:
    """Copy every readable record of the store at ``source`` into a new store.

    Episodes keep their ids, the state area (goal registry, injections, counters) keeps
    every value that is readable, and the capacity and id counter carry over, so a
    service started on the new store goes on where the old one stopped, less what was
    lost. ``source`` is only read; ``destination`` must not hold a store yet.
    """
    if (destination / "data.mdb").exists():
        raise StorageError(f"{destination} already holds a store; give an empty folder")
    contents = read_store(source)
    meta = contents.meta or {}
    items = []
    for episode_id, value in contents.episodes.items():
        length = contents.lengths.get(episode_id)
        if length is None:
            length = decode_episode(episode_id, value).length
        items.append((episode_id, value, length))
    newest = max(contents.episodes, default=-1)
    next_id = max(int(meta.get("next_id", 0)), newest + 1, *contents.unreadable, 0)
    capacity = meta.get("capacity")
    transitions = sum(length for _, _, length in items)
    capacity = max(int(capacity) if isinstance(capacity, int) else 0, transitions, 1)
    with EpisodeStore(destination, capacity_transitions=capacity) as store:
        store.restore_records(
            items,
            contents.state,
            next_id=next_id,
            evicted=int(meta.get("evicted", 0)) + len(contents.unreadable),
        )
    return SalvageReport(
        source=source,
        destination=destination,
        episodes=len(items),
        transitions=transitions,
        unreadable=contents.unreadable,
        state_keys=len(contents.state),
        unreadable_state=contents.unreadable_state,
        problems=contents.problems,
    )
