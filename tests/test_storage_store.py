"""The LMDB episode store on real LMDB files: round trips, capacity, growth, state, errors."""

from __future__ import annotations

import io
import json
import struct
import zlib

import lmdb
import msgpack
import numpy as np
import pytest

from autotelic.storage import (
    CorruptRecordError,
    Episode,
    EpisodeNotFoundError,
    EpisodeStore,
    SchemaVersionError,
    StorageError,
    StorageFullError,
    StoreLockedError,
)
from autotelic.storage.records import encode_episode
from autotelic.storage.store import episode_key
from tests.storage_fixtures import hand_episode, numbered_episode, playground_episode


def _with_id(episode: Episode, episode_id: int) -> Episode:
    return episode.model_copy(update={"id": episode_id})


def test_put_get_round_trip_with_unicode_and_monotonic_ids(tmp_path):
    episodes = [
        hand_episode([["Grasp 牛"], []], goal="Grasp ünïcødé", tag="漢字 \U0001f600 "),
        playground_episode(1, source="injected"),
        playground_episode(2, source="discovered"),
    ]
    with EpisodeStore(tmp_path / "s") as store:
        ids = [store.put(e) for e in episodes]
        assert ids == [0, 1, 2]
        for i, e in zip(ids, episodes, strict=True):
            assert store.get(i) == _with_id(e, i)
        assert store.ids() == ids and len(store) == 3
        assert store.num_transitions == sum(e.length for e in episodes)
        assert 1 in store and 99 not in store and "1" not in store
        with pytest.raises(EpisodeNotFoundError, match="episode 99 is not in the store"):
            store.get(99)
    with EpisodeStore(tmp_path / "s") as store:  # durable across reopen; ids continue
        assert [e.id for e in store.iter_episodes()] == ids
        assert store.get(1) == _with_id(episodes[1], 1)
        assert store.put(episodes[0]) == 3


def test_put_many_is_one_batch_with_consecutive_ids(tmp_path):
    episodes = [numbered_episode(i) for i in range(10)]
    with EpisodeStore(tmp_path / "s") as store:
        assert store.put_many(episodes[:4]) == [0, 1, 2, 3]
        assert store.put_many(episodes[4:]) == list(range(4, 10))
        assert [store.get(i) for i in range(10)] == [_with_id(e, i) for i, e in enumerate(episodes)]
        with pytest.raises(TypeError, match="item 1 is a dict"):
            store.put_many([episodes[0], {"goal": "x"}])  # type: ignore[list-item]
        assert len(store) == 10


def test_eviction_drops_whole_oldest_episodes_and_keeps_the_newest(tmp_path):
    episodes = [numbered_episode(i) for i in range(60)]
    capacity = 100
    with EpisodeStore(tmp_path / "s", capacity_transitions=capacity) as store:
        for e in episodes:
            store.put(e)
            assert store.num_transitions <= capacity
        kept = store.ids()
        # The newest episodes are kept, contiguously, and the oldest kept one was needed:
        assert kept == list(range(kept[0], 60))
        lengths = [episodes[i].length for i in kept]
        assert sum(lengths) <= capacity < sum(lengths) + episodes[kept[0] - 1].length
        for i in kept:
            assert store.get(i) == _with_id(episodes[i], i)
        for i in range(kept[0]):
            assert i not in store
        stats = store.stats()
        assert stats.episodes == len(kept) and stats.transitions == sum(lengths)
        assert stats.evicted_episodes == kept[0] and stats.oldest_episode_id == kept[0]
        with pytest.raises(ValueError, match="do not fit in a store of capacity 100"):
            store.put(hand_episode([[]] * 101))


def test_reopening_with_a_smaller_capacity_evicts_at_once(tmp_path):
    with EpisodeStore(tmp_path / "s", capacity_transitions=1000) as store:
        store.put_many([numbered_episode(i) for i in range(40)])
        before = store.num_transitions
    with EpisodeStore(tmp_path / "s", capacity_transitions=50) as store:
        assert before > 50 >= store.num_transitions
        assert store.stats().capacity_transitions == 50
        assert store.ids()[-1] == 39


def test_the_index_after_reopen_equals_the_index_before(tmp_path):
    with EpisodeStore(tmp_path / "s", capacity_transitions=200) as store:
        for i in range(80):
            store.put(numbered_episode(i))
        before = store.index_snapshot()
    with EpisodeStore(tmp_path / "s", capacity_transitions=200) as store:
        after = store.index_snapshot()
    assert before.num_episodes > 5 and before.ids[0] > 0  # eviction happened
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.lengths, before.lengths)
    np.testing.assert_array_equal(after.starts - after.starts[0], before.starts - before.starts[0])
    assert after.num_transitions == before.num_transitions


