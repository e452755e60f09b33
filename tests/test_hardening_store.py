"""A damaged episode store: refused with one line, never a signal, salvaged page by page.

Every case damages a copy of a real store (Playground-Text episodes written by
:class:`EpisodeStore`) the way a disk or an operator does: truncation, zeroed pages,
random bytes. The commands run in child processes, so a SIGBUS or SIGSEGV shows as a
failed assertion on the exit status instead of killing pytest. What the salvage must
recover is worked out from the intact file's own pages, read here with ``struct`` alone:
an episode whose leaf page and overflow pages the damage did not touch.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autotelic.storage import EpisodeStore
from autotelic.storage.errors import StorageError, StoreDamagedError
from autotelic.storage.integrity import read_store
from autotelic.storage.salvage import salvage_store
from tests.storage_fixtures import numbered_episode, playground_episode

EPISODES = 135
PAGE = 4096
STATE = {"goals/registry": {"Grasp cow": 3, "Grow carrot": 1}, "injections/abc": [1, 2]}


def _build(store: Path) -> None:
    with EpisodeStore(store, durable=False) as s:
        for i in range(EPISODES):
            s.put(playground_episode(i))
        for key, value in STATE.items():
            s.put_state(key, value)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory whose store holds 135 real episodes and two state keys."""
    run = tmp_path_factory.mktemp("pristine")
    _build(run / "store")
    (run / "store" / "lock.mdb").unlink()
    return run


def _copy(pristine: Path, where: Path) -> Path:
    shutil.copytree(pristine, where)
    return where


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the intact file's pages, read independently of the code under test ----------------------


