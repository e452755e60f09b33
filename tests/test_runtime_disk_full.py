"""A disk that fills up under a running service: the store refuses cleanly, the service
says offline with the reason and exits non-zero; once space returns it resumes with every
stored episode."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotelic.runtime.config import deep_merge
from autotelic.runtime.transport.messages import Topics
from autotelic.storage import EpisodeStore
from tests.runtime_fixtures import TINY_SERVICE, Mosquitto, Probe, ServiceProcess
from tests.tmpfs_fixtures import mounted_tmpfs

AGENT = "full"
TOPICS = Topics(AGENT)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs (the test fills it), mounted for this test only."""
    with mounted_tmpfs(tmp_path / "disk", "size=64m") as disk:
        yield disk


def fill(disk: Path, leave: int) -> Path:
    """Write a file that leaves at most ``leave`` bytes free on ``disk`` (the running service
    writes too: if it takes the last bytes first, the disk is just as full)."""
    filler = disk / "filler"
    chunk = b"\0" * (1 << 16)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while (free := shutil.disk_usage(disk).free) > leave:
            os.write(fd, chunk[: max(1, min(len(chunk), free - leave))])
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_stops_the_service_cleanly_and_a_restart_loses_nothing(
    small_disk: Path, mosquitto: Mosquitto
) -> None:
    run_dir = small_disk / "run"
    config = deep_merge(
        TINY_SERVICE,
        {
            "run": {"agent": AGENT, "dir": str(run_dir)},
            "mqtt": {"url": mosquitto.url},
            "replay": {"durable": True},
            "checkpoint": {"interval_s": 1},
        },
    )
    service = ServiceProcess(small_disk.parent, config)  # its log stays off the small disk
    service.run_dir = run_dir
    probe = Probe(mosquitto.port, [TOPICS.status, TOPICS.episodes])
    try:
        service.start()
        service.wait_connected()
        service.wait_for(
            lambda: (
                sum(
                    v
                    for k, v in service.metrics().items()
                    if k.startswith("autotelic_episodes_total")
                )
                > 30
            ),
            what="episodes",
        )
        filler = fill(small_disk, leave=64 * 1024)
        assert service.proc is not None
        code = service.proc.wait(timeout=120)
        assert code != 0, service.tail()
        assert "full" in service.tail(80).lower()
        offline = None
        announced = set()
        while True:
            try:
                topic, message, _ = probe.next(timeout=5)
            except TimeoutError:
                break
            if topic == TOPICS.episodes:
                announced.add(message["episode_id"])
            elif message.get("state") == "offline":
                offline = message
        assert offline is not None and "StorageFullError" in (offline.get("reason") or "")
        with EpisodeStore(run_dir / "store", readonly=True) as store:
            stored = set(store.ids())
        assert announced and announced <= stored  # announced only once durable

        filler.unlink()  # space returns
        service.start()
        service.wait_connected()
        with EpisodeStore(run_dir / "store", readonly=True) as store:
            assert stored <= set(store.ids())
        assert "restart 1 at" in service.tail(200)
        assert service.terminate() == 0
    finally:
        probe.close()
        if service.alive():
            service.kill()


def test_a_full_disk_under_a_run_log_raises_storage_full_and_leaves_no_half_row(
    small_disk: Path,
) -> None:
    """A telemetry CSV (learner stats, evaluations) may be the write that meets the full
    disk first: it stops the run as the store does, and its file keeps whole rows only."""
    from autotelic.runtime.telemetry.run_logs import CsvLog
    from autotelic.storage.errors import StorageFullError

    log = CsvLog(small_disk / "learner_stats.csv", ["step", "key", "value"])
    try:
        log.append([{"step": 1, "key": "loss", "value": 0.5}])
        before = (small_disk / "learner_stats.csv").read_bytes()
        fill(small_disk, leave=0)
        rows = [{"step": 2, "key": "k" * 1000, "value": i} for i in range(2000)]  # ~2 MB
        with pytest.raises(StorageFullError, match="the disk is full"):
            log.append(rows)
        assert (small_disk / "learner_stats.csv").read_bytes() == before
    finally:
        log.close()