def test_a_full_map_grows_without_losing_the_write(tmp_path):
    episodes = [playground_episode(i) for i in range(150)]
    with EpisodeStore(tmp_path / "s", map_size=64 * 1024) as store:
        ids = [store.put(e) for e in episodes]
        stats = store.stats()
        assert stats.map_size_bytes > 64 * 1024  # it had to grow
        assert [store.get(i) for i in ids] == [
            _with_id(e, i) for i, e in zip(ids, episodes, strict=True)
        ]
        assert stats.used_bytes <= stats.map_size_bytes and stats.size_on_disk_bytes > 0


def test_a_map_at_its_maximum_raises_storage_full_and_damages_nothing(tmp_path):
    store = EpisodeStore(tmp_path / "s", map_size=64 * 1024, max_map_size=128 * 1024)
    acked = {}
    with pytest.raises(StorageFullError, match="max_map_size=131072") as info:
        for i in range(10_000):
            acked[store.put(numbered_episode(i))] = i
    assert "intact" in str(info.value)
    assert len(acked) > 5
    for episode_id, number in acked.items():
        assert store.get(episode_id) == _with_id(numbered_episode(number), episode_id)
    assert store.stats().episodes == len(acked)
    store.close()
    with EpisodeStore(tmp_path / "s", max_map_size=4 * 2**20) as store:  # more room: writes again
        assert len(store) == len(acked)
        new_id = store.put(numbered_episode(1))
        assert new_id == len(acked)


def test_state_area_round_trips_values_and_survives_reopen(tmp_path):
    value = {"goals": {"Grasp cow": [0.5, 3, None, True]}, "n": 2**40, "s": "ünï", "l": []}
    with EpisodeStore(tmp_path / "s", durable=False) as store:
        assert store.get_state("curriculum") is None
        store.put_state("curriculum", value)
        store.put_state("counters", 7)
        store.put_state("counters", 8)
        assert store.get_state("curriculum") == value
        assert store.state_keys() == ["counters", "curriculum"]
    with EpisodeStore(tmp_path / "s", readonly=True) as store:
        assert store.get_state("curriculum") == value and store.get_state("counters") == 8
        assert store.stats().state_keys == 2


def test_several_state_keys_are_put_and_deleted_in_one_write_and_listed_by_prefix(tmp_path):
    with EpisodeStore(tmp_path / "s") as store:
        store.put_states({"q": 1, "out/0001": "a", "out/0002": "b", "outx": 0})
        assert store.state_keys("out/") == ["out/0001", "out/0002"]
        assert store.state_keys() == ["out/0001", "out/0002", "outx", "q"]
        store.put_states({"q": 2, "out/0003": "c"}, delete=["out/0001", "never-there"])
        store.delete_state("outx")
        store.delete_state("outx")  # absent: no error
        with pytest.raises(ValueError, match=r"state\[.bad.\]: nan is not a finite"):
            store.put_states({"q": 3, "bad": float("nan")}, delete=["out/0002"])
        assert store.state_keys("out/") == ["out/0002", "out/0003"]  # the failed write left all
        assert store.get_state("q") == 2
        assert store.state_keys("zzz") == []
    with EpisodeStore(tmp_path / "s", readonly=True) as store:
        assert store.state_keys() == ["out/0002", "out/0003", "q"]
        assert [store.get_state(k) for k in store.state_keys("out/")] == ["b", "c"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("", 1, "non-empty str"),
        ("k" * 401, 1, "exceeds 400"),
        ("k", {"a": object()}, r"state\['k'\]\['a'\]: object cannot be stored"),
        ("k", float("inf"), "not a finite number"),
        ("k", 2**70, "does not fit in 64 bits"),
        ("k", np.float32(1.0), "float32 cannot be stored"),
    ],
)
def test_bad_state_is_refused_with_a_clear_error(tmp_path, key, value, message):
    with EpisodeStore(tmp_path / "s") as store:
        with pytest.raises(ValueError, match=message):
            store.put_state(key, value)
        assert store.state_keys() == []


