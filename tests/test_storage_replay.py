"""The replay sampler on a real LMDB store: uniformity, eviction, determinism, threads."""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from typing import Any

import numpy as np
import pytest

from autotelic.envs.playground import achieved
from autotelic.storage import (
    CorruptRecordError,
    EmptyReplayError,
    EpisodeStore,
    IndexSnapshot,
    ReplaySampler,
    StorageError,
)
from autotelic.storage.records import encode_episode
from tests.storage_fixtures import hand_episode, numbered_episode
from tests.test_storage_store import _raw_put

ROW = re.compile(r"e(\d+):state (\d+)")
NUMBER = re.compile(r"#(\d+) ")


def _chi2_bound(df: int, z: float = 3.72) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile (z = 3.72: p = 1e-4)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def test_rows_are_uniform_over_transitions_not_over_episodes(tmp_path):
    lengths = [1, 2, 3, 5, 8, 13]
    episodes = [hand_episode([[]] * n, tag=f"e{i}:") for i, n in enumerate(lengths)]
    with EpisodeStore(tmp_path / "s") as store:
        store.put_many(episodes)
        sampler = ReplaySampler(store, predicate=achieved, her_ratio=0.0, n_step=1, rng=123)
        counts: Counter[tuple[int, int]] = Counter()
        for _ in range(60):
            for observation in sampler.sample(256).observations:
                match = ROW.search(observation)
                assert match is not None
                counts[int(match.group(1)), int(match.group(2))] += 1
    cells = [(e, t) for e, n in enumerate(lengths) for t in range(n)]
    assert set(counts) == set(cells)  # every transition is reachable
    total = sum(counts.values())
    expected = total / len(cells)
    chi2 = sum((counts[c] - expected) ** 2 / expected for c in cells)
    assert chi2 < _chi2_bound(len(cells) - 1)
    # By episode, frequency follows length (an episode-uniform sampler would give 1/6 each).
    share_longest = sum(v for (e, _), v in counts.items() if e == 5) / total
    assert abs(share_longest - 13 / 32) < 0.02


def test_sampling_never_returns_an_evicted_episode(tmp_path):
    with EpisodeStore(tmp_path / "s", capacity_transitions=60) as store:
        sampler = ReplaySampler(store, predicate=achieved, rng=5)
        for number in range(200):
            store.put(numbered_episode(number))
            if number % 10 == 9:
                live = set(store.ids())
                batch = sampler.sample(64)
                pairs = zip(batch.observations, batch.next_observations, strict=True)
                for observation, next_observation in pairs:
                    (found,) = NUMBER.findall(observation)
                    assert int(found) in live
                    assert NUMBER.findall(next_observation) == [found]


class EvictingSource:
    """The real store, with episodes written (and old ones evicted) right after each snapshot.

    This forces the race the sampler must survive: the index it drew from names
    episodes that LMDB no longer holds when it reads them.
    """

    def __init__(self, store: EpisodeStore, start: int) -> None:
        self.store = store
        self.number = start
        self.snapshots = 0

    def index_snapshot(self) -> IndexSnapshot:
        snapshot = self.store.index_snapshot()
        self.snapshots += 1
        if self.snapshots == 1:
            for _ in range(30):  # replaces the whole content of the small store
                self.store.put(numbered_episode(self.number))
                self.number += 1
        return snapshot

    def fetch_views(self, episode_ids):
        return self.store.fetch_views(episode_ids)


def test_an_eviction_between_index_and_read_is_redrawn(tmp_path):
    with EpisodeStore(tmp_path / "s", capacity_transitions=40, durable=False) as store:
        for number in range(30):
            store.put(numbered_episode(number))
        source = EvictingSource(store, 30)
        batch = ReplaySampler(source, predicate=achieved, rng=0).sample(32)
        assert source.snapshots == 2  # the first snapshot's episodes were all gone
        live = set(store.ids())
        first = store.ids()[0]
        for observation in batch.observations:
            (found,) = NUMBER.findall(observation)
            assert int(found) >= 30  # drawn from a later snapshot
            assert int(found) in live or int(found) < first  # read while still stored
        with pytest.raises(StorageError, match="evicted faster than they could be read"):
            ReplaySampler(
                EvictingSource(store, source.number), predicate=achieved, rng=0, max_redraws=0
            ).sample(8)


def test_same_seed_same_batch_and_different_seed_different_batch(tmp_path):
    with EpisodeStore(tmp_path / "s") as store:
        store.put_many([numbered_episode(i) for i in range(40)])
        a = ReplaySampler(store, predicate=achieved, rng=np.random.default_rng(7)).sample(128)
        b = ReplaySampler(store, predicate=achieved, rng=7).sample(128)
        c = ReplaySampler(store, predicate=achieved, rng=8).sample(128)
    assert a.observations == b.observations and a.goals == b.goals
    assert a.next_observations == b.next_observations
    np.testing.assert_array_equal(a.rewards, b.rewards)
    np.testing.assert_array_equal(a.relabeled, b.relabeled)
    assert a.observations != c.observations


