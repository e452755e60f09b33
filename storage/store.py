"""The LMDB episode store: one environment directory per run.

Layout (named sub-databases of one environment; a process must not open an LMDB
environment twice, so everything durable that is not a checkpoint lives here):

* ``episodes``: 8-byte big-endian episode id -> framed episode record. Big-endian
  keys sort numerically, so LMDB's key order is storage order (age).
* ``lengths``: the same keys -> 4-byte transition count. The replay index is
  rebuilt on open from this small table alone, without decoding any episode.
* ``state``: UTF-8 key -> framed value; the generic area for the curriculum,
  the goal registry and runtime counters (:meth:`EpisodeStore.get_state`).
* ``meta``: counters (next id, transitions, evicted) and the store format version.

Durability. With ``durable=True`` (the default) LMDB syncs data, then the meta
page, at every commit (``sync=True, metasync=True``): when :meth:`EpisodeStore.put`
returns, the episode survives a process kill, an OS crash and a power cut.
``durable=False`` opens with ``sync=False``: commits reach the OS page cache but
are not flushed, which is several times faster per put; a killed process still
loses nothing, but an OS crash or power cut can lose the latest commits (call
:meth:`EpisodeStore.sync` to flush). ``writemap`` stays off in both modes so a
stray write in the process can never scribble on the database.

Concurrency. One writer process per store (enforced with a lock file), any
number of read-only processes (``readonly=True``; LMDB's lock file coordinates
them). Inside the writer process, ``put`` and ``put_state`` may run on one thread
while ``sample``/``get`` run on others: every transaction holds the shared side
of a lock whose exclusive side is taken only to grow the map, because py-lmdb's
``set_mapsize`` aborts every transaction open in the process. A forked child must
not use its parent's store: open a new one in the child.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import resource
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import lmdb
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from autotelic.storage.codec import (
    check_packable,
    check_version,
    checked_body,
    frame,
    gc_paused,
    unframe,
)
from autotelic.storage.errors import (
    FULL_ERRNOS,
    CorruptRecordError,
    EpisodeNotFoundError,
    StorageError,
    StorageFullError,
    StorageWriteError,
    StoreDamagedError,
    StoreLockedError,
    out_of_space,
)
from autotelic.storage.index import IndexSnapshot, TransitionIndex
from autotelic.storage.integrity import check_before_open, structure_problems
from autotelic.storage.records import (
    SCHEMA_VERSION,
    Episode,
    EpisodeView,
    decode_episode,
    decode_view,
    encode_episode,
)
from autotelic.storage.rwlock import SharedExclusiveLock

STORE_FORMAT_VERSION = 1
"""Version of the sub-database layout; a newer one on disk is refused at open."""

DEFAULT_CAPACITY_TRANSITIONS = 500_000
DEFAULT_MAP_SIZE = 64 * 2**20

_KEY = struct.Struct(">Q")
_LENGTH = struct.Struct(">I")
_META_KEY = b"meta"
_MAX_STATE_KEY_BYTES = 400
_ITER_CHUNK = 64
_WRITER_LOCK = "writer.lock"
_MAX_READERS = 126  # LMDB reader slots: concurrent read transactions across all processes
_DAMAGE_ERRORS: tuple[type[lmdb.Error], ...] = (
    lmdb.CorruptedError,
    lmdb.PageNotFoundError,
    lmdb.InvalidError,
    lmdb.VersionMismatchError,
    lmdb.BadValsizeError,
)
"""What LMDB raises when the pages it reads are not what it wrote."""

_open_paths: set[str] = set()
_open_paths_lock = threading.Lock()

T = TypeVar("T")


def episode_key(episode_id: int) -> bytes:
    """The LMDB key of an episode id (big-endian, so key order is id order)."""
    try:
        return _KEY.pack(episode_id)
    except struct.error:
        raise EpisodeNotFoundError(episode_id) from None


class StoreStats(BaseModel):
    """What is stored and what it costs, as read from one consistent transaction."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="Directory of the LMDB environment.")
    episodes: int = Field(description="Episodes stored now.")
    transitions: int = Field(description="Transitions stored now (sum of episode lengths).")
    capacity_transitions: int = Field(description="Transitions kept before evicting the oldest.")
    next_episode_id: int = Field(description="Id the next episode will get (= episodes ever put).")
    oldest_episode_id: int | None = Field(description="Id of the oldest stored episode.")
    newest_episode_id: int | None = Field(description="Id of the newest stored episode.")
    evicted_episodes: int = Field(description="Episodes evicted to respect the capacity.")
    state_keys: int = Field(description="Keys in the key-value state area.")
    size_on_disk_bytes: int = Field(description="Disk blocks the environment's files occupy.")
    used_bytes: int = Field(description="Bytes of the map in use (pages up to the last one).")
    map_size_bytes: int = Field(description="Current LMDB map size.")
    schema_version: int = Field(description="Episode record schema version this code writes.")
    durable: bool = Field(description="Whether commits are synced to disk (this handle).")
    unreadable_episodes: list[int] | None = Field(
        None,
        description="Ids whose stored bytes fail their checksum (None: not checked; see "
        "stats(check=True)).",
    )


