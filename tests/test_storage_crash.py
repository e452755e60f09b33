"""Crash safety and other processes: kill -9 while writing, a full disk, concurrent readers.

The writer runs in a real child process (``python -m tests.storage_fixtures``)
that prints each episode id after ``put`` returned; ``numbered_episode(id)`` is
its content, so the parent can check every stored episode byte for byte.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autotelic.storage import Episode, EpisodeStore
from tests.storage_fixtures import numbered_episode

ROOT = Path(__file__).resolve().parents[1]


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.storage_fixtures", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_at_random(proc: subprocess.Popen[str], rng: random.Random) -> list[int]:
    """SIGKILL the writer at a random moment; return the ids it acknowledged."""
    assert proc.stdout is not None
    lines: list[str] = []
    if rng.random() < 0.3:
        time.sleep(rng.uniform(0.0, 0.5))  # may land while it starts or opens the store
    else:
        wait_for = rng.randint(1, 60)
        while len(lines) < wait_for:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        time.sleep(rng.uniform(0.0, 0.003))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rest = proc.stdout.read()
    proc.stdout.close()
    assert proc.stderr is not None
    errors = proc.stderr.read()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, errors
    # Only whole lines were acknowledged; a line cut by the kill is not.
    text = "".join(lines) + rest
    complete = text[: text.rfind("\n") + 1]
    return [int(x) for x in complete.split() if x != "open"]


def _check_store(path: Path, acknowledged: set[int], capacity: int) -> int:
    """Open like a restarting runtime and check every acknowledged, unevicted episode."""
    with EpisodeStore(path, capacity_transitions=capacity) as store:
        stats = store.stats()
        ids = store.ids()
        if ids:
            # Whole-episode eviction of the oldest and monotonic ids: no holes, ever.
            assert ids == list(range(ids[0], stats.next_episode_id))
        assert stats.episodes == len(ids)
        assert stats.transitions == store.num_transitions <= capacity
        oldest = ids[0] if ids else stats.next_episode_id
        for episode_id in acknowledged:
            if episode_id >= oldest:  # acknowledged and not legitimately evicted
                assert episode_id in store
        # Every stored episode, acknowledged or committed just before the kill, is whole.
        stored = list(store.iter_episodes())
        assert [e.id for e in stored] == ids
        for episode in stored:
            assert episode.id is not None
            expected: Episode = numbered_episode(episode.id).model_copy(update={"id": episode.id})
            assert episode == expected
        assert store.index_snapshot().lengths.tolist() == [e.length for e in stored]
        return stats.next_episode_id


def _kill_loop(tmp_path: Path, kills: int, durable: bool, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "store"
    capacity = 1500
    acknowledged: set[int] = set()
    for _ in range(kills):
        proc = _child(
            "writer", str(path), str(capacity), "durable" if durable else "fast", str(64 * 1024)
        )
        acknowledged.update(_kill_at_random(proc, rng))
        next_id = _check_store(path, acknowledged, capacity)
        assert max(acknowledged, default=-1) < next_id
    assert len(acknowledged) > kills  # the writer did make progress between kills
    with EpisodeStore(path, readonly=True) as store:
        assert store.stats().evicted_episodes > 0  # kills also hit stores that were evicting


def test_kill_9_while_writing_loses_no_acknowledged_episode(tmp_path):
    _kill_loop(tmp_path, kills=20, durable=True, seed=20240)


@pytest.mark.slow
@pytest.mark.parametrize("durable", [True, False])
def test_kill_9_many_times(tmp_path, durable):
    # The fast mode is also kill -9 safe: commits reach the OS even if not the disk.
    _kill_loop(tmp_path, kills=100, durable=durable, seed=7 + durable)


def test_a_full_disk_raises_storage_full_and_keeps_what_was_stored(tmp_path):
    path = tmp_path / "store"
    proc = _child("fill", str(path), str(400 * 1024))  # the child's file-size limit
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    acknowledged = [int(line.split()[1]) for line in lines if line.startswith("ok ")]
    assert lines[-1].startswith("full ")
    assert "disk is full or the file reached its size limit" in lines[-1]
    assert "everything stored before it is intact" in lines[-1]
    assert len(acknowledged) > 20
    with EpisodeStore(path) as store:  # without the limit: all there, and writable again
        assert store.ids() == acknowledged
        for episode_id in acknowledged:
            assert store.get(episode_id) == numbered_episode(episode_id).model_copy(
                update={"id": episode_id}
            )
        assert store.put(numbered_episode(len(acknowledged))) == len(acknowledged)


def test_another_process_reads_stats_and_exports_while_the_writer_runs(tmp_path):
    path = tmp_path / "store"
    writer = _child("writer", str(path), "1000000", "durable", str(64 * 1024))
    try:
        assert writer.stdout is not None
        seen = 0
        for _ in range(3):
            for _ in range(40):  # let it write (and grow its map) between reads
                assert writer.stdout.readline()
                seen += 1
            reader = subprocess.run(
                [sys.executable, "-m", "tests.storage_fixtures", "read", str(path)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert reader.returncode == 0, reader.stderr
            head, exported, *lines = reader.stdout.splitlines()
            _, episodes, transitions, next_id = head.split()
            _, count, count_lines = exported.split()
            assert int(next_id) >= seen - 1 and int(episodes) == int(next_id)
            # The export started later than the stats, so it saw at least as many episodes.
            assert int(count) == int(count_lines) == len(lines) >= int(episodes)
            for line in lines:
                episode = Episode.model_validate_json(line)
                assert episode.id is not None
                assert episode == numbered_episode(episode.id).model_copy(update={"id": episode.id})
            assert [json.loads(line)["id"] for line in lines] == list(range(len(lines)))
            assert int(transitions) > 0
        assert writer.poll() is None  # the writer never noticed
    finally:
        writer.kill()
        writer.wait()
        for stream in (writer.stdout, writer.stderr):
            if stream is not None:
                stream.close()
    assert os.path.isdir(path)