def test_empty_store_and_bad_arguments_are_clear_errors(tmp_path):
    with EpisodeStore(tmp_path / "s") as store:
        with pytest.raises(EmptyReplayError, match="no transitions yet"):
            ReplaySampler(store, predicate=achieved).sample(4)
        store.put(numbered_episode(0))
        with pytest.raises(ValueError, match="batch_size must be >= 1"):
            ReplaySampler(store, predicate=achieved).sample(0)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"her_ratio": 1.5}, "her_ratio"),
            ({"strategy": "past"}, "unknown HER strategy"),
            ({"n_step": 0}, "n_step"),
            ({"gamma": 1.1}, "gamma"),
        ]
        for kwargs, message in cases:
            with pytest.raises(ValueError, match=message):
                ReplaySampler(store, predicate=achieved, **kwargs)


def test_a_corrupt_record_fails_sampling_with_its_episode_id(tmp_path):
    path = tmp_path / "s"
    with EpisodeStore(path) as store:
        store.put(numbered_episode(0))
    broken = bytearray(encode_episode(numbered_episode(0)))
    broken[-2] ^= 0x10
    _raw_put(path, 0, bytes(broken))
    with (
        EpisodeStore(path) as store,
        pytest.raises(CorruptRecordError, match="episode 0 is corrupt"),
    ):
        ReplaySampler(store, predicate=achieved).sample(4)


def _sample_while_writing(path, rounds_seed: int) -> tuple[int, EpisodeStore]:
    errors: list[BaseException] = []
    stop = threading.Event()
    store = EpisodeStore(path, capacity_transitions=2500, map_size=64 * 1024, durable=False)
    store.put_many([numbered_episode(i) for i in range(20)])

    def write() -> None:
        number = 20
        try:
            while not stop.is_set() and number < 600:
                store.put(numbered_episode(number))
                number += 1
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    sampler = ReplaySampler(store, predicate=achieved, her_negatives=0.0, rng=rounds_seed)
    batches = 0
    try:
        while writer.is_alive() or batches < 10:  # samples for as long as the writer writes
            batch = sampler.sample(64)
            batches += 1
            for i in range(len(batch)):
                (number,) = NUMBER.findall(batch.observations[i])
                assert NUMBER.findall(batch.next_observations[i]) == [number]
                assert batch.goals[i] in (f"Grasp item{number}", f"Grasp thing{number}")
                assert batch.relabeled[i] == (batch.goals[i] == f"Grasp thing{number}")
    finally:
        stop.set()
        writer.join()
    assert not errors, errors
    return batches, store


def test_put_in_one_thread_while_another_samples(tmp_path):
    """The collector writes (evicting, growing the map) while the learner samples.

    Each round starts from a small map, so the map is resized several times under
    the sampler's feet; a resize that did not wait for open read transactions
    would fail a sample here.
    """
    for round_ in range(6):
        batches, store = _sample_while_writing(tmp_path / f"s{round_}", round_)
        with store:
            stats = store.stats()
            assert batches >= 10 and stats.next_episode_id == 600
            assert stats.map_size_bytes >= 16 * 64 * 1024 and stats.evicted_episodes > 100
            assert stats.transitions <= 2500
            ids = store.ids()
            assert ids == list(range(ids[0], ids[0] + len(ids)))
            for episode_id in ids[-3:]:
                expected = numbered_episode(episode_id).model_copy(update={"id": episode_id})
                assert store.get(episode_id) == expected


def test_the_sampler_and_the_replay_section_share_one_default_per_setting(tmp_path):
    """A sampler built without a configuration replays as a run with the default section
    does, and from_config carries every replay setting (none falls back to a default)."""
    import inspect

    from autotelic.storage.config import ReplayConfig

    parameters = inspect.signature(ReplaySampler).parameters
    shared = [name for name in ReplayConfig.model_fields if name in parameters]
    assert {"her_ratio", "strategy", "her_negatives", "her_balance", "her_steps_left"} <= set(
        shared
    )
    assert {n: parameters[n].default for n in shared} == {
        n: ReplayConfig.model_fields[n].default for n in shared
    }
    from autotelic.core import env_spec

    spec = env_spec("autotelic/PlaygroundText-v0")
    space = spec.goal_space(spec.config(id=spec.id))
    config = ReplayConfig(
        her_ratio=0.3, strategy="final", her_negatives=0.2, her_balance=False, her_steps_left=True
    )
    with EpisodeStore(tmp_path / "store", durable=False) as store:
        sampler = ReplaySampler.from_config(
            config, store, space, n_step=2, gamma=0.9, time_limit="bootstrap", rng=0
        )
    assert {n: getattr(sampler, n) for n in shared} == {n: getattr(config, n) for n in shared}
    assert (sampler.n_step, sampler.gamma, sampler.time_limit) == (2, 0.9, "bootstrap")