def test_one_writer_per_store_and_no_double_open_in_one_process(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "s"
    with EpisodeStore(path) as store:
        store.put(numbered_episode(0))
        with pytest.raises(StoreLockedError, match="already open in this process"):
            EpisodeStore(path, readonly=True)
        code = (
            "import sys\n"
            "from autotelic.storage import EpisodeStore, StoreLockedError\n"
            "try:\n"
            f"    EpisodeStore({str(path)!r})\n"
            "except StoreLockedError as e:\n"
            "    print('locked:', e)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert "locked: another process is writing" in out.stdout
    with EpisodeStore(path) as store:  # released on close
        assert len(store) == 1


def test_readonly_handle_refuses_writes_and_missing_stores_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no episode store"):
        EpisodeStore(tmp_path / "nothing", readonly=True)
    with EpisodeStore(tmp_path / "s") as store:
        store.put(numbered_episode(0))
    with EpisodeStore(tmp_path / "s", readonly=True) as store:
        with pytest.raises(StorageError, match="read-only"):
            store.put(numbered_episode(1))
        with pytest.raises(StorageError, match="read-only"):
            store.put_state("k", 1)
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.get(0)


def test_export_jsonl_writes_every_episode_with_its_id(tmp_path):
    episodes = [numbered_episode(i) for i in range(12)]
    with EpisodeStore(tmp_path / "s") as store:
        store.put_many(episodes)
        out = io.StringIO()
        assert store.export_jsonl(out, start_id=3, end_id=9) == 6
        lines = out.getvalue().splitlines()
        assert [json.loads(line)["id"] for line in lines] == list(range(3, 9))
        assert Episode.model_validate_json(lines[0]) == _with_id(episodes[3], 3)
        assert store.export_jsonl(tmp_path / "all.jsonl") == 12
    text = (tmp_path / "all.jsonl").read_text(encoding="utf-8")
    assert "é漢字" in text and len(text.splitlines()) == 12


def test_iteration_crosses_read_chunks(tmp_path):
    with EpisodeStore(tmp_path / "s") as store:
        store.put_many([numbered_episode(i) for i in range(150)])
        assert [e.id for e in store.iter_episodes()] == list(range(150))
        assert [e.id for e in store.iter_episodes(start_id=63, end_id=130)] == list(range(63, 130))


def _raw_put(path, episode_id: int, value: bytes) -> None:
    env = lmdb.open(str(path), max_dbs=4)
    try:
        db = env.open_db(b"episodes")
        with env.begin(write=True) as txn:
            txn.put(episode_key(episode_id), value, db=db)
    finally:
        env.close()


def test_corrupt_record_on_disk_is_reported_with_its_id(tmp_path):
    path = tmp_path / "s"
    with EpisodeStore(path) as store:
        store.put_many([numbered_episode(i) for i in range(3)])
    value = bytearray(encode_episode(numbered_episode(1)))
    value[20] ^= 0xFF
    _raw_put(path, 1, bytes(value))
    with EpisodeStore(path) as store:
        assert store.get(0).id == 0
        with pytest.raises(CorruptRecordError, match="episode 1 is corrupt: checksum mismatch"):
            store.get(1)
        with pytest.raises(CorruptRecordError, match="episode 1"):
            list(store.iter_episodes())


def test_a_record_from_a_newer_schema_gives_a_clear_error(tmp_path):
    path = tmp_path / "s"
    with EpisodeStore(path) as store:
        store.put(numbered_episode(0))
    body = bytearray(encode_episode(numbered_episode(0))[4:])
    (size,) = struct.unpack(">I", body[:4])
    header = msgpack.unpackb(bytes(body[4 : 4 + size]))
    header["v"] = 99
    packed = msgpack.packb(header)
    new_body = struct.pack(">I", len(packed)) + packed + bytes(body[4 + size :])
    _raw_put(path, 0, struct.pack(">I", zlib.crc32(new_body)) + new_body)
    with (
        EpisodeStore(path) as store,
        pytest.raises(SchemaVersionError, match="episode 0 was written with schema version 99"),
    ):
        store.get(0)


def test_a_store_from_a_newer_format_is_refused_at_open(tmp_path):
    path = tmp_path / "s"
    EpisodeStore(path).close()
    env = lmdb.open(str(path), max_dbs=4)
    meta = msgpack.packb({"v": 7, "next_id": 0})
    db = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(b"meta", struct.pack(">I", zlib.crc32(meta)) + meta, db=db)
    env.close()
    with pytest.raises(SchemaVersionError, match="schema version 7"):
        EpisodeStore(path)
    with EpisodeStore(path.parent / "other") as store:  # a failed open leaves nothing locked
        assert len(store) == 0
