"""Episodes kept in a plain in-memory list: no durability, no disk.

It is the yardstick of ``bench/replay.py`` (what the LMDB store costs against the
simplest possible replay) and a convenient source for learner tests that need
batches but not persistence. It keeps each episode's sampling view once made, the
fastest thing an in-memory replay can do, so the comparison never flatters LMDB.
Views are made on first use and kept, so ``put`` stays an append.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from autotelic.storage.errors import EpisodeNotFoundError
from autotelic.storage.index import IndexSnapshot, TransitionIndex
from autotelic.storage.records import Episode, EpisodeView
from autotelic.storage.store import DEFAULT_CAPACITY_TRANSITIONS


class MemoryEpisodeStore:
    """A bounded list of episodes with the same replay-source interface as the LMDB store."""

    def __init__(self, capacity_transitions: int = DEFAULT_CAPACITY_TRANSITIONS) -> None:
        if capacity_transitions < 1:
            raise ValueError(f"capacity_transitions must be >= 1, got {capacity_transitions}")
        self.capacity_transitions = capacity_transitions
        self._episodes: dict[int, Episode] = {}
        self._views: dict[int, EpisodeView] = {}
        self._next_id = 0
        self._index = TransitionIndex()

    def __len__(self) -> int:
        return len(self._episodes)

    @property
    def num_transitions(self) -> int:
        return self._index.num_transitions

    def put(self, episode: Episode) -> int:
        """Append one episode, evicting the oldest ones beyond capacity; returns its id."""
        if not isinstance(episode, Episode):
            raise TypeError(f"expected an Episode, got {type(episode).__name__}")
        if episode.length > self.capacity_transitions:
            raise ValueError(
                f"{episode.length} transitions do not fit in a store of capacity "
                f"{self.capacity_transitions} transitions"
            )
        episode_id = self._next_id
        evict, _ = self._index.oldest_to_evict(episode.length, self.capacity_transitions)
        self._episodes[episode_id] = episode
        self._next_id += 1
        self._index.append([episode_id], [episode.length])
        self._index.evict(evict)
        for old in evict.tolist():
            del self._episodes[old]
            self._views.pop(old, None)
        return episode_id

    def put_many(self, episodes: Sequence[Episode]) -> list[int]:
        return [self.put(e) for e in episodes]

    def get(self, episode_id: int) -> Episode:
        episode = self._episodes.get(episode_id)
        if episode is None:
            raise EpisodeNotFoundError(episode_id)
        return episode.model_copy(update={"id": episode_id})

    def index_snapshot(self) -> IndexSnapshot:
        return self._index.snapshot()

    def fetch_views(self, episode_ids: Iterable[int]) -> dict[int, EpisodeView]:
        found: dict[int, EpisodeView] = {}
        for episode_id in episode_ids:
            view = self._views.get(episode_id)
            if view is None:
                episode = self._episodes.get(episode_id)
                if episode is None:
                    continue
                view = self._views[episode_id] = EpisodeView.of(episode, episode_id)
            found[episode_id] = view
        return found