def _meta_defaults(capacity: int) -> dict[str, Any]:
    return {
        "v": STORE_FORMAT_VERSION,
        "next_id": 0,
        "episodes": 0,
        "transitions": 0,
        "evicted": 0,
        "capacity": capacity,
        "created_at": time.time(),
    }


class EpisodeStore:
    """Durable, bounded episode storage plus a small key-value state area.

    ``capacity_transitions`` bounds the transitions kept: a put that would exceed
    it evicts whole oldest episodes in the same transaction (default 500k, or what
    the store recorded when it was last opened). ``map_size`` is the initial LMDB
    map (default 64 MiB, or ``max_map_size`` if smaller); it doubles whenever a
    write does not fit, up to ``max_map_size`` (``None``: no limit), beyond which
    writes raise :class:`StorageFullError`. ``readonly=True`` opens an existing store for
    reading while another process writes (stats, export, inspection).

    Every open checks the file before LMDB maps it (its size against its header, then
    every page the newest commit reaches) and raises :class:`StoreDamagedError` on a
    damaged one, which nothing then modifies. ``check_records=True`` also reads every
    episode and refuses the store if one fails its checksum (what a long-running writer
    wants, so that it does not stop later on the first damaged record it samples).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        capacity_transitions: int | None = None,
        durable: bool = True,
        readonly: bool = False,
        map_size: int | None = None,
        max_map_size: int | None = None,
        check_records: bool = False,
    ) -> None:
        if capacity_transitions is not None and capacity_transitions < 1:
            raise ValueError(f"capacity_transitions must be >= 1, got {capacity_transitions}")
        if map_size is None:
            map_size = min(DEFAULT_MAP_SIZE, max_map_size or DEFAULT_MAP_SIZE)
        if map_size < 2**16:
            raise ValueError(f"map_size must be at least 64 KiB, got {map_size}")
        if max_map_size is not None and max_map_size < map_size:
            raise ValueError(f"max_map_size {max_map_size} is below map_size {map_size}")
        self._path = Path(path).absolute()
        self._readonly = readonly
        self._durable = durable and not readonly
        self._max_map_size = max_map_size
        self._rw = SharedExclusiveLock()
        self._write_lock = threading.Lock()
        self._lock_file: IO[bytes] | None = None
        self._closed = False
        self._registered = False
        self._register()
        try:
            self._env = self._open_env(map_size)
            self._open_databases(capacity_transitions)
            self._index = self._load_index()
            if check_records:
                self._refuse_unreadable()
            if not readonly:
                self._enforce_capacity()
        except _DAMAGE_ERRORS as exc:
            self._close_after_failed_open()
            raise StoreDamagedError(self._path, str(exc)) from None
        except BaseException:
            self._close_after_failed_open()
            raise

    def _close_after_failed_open(self) -> None:
        env = getattr(self, "_env", None)
        if env is not None:
            env.close()
        self._release()

    # -- opening -------------------------------------------------------------------------------

    def _register(self) -> None:
        key = self._registry_key = str(self._path.resolve())
        with _open_paths_lock:
            if key in _open_paths:
                raise StoreLockedError(
                    f"the store at {self._path} is already open in this process; LMDB forbids "
                    "opening one environment twice per process: share the EpisodeStore object"
                )
            _open_paths.add(key)
            self._registered = True

    def _open_env(self, map_size: int) -> lmdb.Environment:
        if self._readonly:
            if not (self._path / "data.mdb").is_file():
                raise FileNotFoundError(f"no episode store at {self._path} (no data.mdb)")
        else:
            self._path.mkdir(parents=True, exist_ok=True)
            self._take_writer_lock()
        data = self._path / "data.mdb"
        # An empty file is what a writer killed before its first commit leaves: LMDB
        # starts it as a new environment.
        existing = data.is_file() and data.stat().st_size > 0
        if self._readonly and not existing:
            raise StorageError(f"the store at {self._path} was never initialised by a writer")
        # LMDB maps the file and follows its page numbers: a truncated file faults on
        # the first missing page (SIGBUS). The header is checked with plain reads first.
        if existing:
            check_before_open(self._path)
        try:
            env = self._lmdb_open(map_size)
        except _DAMAGE_ERRORS as exc:
            raise StoreDamagedError(self._path, str(exc)) from None
        try:
            if existing:
                self._check_structure(env)
            if not self._readonly:
                env.reader_check()  # frees reader slots of processes that died (kill -9)
        except BaseException:
            env.close()
            raise
        return env

    def _check_structure(self, env: lmdb.Environment) -> None:
        """Refuse a store whose pages are out of place, before anything reads them.

        The read transaction held meanwhile pins the commit being checked: a writer in
        another process cannot reuse its pages until the check is done.
        """
        with env.begin(write=False):
            problems = structure_problems(self._path)
        if problems:
            more = f" and {len(problems) - 1} more problems" if len(problems) > 1 else ""
            raise StoreDamagedError(self._path, problems[0] + more)

    def _lmdb_open(self, map_size: int) -> lmdb.Environment:
        return lmdb.open(
            str(self._path),
            map_size=map_size,
            readonly=self._readonly,
            sync=self._durable,
            metasync=self._durable,
            lock=True,
            writemap=False,
            readahead=False,  # random sampling: read-ahead only fills the cache with neighbours
            max_dbs=4,
            max_readers=_MAX_READERS,
        )

    def _take_writer_lock(self) -> None:
        handle = (self._path / _WRITER_LOCK).open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StoreLockedError(
                f"another process is writing to the store at {self._path}; open it with "
                "readonly=True to read while it runs"
            ) from None
        self._lock_file = handle

    def _open_databases(self, capacity: int | None) -> None:
        create = not self._readonly
        try:
            self._episodes = self._env.open_db(b"episodes", create=create)
            self._lengths = self._env.open_db(b"lengths", create=create)
            self._state = self._env.open_db(b"state", create=create)
            self._meta_db = self._env.open_db(b"meta", create=create)
        except lmdb.NotFoundError:
            raise StorageError(
                f"{self._path} is an LMDB environment but not an autotelic episode store"
            ) from None
        with self._read() as txn:
            raw = txn.get(_META_KEY, db=self._meta_db)
        if raw is None and self._readonly:
            raise StorageError(f"the store at {self._path} was never initialised by a writer")
        meta = _meta_defaults(capacity or DEFAULT_CAPACITY_TRANSITIONS)
        if raw is not None:
            stored = unframe(raw, f"store metadata of {self._path}")
            check_version(stored, f"the store at {self._path}", STORE_FORMAT_VERSION)
            meta.update(stored)
        if capacity is not None:
            meta["capacity"] = capacity
        self._meta = meta
        if not self._readonly:
            with self._write_lock:
                self._commit(lambda txn: txn.put(_META_KEY, frame(meta), db=self._meta_db))

    def _load_index(self) -> TransitionIndex:
        with self._read() as txn:
            pairs = list(txn.cursor(db=self._lengths).iternext(keys=True, values=True))
        if not pairs:
            return TransitionIndex()
        ids = np.frombuffer(b"".join(k for k, _ in pairs), dtype=">u8").astype(np.int64)
        lengths = np.frombuffer(b"".join(v for _, v in pairs), dtype=">u4").astype(np.int64)
        return TransitionIndex(ids, lengths)

    def _refuse_unreadable(self) -> None:
        """A writer does not start on records it could not sample: it would fail later,
        mid-run, on the first one drawn."""
        unreadable = self.check_records()
        if unreadable:
            shown = ", ".join(map(str, unreadable[:5])) + (", ..." if len(unreadable) > 5 else "")
            raise StoreDamagedError(
                self._path, f"{len(unreadable)} episodes fail their checksum: {shown}"
            )

    def check_records(self) -> list[int]:
        """Ids of the stored episodes whose bytes fail their checksum, or whose length
        entry is missing or malformed (a cheap pass: nothing is decoded)."""
        bad: list[int] = []
        position = episode_key(0)
        while True:
            count = 0
            with self._read() as txn:
                cursor = txn.cursor(db=self._episodes)
                if cursor.set_range(position):
                    for key, value in cursor.iternext(keys=True, values=True):
                        length = txn.get(key, db=self._lengths)
                        if length is None or len(length) != _LENGTH.size:
                            bad.append(_KEY.unpack(key)[0])
                        else:
                            try:
                                checked_body(value, "episode")
                            except CorruptRecordError:
                                bad.append(_KEY.unpack(key)[0])
                        count += 1
                        position = key
                        if count == _ITER_CHUNK:
                            break
            if count < _ITER_CHUNK:
                return bad
            position = episode_key(_KEY.unpack(position)[0] + 1)

    def _enforce_capacity(self) -> None:
        with self._write_lock:
            evict, evicted_lengths = self._index.oldest_to_evict(0, self.capacity_transitions)
            if len(evict):
                meta = self._commit(lambda txn: self._write_batch(txn, [], evict, evicted_lengths))
                self._meta = meta
                self._index.evict(evict)

    # -- properties ----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def readonly(self) -> bool:
        return self._readonly

    @property
    def durable(self) -> bool:
        return self._durable

    @property
    def capacity_transitions(self) -> int:
        return int(self._meta["capacity"])

    @property
    def num_transitions(self) -> int:
        """Transitions in the index (the writer's view is always current)."""
        return self._index.num_transitions

    def __len__(self) -> int:
        """Episodes in the index (a read-only handle: as of open)."""
        return len(self._index)

    def __contains__(self, episode_id: object) -> bool:
        if isinstance(episode_id, bool) or not isinstance(episode_id, int | np.integer):
            return False
        try:
            key = episode_key(int(episode_id))
        except EpisodeNotFoundError:
            return False
        with self._read() as txn:
            return txn.get(key, db=self._lengths) is not None

    # -- writing -------------------------------------------------------------------------------

    def put(self, episode: Episode) -> int:
        """Store one episode in one transaction; durable when it returns. Returns its id."""
        return self.put_many([episode])[0]

    def put_many(self, episodes: Sequence[Episode]) -> list[int]:
        """Store several episodes in one transaction (one sync); returns their ids in order.

        The ``id`` field of the given episodes is ignored: the store assigns ids.
        """
        self._require_writable()
        batch = list(episodes)
        if not batch:
            return []
        for i, episode in enumerate(batch):
            if not isinstance(episode, Episode):
                raise TypeError(f"item {i} is a {type(episode).__name__}, not an Episode")
        lengths = [e.length for e in batch]
        incoming = sum(lengths)
        if incoming > self.capacity_transitions:
            raise ValueError(
                f"{incoming} transitions do not fit in a store of capacity "
                f"{self.capacity_transitions} transitions"
            )
        values = [encode_episode(e) for e in batch]
        with self._write_lock:
            first = int(self._meta["next_id"])
            ids = list(range(first, first + len(batch)))
            evict, evicted_lengths = self._index.oldest_to_evict(
                incoming, self.capacity_transitions
            )
            items = list(zip(ids, values, lengths, strict=True))
            self._meta = self._commit(
                lambda txn: self._write_batch(txn, items, evict, evicted_lengths)
            )
            self._index.append(ids, lengths)
            self._index.evict(evict)
        return ids

    def _write_batch(
        self,
        txn: lmdb.Transaction[bytes],
        items: list[tuple[int, bytes, int]],
        evict: np.ndarray[Any, Any],
        evicted_lengths: np.ndarray[Any, Any],
    ) -> dict[str, Any]:
        for episode_id, value, length in items:
            key = episode_key(episode_id)
            txn.put(key, value, db=self._episodes, append=True)
            txn.put(key, _LENGTH.pack(length), db=self._lengths, append=True)
        for episode_id in evict.tolist():
            key = episode_key(episode_id)
            txn.delete(key, db=self._episodes)
            txn.delete(key, db=self._lengths)
        meta = dict(self._meta)
        meta["next_id"] = int(meta["next_id"]) + len(items)
        meta["episodes"] = int(meta["episodes"]) + len(items) - len(evict)
        added = sum(length for _, _, length in items)
        meta["transitions"] = int(meta["transitions"]) + added - int(evicted_lengths.sum())
        meta["evicted"] = int(meta["evicted"]) + len(evict)
        txn.put(_META_KEY, frame(meta), db=self._meta_db)
        return meta

    def restore_records(
        self,
        episodes: Sequence[tuple[int, bytes, int]],
        state: Mapping[bytes, bytes],
        *,
        next_id: int,
        evicted: int,
    ) -> None:
        """Fill an empty store with records read from another one, in one transaction.

        ``episodes`` are (id, stored bytes, length) in increasing id order and ``state``
        maps raw keys to stored values, all already checked by the reader (the salvage
        of a damaged store, :func:`autotelic.storage.salvage.salvage_store`). Ids are
        kept, so gaps where records were lost stay gaps.
        """
        self._require_writable()
        if len(self._index) or self.state_keys():
            raise StorageError(f"the store at {self._path} is not empty; restore into a new one")
        ids = [episode_id for episode_id, _, _ in episodes]
        if ids != sorted(set(ids)) or (ids and next_id <= ids[-1]):
            raise ValueError("restored ids must increase and stay below next_id")
        transitions = sum(length for _, _, length in episodes)
        if transitions > self.capacity_transitions:
            raise ValueError(f"{transitions} transitions exceed the store's capacity")
        meta = dict(self._meta)
        meta.update(next_id=next_id, episodes=len(ids), transitions=transitions, evicted=evicted)

        def write(txn: lmdb.Transaction[bytes]) -> None:
            for episode_id, value, length in episodes:
                key = episode_key(episode_id)
                txn.put(key, value, db=self._episodes, append=True)
                txn.put(key, _LENGTH.pack(length), db=self._lengths, append=True)
            for key, value in state.items():
                txn.put(key, value, db=self._state)
            txn.put(_META_KEY, frame(meta), db=self._meta_db)

        with self._write_lock:
            self._commit(write)
            self._meta = meta
            self._index.append(ids, [length for _, _, length in episodes])
        if not self._durable:
            self.sync()

    def put_state(self, key: str, value: Any) -> None:
        """Store a msgpack-able value (dict/list/str/int/float/bool/None) under ``key``.

        Tuples come back as lists; dict keys must be str or int. Durable when it
        returns, also on a ``durable=False`` store: state writes are rare and small,
        and the curriculum must not roll back behind the episodes.
        """
        self._require_writable()
        encoded_key = self._state_key(key)
        check_packable(value, f"state[{key!r}]")
        data = frame({"v": 1, "value": value})
        with self._write_lock:
            self._commit(lambda txn: txn.put(encoded_key, data, db=self._state))
        if not self._durable:
            self.sync()

    def put_states(self, values: Mapping[str, Any], delete: Iterable[str] = ()) -> None:
        """Store several state keys and delete others in one transaction: all or nothing.

        Like :meth:`put_state`, durable when it returns. A key both put and deleted
        is put; deleting an absent key is no error.
        """
        self._require_writable()
        encoded: list[tuple[bytes, bytes]] = []
        for key, value in values.items():
            check_packable(value, f"state[{key!r}]")
            encoded.append((self._state_key(key), frame({"v": 1, "value": value})))
        written = {k for k, _ in encoded}
        gone = [k for k in map(self._state_key, delete) if k not in written]

        def write(txn: lmdb.Transaction[bytes]) -> None:
            for key in gone:
                txn.delete(key, db=self._state)
            for key, data in encoded:
                txn.put(key, data, db=self._state)

        with self._write_lock:
            self._commit(write)
        if not self._durable:
            self.sync()

    def delete_state(self, key: str) -> None:
        """Remove ``key`` from the state area (no error if absent); durable when it returns."""
        self.put_states({}, delete=[key])

    def sync(self) -> None:
        """Flush every commit to disk (what ``durable=True`` does at each commit)."""
        self._require_open()
        if self._readonly:
            return
        with self._rw.shared():
            self._env.sync(True)

    def _commit(self, write: Callable[[lmdb.Transaction[bytes]], T]) -> T:
        """Run ``write`` in one write transaction, growing the map until it fits.

        The caller holds ``_write_lock``. ``write`` must only touch the transaction:
        it is run again from the start after a map resize.
        """
        while True:
            try:
                with self._rw.shared():
                    self._require_open()  # close() may have run while this thread waited
                    with self._env.begin(write=True) as txn:
                        return write(txn)
            except lmdb.MapFullError:
                self._grow_map()
            except lmdb.Error as exc:
                raise self._write_failure(exc) from exc

    def _grow_map(self) -> None:
        with self._rw.exclusive():
            if self._env.reader_check():
                # A dead reader process pinned old pages; freed, they may make room.
                return
            current = int(self._env.info()["map_size"])
            limit = self._max_map_size
            if limit is not None and current >= limit:
                raise StorageFullError(
                    f"the store at {self._path} is full: its map reached max_map_size={limit} "
                    "bytes; raise max_map_size or lower capacity_transitions. The write was "
                    "rolled back; everything stored before it is intact"
                )
            new_size = current * 2 if limit is None else min(current * 2, limit)
            self._env.set_mapsize(new_size)

    def _write_failure(self, exc: lmdb.Error) -> StorageError:
        if isinstance(exc, _DAMAGE_ERRORS):
            return StoreDamagedError(self._path, str(exc))
        code = getattr(exc, "code", 0)
        if code in FULL_ERRNOS or (code == errno.EIO and self._space_exhausted()):
            return StorageFullError(
                f"writing to the store at {self._path} failed ({exc}): the disk is full or the "
                "file reached its size limit. The write was rolled back; everything stored "
                "before it is intact"
            )
        if isinstance(exc, lmdb.PanicError):
            return StorageWriteError(
                f"the store at {self._path} cannot write after an earlier failed commit ({exc}); "
                "close and reopen it (what was committed is intact)"
            )
        return StorageWriteError(
            f"writing to the store at {self._path} failed ({exc}); the write was rolled back"
        )

    def _space_exhausted(self) -> bool:
        # LMDB reports a short write (what a full disk usually causes) as EIO.
        if out_of_space(self._path):
            return True
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        data = self._path / "data.mdb"
        return soft != resource.RLIM_INFINITY and data.stat().st_size >= soft - 2**20

    # -- reading -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _read(self) -> Iterator[lmdb.Transaction[bytes]]:
        """A read transaction; adopts a map another process grew (MapResizedError)."""
        self._require_open()
        while True:
            with self._rw.shared():
                self._require_open()  # close() may have run while this thread waited
                try:
                    txn = self._env.begin(write=False)
                except lmdb.MapResizedError:
                    txn = None
                if txn is not None:
                    try:
                        yield txn
                    except _DAMAGE_ERRORS as exc:
                        raise StoreDamagedError(self._path, str(exc)) from None
                    finally:
                        txn.abort()
                    return
            with self._rw.exclusive():
                self._env.set_mapsize(0)

    def get(self, episode_id: int) -> Episode:
        """The stored episode with this id; :class:`EpisodeNotFoundError` if absent."""
        with self._read() as txn:
            data = txn.get(episode_key(episode_id), db=self._episodes)
        if data is None:
            raise EpisodeNotFoundError(episode_id)
        return decode_episode(episode_id, data)

    def ids(self) -> list[int]:
        """Ids of the stored episodes, oldest first (from the in-memory index)."""
        return [int(i) for i in self._index.snapshot().ids]

    def iter_episodes(
        self, start_id: int | None = None, end_id: int | None = None
    ) -> Iterator[Episode]:
        """Stored episodes with ``start_id <= id < end_id``, oldest first.

        Reads in short transactions of a few episodes each, so a long export never
        pins old pages or holds up a map resize.
        """
        for episode_id, data in self._iter_raw(start_id, end_id):
            yield decode_episode(episode_id, data)

    def _iter_raw(self, start_id: int | None, end_id: int | None) -> Iterator[tuple[int, bytes]]:
        """(id, stored bytes) of the episodes with ``start_id <= id < end_id``, in chunks."""
        position = episode_key(max(start_id or 0, 0))
        while True:
            chunk: list[tuple[bytes, bytes]] = []
            with self._read() as txn:
                cursor = txn.cursor(db=self._episodes)
                if cursor.set_range(position):
                    for key, value in cursor.iternext(keys=True, values=True):
                        chunk.append((key, value))
                        if len(chunk) == _ITER_CHUNK:
                            break
            for key, value in chunk:
                (episode_id,) = _KEY.unpack(key)
                if end_id is not None and episode_id >= end_id:
                    return
                yield episode_id, value
            if len(chunk) < _ITER_CHUNK:
                return
            position = episode_key(_KEY.unpack(chunk[-1][0])[0] + 1)

    def export_jsonl(
        self,
        destination: str | os.PathLike[str] | IO[str],
        *,
        start_id: int | None = None,
        end_id: int | None = None,
        unreadable: list[int] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Write episodes as JSON lines (one episode per line, ids included); returns the count.

        With an ``unreadable`` list, an episode that fails its checksum or does not decode
        is skipped and its id appended there, so that one damaged record does not cost
        the export of the others; without one, it raises :class:`CorruptRecordError`.
        ``progress`` hears the number of records read so far after each one (a store of
        millions of episodes takes minutes: a command shows how far it is).
        """
        if isinstance(destination, str | os.PathLike):
            with Path(destination).open("w", encoding="utf-8") as out:
                return self._export(out, start_id, end_id, unreadable, progress)
        return self._export(destination, start_id, end_id, unreadable, progress)

    def _export(
        self,
        out: IO[str],
        start_id: int | None,
        end_id: int | None,
        unreadable: list[int] | None,
        progress: Callable[[int], None] | None,
    ) -> int:
        count = 0
        for read, (episode_id, data) in enumerate(self._iter_raw(start_id, end_id), 1):
            if progress is not None:
                progress(read)
            try:
                episode = decode_episode(episode_id, data)
            except CorruptRecordError:
                if unreadable is None:
                    raise
                unreadable.append(episode_id)
                continue
            out.write(episode.model_dump_json())
            out.write("\n")
            count += 1
        return count

    def get_state(self, key: str) -> Any | None:
        """The value stored under ``key`` with :meth:`put_state`, or None."""
        encoded_key = self._state_key(key)
        with self._read() as txn:
            data = txn.get(encoded_key, db=self._state)
        if data is None:
            return None
        what = f"state key {key!r} of the store at {self._path}"
        record = unframe(data, what)
        check_version(record, what, 1)
        if "value" not in record:
            raise CorruptRecordError(what, "no value field")
        return record["value"]

    def state_keys(self, prefix: str = "") -> list[str]:
        """Keys of the state area that start with ``prefix``, sorted."""
        start = prefix.encode("utf-8")
        with self._read() as txn:
            cursor = txn.cursor(db=self._state)
            keys = []
            if cursor.set_range(start) if start else cursor.first():
                for key in cursor.iternext(keys=True, values=False):
                    if not key.startswith(start):
                        break
                    keys.append(key)
        return [k.decode("utf-8") for k in keys]

    @staticmethod
    def _state_key(key: str) -> bytes:
        if not isinstance(key, str) or not key:
            raise ValueError(f"a state key is a non-empty str, got {key!r}")
        encoded = key.encode("utf-8")
        if len(encoded) > _MAX_STATE_KEY_BYTES:
            raise ValueError(f"state key of {len(encoded)} bytes exceeds {_MAX_STATE_KEY_BYTES}")
        return encoded

    def stats(self, *, check: bool = False) -> StoreStats:
        """Counts and sizes, from the database (current even in a read-only process).

        ``check=True`` also reads every episode and lists those whose bytes fail their
        checksum (``unreadable_episodes``): the counts come from the metadata alone and
        cannot tell that a record was overwritten.
        """
        unreadable = self.check_records() if check else None
        with self._read() as txn:
            raw = txn.get(_META_KEY, db=self._meta_db)
            cursor = txn.cursor(db=self._lengths)
            oldest = _KEY.unpack(cursor.key())[0] if cursor.first() else None
            newest = _KEY.unpack(cursor.key())[0] if cursor.last() else None
            state_keys = int(txn.stat(self._state)["entries"])
        meta = unframe(raw, f"store metadata of {self._path}") if raw is not None else self._meta
        info = self._env.info()
        page = int(self._env.stat()["psize"])
        size = sum(f.stat().st_blocks * 512 for f in self._path.glob("*.mdb") if f.is_file())
        return StoreStats(
            path=str(self._path),
            episodes=int(meta["episodes"]),
            transitions=int(meta["transitions"]),
            capacity_transitions=int(meta["capacity"]),
            next_episode_id=int(meta["next_id"]),
            oldest_episode_id=oldest,
            newest_episode_id=newest,
            evicted_episodes=int(meta["evicted"]),
            state_keys=state_keys,
            size_on_disk_bytes=size,
            used_bytes=(int(info["last_pgno"]) + 1) * page,
            map_size_bytes=int(info["map_size"]),
            schema_version=SCHEMA_VERSION,
            durable=self._durable,
            unreadable_episodes=unreadable,
        )

    # -- replay source -------------------------------------------------------------------------

    def index_snapshot(self) -> IndexSnapshot:
        """The live episodes' ids and lengths, for uniform sampling over transitions."""
        return self._index.snapshot()

    def fetch_views(self, episode_ids: Iterable[int]) -> dict[int, EpisodeView]:
        """Sampling views of these episodes, in one read transaction; evicted ids are absent."""
        raw: list[tuple[int, bytes]] = []
        with self._read() as txn:
            for episode_id in episode_ids:
                data = txn.get(episode_key(episode_id), db=self._episodes)
                if data is not None:
                    raw.append((episode_id, data))
        with gc_paused():
            return {episode_id: decode_view(episode_id, data) for episode_id, data in raw}

    # -- closing -------------------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._closed:
            raise StorageError(f"the store at {self._path} is closed")

    def _require_writable(self) -> None:
        self._require_open()
        if self._readonly:
            raise StorageError(f"the store at {self._path} was opened read-only")

    def close(self) -> None:
        """Close the environment and release the writer lock (idempotent)."""
        if self._closed:
            return
        with self._write_lock, self._rw.exclusive():
            self._closed = True
            self._env.close()
        self._release()

    def _release(self) -> None:
        self._closed = True
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        if self._registered:
            with _open_paths_lock:
                _open_paths.discard(self._registry_key)
            self._registered = False

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "readonly" if self._readonly else ("durable" if self._durable else "fast")
        return f"EpisodeStore({str(self._path)!r}, {mode}, episodes={len(self)})"