def _page_map(data: bytes) -> dict[int, set[int]]:
    """Each episode id -> the pages it needs: its leaf page and its overflow pages."""
    u16, u64 = struct.Struct("<H"), struct.Struct("<Q")

    def page(n: int) -> bytes:
        return data[n * PAGE : (n + 1) * PAGE]

    def nodes(p: bytes) -> list[tuple[int, int, int, bytes, bytes]]:
        lower = u16.unpack_from(p, 12)[0]
        out = []
        for i in range((lower - 16) // 2):
            off = u16.unpack_from(p, 16 + 2 * i)[0]
            lo, hi, flags, ksize = struct.unpack_from("<HHHH", p, off)
            key = p[off + 8 : off + 8 + ksize]
            out.append((lo | hi << 16, flags, ksize, key, p[off + 8 + ksize : off + 8 + ksize + 8]))
        return out

    def leaves(root: int) -> list[int]:
        p = page(root)
        if u16.unpack_from(p, 10)[0] & 1:  # branch: child page numbers in lo, hi, flags
            return [c for lo, flags, _, _, _ in nodes(p) for c in leaves(lo | flags << 32)]
        return [root]

    meta = max((page(0), page(1)), key=lambda m: u64.unpack_from(m, 16 + 128)[0])
    main_root = u64.unpack_from(meta, 16 + 72 + 40)[0]
    episodes_root = None
    for leaf in leaves(main_root):
        p = page(leaf)
        lower = u16.unpack_from(p, 12)[0]
        for i in range((lower - 16) // 2):
            off = u16.unpack_from(p, 16 + 2 * i)[0]
            ksize = u16.unpack_from(p, off + 6)[0]
            if p[off + 8 : off + 8 + ksize] == b"episodes":
                episodes_root = u64.unpack_from(p, off + 8 + ksize + 40)[0]
    assert episodes_root is not None
    pages: dict[int, set[int]] = {}
    for leaf in leaves(episodes_root):
        for size, flags, _, key, rest in nodes(page(leaf)):
            (episode_id,) = struct.unpack(">Q", key)
            needed = {leaf}
            if flags & 1:
                first = u64.unpack_from(rest, 0)[0]
                needed |= set(range(first, first + (15 + size) // PAGE + 1))
            pages[episode_id] = needed
    return pages


def _damage(data: Path, rng: random.Random) -> tuple[str, set[int]]:
    """Damage ``data`` at random; returns what was done and the pages it touched."""
    size = data.stat().st_size
    pages = size // PAGE
    kind = rng.choice(["truncate", "zero", "random"])
    raw = bytearray(data.read_bytes())
    if kind == "truncate":
        length = rng.randrange(0, size)
        del raw[length:]
        touched = set(range(length // PAGE, pages))
        what = f"truncated to {length}"
    elif kind == "zero":
        first = rng.choice([0, 1, rng.randrange(pages)])
        count = rng.choice([1, 1, 2, 4])
        raw[first * PAGE : (first + count) * PAGE] = bytes(
            len(raw[first * PAGE : (first + count) * PAGE])
        )
        touched = set(range(first, first + count))
        what = f"pages {first}..{first + count - 1} zeroed"
    else:
        offset = rng.randrange(size)
        length = rng.choice([1, 16, 512, 4096, 65536])
        end = min(size, offset + length)
        raw[offset:end] = rng.randbytes(end - offset)
        touched = set(range(offset // PAGE, (end - 1) // PAGE + 1))
        what = f"{end - offset} random bytes at {offset}"
    data.write_bytes(bytes(raw))
    return what, touched


# -- child processes ----------------------------------------------------------------------


PROBE = """
import json, shutil, sys
from pathlib import Path
from autotelic.storage import EpisodeStore
from autotelic.storage.errors import StorageError, StoreDamagedError
from autotelic.runtime.commands.offline import export_run, salvage_run, verify_run
results = []
for run, out in zip(sys.argv[1::2], sys.argv[2::2]):
    run, out = Path(run), Path(out)
    verified = verify_run(run)
    with (out.parent / (out.name + ".jsonl")).open("w") as sink:
        exported = export_run(run, sink)
    salvaged = salvage_run(run, out)
    writer_copy = out.parent / (out.name + "-writer")
    shutil.copytree(run / "store", writer_copy)
    try:
        EpisodeStore(writer_copy, check_records=True).close()
        writer = "opened"
    except StoreDamagedError:
        writer = "refused"
    shutil.rmtree(writer_copy)
    results.append({
        "writer": writer,
        "damaged": verified.damaged,
        "verified": verified.episodes,
        "exported": exported.episodes,
        "export_damaged": exported.damaged,
        "salvaged": salvaged.episodes,
        "unreadable": salvaged.unreadable,
    })
    print(json.dumps(results[-1]), flush=True)
"""


def _child(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=Path(__file__).parent.parent,
    )


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autotelic", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _salvaged_ids(store: Path) -> list[int]:
    with EpisodeStore(store, readonly=True) as s:
        return s.ids()


# -- tests ----------------------------------------------------------------------------------


def test_the_independent_page_map_covers_every_episode(pristine: Path) -> None:
    pages = _page_map((pristine / "store" / "data.mdb").read_bytes())
    assert sorted(pages) == list(range(EPISODES))
    assert any(len(p) > 1 for p in pages.values())  # some records live on overflow pages


@pytest.mark.parametrize("length", [12 * 1024, None])
def test_a_truncated_store_is_refused_in_one_line_by_stats_and_by_a_writer(
    pristine: Path, tmp_path: Path, length: int | None
) -> None:
    run = _copy(pristine, tmp_path / "run")
    data = run / "store" / "data.mdb"
    with data.open("r+b") as f:
        f.truncate(length if length is not None else data.stat().st_size // 2)
    before = _digest(data)
    stats = _cli("replay", "stats", "--run", str(run))
    assert stats.returncode == 2, stats
    lines = stats.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stats.stderr
    assert f"{data} is damaged" in lines[0] and "truncated" in lines[0]
    assert f"autotelic replay salvage --run {run} --out" in lines[0]
    writer = _child(
        "import sys; from autotelic.storage import EpisodeStore; EpisodeStore(sys.argv[1])",
        str(run / "store"),
    )
    assert writer.returncode == 1 and "StoreDamagedError" in writer.stderr, writer.stderr
    assert _digest(data) == before


def test_zeroed_meta_pages_are_refused_and_every_episode_salvaged(
    pristine: Path, tmp_path: Path
) -> None:
    run = _copy(pristine, tmp_path / "run")
    data = run / "store" / "data.mdb"
    with data.open("r+b") as f:
        f.write(bytes(2 * PAGE))
    before = _digest(data)
    stats = _cli("replay", "stats", "--run", str(run))
    assert stats.returncode == 2 and len(stats.stderr.strip().splitlines()) == 1, stats
    assert "not an LMDB meta page" in stats.stderr and "MDB_INVALID" not in stats.stderr
    salvage = _cli("replay", "salvage", "--run", str(run), "--out", str(tmp_path / "new"))
    assert salvage.returncode == 0, salvage.stderr
    assert f"salvaged {EPISODES} episodes" in salvage.stdout
    assert _salvaged_ids(tmp_path / "new" / "store") == list(range(EPISODES))
    assert _digest(data) == before


def test_random_bytes_mid_file_are_not_reported_healthy_and_the_rest_is_salvaged(
    pristine: Path, tmp_path: Path
) -> None:
    run = _copy(pristine, tmp_path / "run")
    data = run / "store" / "data.mdb"
    raw = bytearray(data.read_bytes())
    lost_pages = set(range(40, 56))
    raw[40 * PAGE : 56 * PAGE] = random.Random(3).randbytes(16 * PAGE)
    data.write_bytes(bytes(raw))
    before = _digest(data)
    pages = _page_map((pristine / "store" / "data.mdb").read_bytes())
    intact = {i for i, p in pages.items() if not p & lost_pages}
    assert 0 < len(intact) < EPISODES

    stats = _cli("replay", "stats", "--run", str(run))
    assert stats.returncode != 0 and "damaged" in stats.stderr and stats.stdout == ""
    export = _cli("replay", "export", "--run", str(run), "--out", str(tmp_path / "e.jsonl"))
    assert export.returncode == 1, export.stderr
    assert len(export.stderr.strip().splitlines()) <= 3 and "Traceback" not in export.stderr
    exported = {json.loads(line)["id"] for line in (tmp_path / "e.jsonl").read_text().splitlines()}
    assert exported >= intact
    assert "unreadable (ids" in export.stderr

    salvage = _cli("replay", "salvage", "--run", str(run), "--out", str(tmp_path / "new"))
    assert salvage.returncode == 0, salvage.stderr
    assert set(_salvaged_ids(tmp_path / "new" / "store")) == exported
    verify = _cli("replay", "verify", "--run", str(tmp_path / "new"))
    assert verify.returncode == 0 and "all readable" in verify.stdout, verify
    assert _digest(data) == before


def test_salvage_keeps_ids_state_and_the_id_counter(pristine: Path, tmp_path: Path) -> None:
    run = _copy(pristine, tmp_path / "run")
    data = run / "store" / "data.mdb"
    lost = _page_map(data.read_bytes())[7]
    raw = bytearray(data.read_bytes())
    for page in lost:
        raw[page * PAGE + 100 : page * PAGE + 200] = bytes(100)
    data.write_bytes(bytes(raw))
    report = salvage_store(run / "store", tmp_path / "new")
    assert 7 in report.unreadable and report.state_keys == len(STATE)
    with EpisodeStore(tmp_path / "new", check_records=True) as store:
        assert 7 not in store.ids() and 8 in store.ids()
        assert store.get(8) == playground_episode(8).model_copy(update={"id": 8})
        assert {k: store.get_state(k) for k in STATE} == STATE
        assert store.put(numbered_episode(0)) == EPISODES  # ids go on where they stopped


def test_a_checksum_failure_inside_a_record_is_found_by_stats_and_refused_by_a_checking_writer(
    pristine: Path, tmp_path: Path
) -> None:
    run = _copy(pristine, tmp_path / "run")
    data = run / "store" / "data.mdb"
    pages = _page_map(data.read_bytes())
    victim = next(i for i, p in sorted(pages.items()) if len(p) > 1)
    overflow = max(pages[victim])
    raw = bytearray(data.read_bytes())
    raw[overflow * PAGE + 64] ^= 0xFF  # inside the value: every page stays well formed
    data.write_bytes(bytes(raw))
    stats = _cli("replay", "stats", "--run", str(run))
    assert stats.returncode == 1
    assert json.loads(stats.stdout)["unreadable_episodes"] == [victim]
    assert f"ids {victim})" in stats.stderr and "replay salvage" in stats.stderr
    with pytest.raises(StoreDamagedError, match="1 episodes fail their checksum"):
        EpisodeStore(run / "store", check_records=True)
    assert read_store(run / "store").unreadable == [victim]


def test_random_damage_never_ends_in_a_signal_and_salvage_keeps_every_intact_episode(
    pristine: Path, tmp_path: Path
) -> None:
    _fuzz(pristine, tmp_path, copies=12, seed=2024)


@pytest.mark.slow
def test_two_hundred_damaged_copies(pristine: Path, tmp_path: Path) -> None:
    _fuzz(pristine, tmp_path, copies=200, seed=7, cli=True)


def _fuzz(pristine: Path, tmp_path: Path, copies: int, seed: int, cli: bool = False) -> None:
    rng = random.Random(seed)
    pages = _page_map((pristine / "store" / "data.mdb").read_bytes())
    cases = []
    for n in range(copies):
        run = _copy(pristine, tmp_path / f"c{n}")
        what, touched = _damage(run / "store" / "data.mdb", rng)
        intact = {i for i, p in pages.items() if not p & touched}
        cases.append((run, what, intact, _digest(run / "store" / "data.mdb")))
    args = [str(a) for run, *_ in cases for a in (run, run.parent / f"{run.name}-salvaged")]
    probe = _child(PROBE, *args, timeout=900)
    assert probe.returncode == 0, (probe.returncode, probe.stderr[-2000:])
    results = [json.loads(line) for line in probe.stdout.splitlines()]
    assert len(results) == copies
    for (run, what, intact, digest), result in zip(cases, results, strict=True):
        salvaged = set(_salvaged_ids(run.parent / f"{run.name}-salvaged" / "store"))
        assert salvaged >= intact, (what, sorted(intact - salvaged))
        assert result["exported"] == result["verified"] == len(salvaged), (what, result)
        assert result["damaged"] == result["export_damaged"]
        assert result["writer"] == ("refused" if result["damaged"] else "opened"), (what, result)
        if len(intact) < EPISODES and salvaged != set(range(EPISODES)):
            assert result["damaged"], what
        assert _digest(run / "store" / "data.mdb") == digest, what
        if cli:
            for command in (["stats"], ["verify"], ["export", "--out", str(run / "x.jsonl")]):
                done = _cli("replay", *command, "--run", str(run))
                assert 0 <= done.returncode < 128, (what, command, done)
                assert len(done.stderr.strip().splitlines()) <= 3, (what, command, done.stderr)
                assert "Traceback" not in done.stderr, (what, command, done.stderr)
            assert _digest(run / "store" / "data.mdb") == digest, what


def test_a_reader_beside_a_busy_writer_never_sees_damage(tmp_path: Path) -> None:
    """The structure check runs under a read transaction: a writer in another process
    cannot reuse the pages being checked, so a healthy live store is never called damaged."""
    path = tmp_path / "live"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.storage_fixtures",
            "writer",
            str(path),
            "400",
            "fast",
            "65536",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "open"
        stop = time.monotonic() + 8
        opened = 0
        done = threading.Event()

        def drain() -> None:
            assert writer.stdout is not None
            for _ in writer.stdout:
                if done.is_set():
                    return

        threading.Thread(target=drain, daemon=True).start()
        while time.monotonic() < stop:
            with EpisodeStore(path, readonly=True) as store:
                assert store.stats(check=True).unreadable_episodes == []
            opened += 1
        done.set()
        assert opened >= 3
        assert writer.poll() is None
    finally:
        writer.kill()
        writer.wait(timeout=10)


def test_the_service_refuses_a_damaged_store_naming_the_salvage_command(
    pristine: Path, tmp_path: Path
) -> None:
    import yaml

    run = _copy(pristine, tmp_path / "run")
    data = run / "store" / "data.mdb"
    with data.open("r+b") as f:
        f.truncate(data.stat().st_size // 2)
    before = _digest(data)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "run": {"dir": str(run)},
                "model": {"path": "tiny-causal"},
                "metrics": {"port": 0},
                "service": {"mqtt_enabled": False},
            }
        )
    )
    done = _cli("run", "-c", str(config), timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert f"{data} is damaged" in line
    assert f"autotelic replay salvage --run {run} --out" in line
    assert _digest(data) == before


def test_an_empty_data_file_is_a_new_store_not_a_damaged_one(tmp_path: Path) -> None:
    """What a writer killed before its first commit leaves: LMDB starts it afresh."""
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "data.mdb").touch()
    with pytest.raises(StorageError, match="never initialised"):
        EpisodeStore(tmp_path / "s", readonly=True)
    with EpisodeStore(tmp_path / "s") as store:
        assert store.put(numbered_episode(1)) == 0
    with EpisodeStore(tmp_path / "s", readonly=True) as store:
        assert store.ids() == [0]
