"""Checking an episode store's files before LMDB trusts them, and reading a damaged one.

LMDB maps ``data.mdb`` into memory and follows the page numbers it finds there: a file
shorter than its header says dies by SIGBUS when a missing page is touched, and a page
overwritten with other bytes can send it outside the map (SIGSEGV) or answer with
another page's contents. So a store is checked before it is opened:

* :func:`read_header` reads the two meta pages with plain file reads and compares the
  file's size with the last page the newest commit uses (the cheap check that rules out
  every truncation);
* :func:`structure_problems` walks every page reachable from the commit, again with
  plain reads (the verifier shipped with py-lmdb), so that no page LMDB will follow is
  out of place;
* record checksums (:mod:`autotelic.storage.codec`) catch bytes changed inside a value.

A damaged store is never opened with LMDB. :func:`read_store` reads it page by page
instead, tolerating whatever is broken: the trees of both commits LMDB keeps, then every
leaf page of the file for episodes a broken branch page hid. Every record it returns has
passed its checksum and decodes, so what it finds is what was written; the file is only
read. :func:`autotelic.storage.salvage.salvage_store` writes what it found into a new
store.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotelic.storage.codec import unframe
from autotelic.storage.errors import CorruptRecordError, StorageError, StoreDamagedError
from autotelic.storage.records import decode_episode

# The layout of a 64-bit LMDB 0.9 data file (what py-lmdb's bundled LMDB writes).
_MAGIC = 0xBEEFC0DE
_DATA_VERSION = 1
_HEADER = 16  # page header: pgno u64, pad u16, flags u16, lower u16, upper u16
_P_BRANCH, _P_LEAF, _P_OVERFLOW, _P_META, _P_LEAF2 = 0x01, 0x02, 0x04, 0x08, 0x20
_F_BIGDATA, _F_SUBDATA, _F_DUPDATA = 0x01, 0x02, 0x04
_NO_ROOT = (1 << 64) - 1
_MAX_DEPTH = 32  # LMDB's cursor stack: no tree it writes is deeper
_PAGE_SIZES = (4096, 8192, 16384, 32768, 65536, 2048, 1024, 512)
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_DB = struct.Struct("<IHHQQQQQ")  # MDB_db: pad, flags, depth, branch, leaf, overflow, entries, root
_ID = struct.Struct(">Q")
_LENGTH = struct.Struct(">I")
_META_KEY = b"meta"
_SUB_DBS = (b"episodes", b"lengths", b"state", b"meta")


@dataclass(frozen=True)
class DbRecord:
    """The part of an LMDB database record (``MDB_db``) a reader needs."""

    flags: int
    depth: int
    entries: int
    root: int

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> DbRecord:
        _, flags, depth, _, _, _, entries, root = _DB.unpack_from(data, offset)
        return cls(flags, depth, entries, root)


@dataclass(frozen=True)
class MetaPage:
    """One of the two meta pages: the root of one commit."""

    slot: int
    txnid: int
    psize: int
    last_page: int
    free: DbRecord
    main: DbRecord


@dataclass(frozen=True)
class Header:
    """The meta pages of a data file that LMDB would accept, newest first."""

    psize: int
    file_size: int
    metas: tuple[MetaPage, ...]

    @property
    def newest(self) -> MetaPage:
        return self.metas[0]


def _parse_meta(page: bytes, slot: int) -> MetaPage | str:
    """The meta page in ``page``, or why it is not one."""
    if len(page) < _HEADER + 136:
        return f"meta page {slot} is cut short"
    (flags,) = _U16.unpack_from(page, 10)
    magic, version = struct.unpack_from("<II", page, _HEADER)
    if not flags & _P_META or magic != _MAGIC:
        return f"meta page {slot} is not an LMDB meta page"
    if version != _DATA_VERSION:
        return f"meta page {slot} has data version {version}, not {_DATA_VERSION}"
    free = DbRecord.parse(page, _HEADER + 24)
    (psize,) = _U32.unpack_from(page, _HEADER + 24)  # the free DB's pad holds the page size
    main = DbRecord.parse(page, _HEADER + 72)
    (last_page,) = _U64.unpack_from(page, _HEADER + 120)
    (txnid,) = _U64.unpack_from(page, _HEADER + 128)
    return MetaPage(slot, txnid, psize, last_page, free, main)


class DataFile:
    """``data.mdb`` read with plain file reads: a missing page is an empty read, never a
    signal, and nothing is ever written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, size: int) -> bytes:
        if offset < 0 or size <= 0 or offset >= self.size:
            return b""
        return os.pread(self._fd, min(size, self.size - offset), offset)

    def refresh_size(self) -> int:
        """The file's size now. Read after the meta pages, it covers every page their
        commits use: LMDB writes a commit's pages before its meta page and never
        shrinks the file, so only a truncated file ends before the newest commit."""
        self.size = os.fstat(self._fd).st_size
        return self.size

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> DataFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def metas(self) -> tuple[int | None, list[MetaPage | str]]:
        """The page size and both meta pages (or why each is unreadable).

        Meta page 0 says the page size; when it is gone, meta page 1 is looked for at
        each size LMDB may use.
        """
        first = _parse_meta(self.read(0, _HEADER + 160), 0)
        sizes = [first.psize] if isinstance(first, MetaPage) else list(_PAGE_SIZES)
        for psize in sizes:
            if psize < 512 or psize & (psize - 1) or psize > 65536:
                return None, [f"meta page 0 names an impossible page size {psize}"]
            second = _parse_meta(self.read(psize, _HEADER + 160), 1)
            if isinstance(second, MetaPage) and second.psize != psize:
                second = f"meta page 1 names page size {second.psize}, not {psize}"
            if isinstance(first, MetaPage) or isinstance(second, MetaPage):
                return psize, [first, second]
        return None, [first, "meta page 1 is not an LMDB meta page"]


def read_header(store: Path) -> Header:
    """The store's meta pages, checked as LMDB needs them to be before it maps the file.

    Raises :class:`StoreDamagedError` when LMDB would refuse the file (a meta page is not
    one) or would fault on it (the file ends before the last page its newest commit uses).
    """
    path = store / "data.mdb"
    with DataFile(path) as data:
        psize, metas = data.metas()
        size = data.refresh_size()  # after the metas: a live writer's growth is no damage
    if psize is None or size < 2 * psize:
        reason = next((m for m in metas if isinstance(m, str)), "no meta pages")
        raise StoreDamagedError(store, f"{reason}; the file is {size} bytes")
    broken = [m for m in metas if isinstance(m, str)]
    if broken:
        raise StoreDamagedError(store, broken[0])
    good = sorted((m for m in metas if isinstance(m, MetaPage)), key=lambda m: -m.txnid)
    needed = (good[0].last_page + 1) * psize
    if size < needed:
        raise StoreDamagedError(
            store,
            f"the file is {size} bytes but its last commit uses {needed}: it was truncated",
        )
    return Header(psize, size, tuple(good))


def _lmdb_verifier() -> Any:
    from lmdb import verify

    return verify


def structure_problems(store: Path) -> list[str]:
    """What is wrong with the page structure of the store's newest commit ([] when sound).

    Every page reachable from the commit is read with plain file reads and checked: its
    own page number, its type, its bounds, key order, the counters, the overflow extents
    it points to, and that no reachable page is also listed as free. Pages that are
    neither reachable nor free (a leak) are not damage: nothing reads them. A problem
    must be found by each of :data:`_CHECKS` checks in a row. The caller
    keeps a read transaction open while this runs, so a writer in another process cannot
    reuse the pages being checked.
    """
    verifier = _lmdb_verifier()
    problems: list[str] = []
    for _ in range(_CHECKS):
        try:
            found: list[str] = verifier.verify(str(store / "data.mdb"))
        except verifier.VerifyError as exc:
            found = [str(exc)]
        problems = [p for p in found if "neither reachable nor in the freeDB" not in p]
        if not problems:
            return []
    return problems


_CHECKS = 3
"""Times a store is checked before it is called damaged: the verifier takes the file's size
before it reads the newest commit, and a writer that commits in between (growing the
file) makes that commit look truncated once. Damage is found every time."""


def check_before_open(store: Path) -> None:
    """Raise :class:`StoreDamagedError` unless LMDB may map the store's file safely.

    Only the header is checked here (nothing else can be read without racing a writer
    in another process); :func:`structure_problems` runs once a read transaction pins
    the commit.
    """
    if (store / "data.mdb").is_file():
        read_header(store)


# -- reading a damaged store page by page ---------------------------------------------------


@dataclass
class _Walk:
    """What one tree walk found and what stopped it."""

    nodes: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class PageReader:
    """The pages of a data file, parsed with every bound checked."""

    def __init__(self, data: DataFile, psize: int) -> None:
        self.data = data
        self.psize = psize
        self.pages = data.size // psize

    def page(self, pgno: int) -> bytes | None:
        """Page ``pgno`` if the file holds all of it and it says it is that page."""
        if pgno < 2 or pgno >= self.pages:
            return None
        raw = self.data.read(pgno * self.psize, self.psize)
        if len(raw) != self.psize or _U64.unpack_from(raw, 0)[0] != pgno:
            return None
        return raw

    def leaf_nodes(self, raw: bytes) -> Iterator[tuple[bytes, int, bytes, int]]:
        """(key, node flags, inline data, value size) of each in-bounds node of a leaf page;
        for a value on overflow pages the inline data is their first page number."""
        lower, upper = struct.unpack_from("<HH", raw, 12)
        if lower < _HEADER or lower > upper or upper > self.psize:
            return
        for i in range((lower - _HEADER) >> 1):
            (offset,) = _U16.unpack_from(raw, _HEADER + 2 * i)
            if offset < upper or offset + 8 > self.psize:
                continue
            lo, hi, flags, ksize = struct.unpack_from("<HHHH", raw, offset)
            key_end = offset + 8 + ksize
            size = lo | (hi << 16)
            inline = 8 if flags & _F_BIGDATA else size
            if key_end + inline > self.psize:
                continue
            yield raw[offset + 8 : key_end], flags, raw[key_end : key_end + inline], size

    def value(self, flags: int, inline: bytes, size: int) -> bytes | None:
        """A node's value: inline, or read from its overflow pages when they are whole."""
        if not flags & _F_BIGDATA:
            return inline
        (first,) = _U64.unpack_from(inline, 0)
        pages = (_HEADER - 1 + size) // self.psize + 1
        if first < 2 or first + pages > self.pages:
            return None
        head = self.page(first)
        if head is None or not _U16.unpack_from(head, 10)[0] & _P_OVERFLOW:
            return None
        if _U32.unpack_from(head, 12)[0] != pages:
            return None
        raw = self.data.read(first * self.psize + _HEADER, size)
        return raw if len(raw) == size else None

    def node_values(self, raw: bytes) -> Iterator[tuple[bytes, bytes | None]]:
        """(key, value) of each node of a leaf page; None for a value that is unreadable.
        Duplicate-sort nodes (which the store never writes) are skipped."""
        for key, flags, inline, size in self.leaf_nodes(raw):
            if flags & _F_DUPDATA:
                continue
            yield key, self.value(flags, inline, size)

    def walk(self, root: int, what: str) -> _Walk:
        """Every (key, value) the tree under ``root`` still leads to, and what is broken.

        A page that is missing, not what its parent says, or out of bounds is skipped with
        its subtree; a value whose overflow pages are broken comes back as None.
        """
        found = _Walk()
        if root == _NO_ROOT:
            return found
        stack = [(root, 1)]
        seen: set[int] = set()
        while stack:
            pgno, depth = stack.pop()
            raw = self.page(pgno) if pgno not in seen and depth <= _MAX_DEPTH else None
            seen.add(pgno)
            if raw is None:
                found.problems.append(f"{what}: page {pgno} is missing or damaged")
                continue
            (flags,) = _U16.unpack_from(raw, 10)
            if flags & _P_BRANCH and not flags & (_P_LEAF | _P_OVERFLOW | _P_META):
                children = self._children(raw)
                if not children:
                    found.problems.append(f"{what}: branch page {pgno} is damaged")
                stack.extend((child, depth + 1) for child in reversed(children))
            elif flags & _P_LEAF and not flags & (_P_BRANCH | _P_OVERFLOW | _P_META | _P_LEAF2):
                found.nodes.extend(self.node_values(raw))
            else:
                found.problems.append(f"{what}: page {pgno} is not a tree page")
        return found

    def _children(self, raw: bytes) -> list[int]:
        lower, upper = struct.unpack_from("<HH", raw, 12)
        if lower < _HEADER or lower > upper or upper > self.psize:
            return []
        children = []
        for i in range((lower - _HEADER) >> 1):
            (offset,) = _U16.unpack_from(raw, _HEADER + 2 * i)
            if offset < upper or offset + 8 > self.psize:
                continue
            lo, hi, flags, _ = struct.unpack_from("<HHHH", raw, offset)
            children.append(lo | (hi << 16) | (flags << 32))
        return children

    def leaf_pages(self) -> Iterator[bytes]:
        """Every page of the file that is a whole leaf page (live, or left by an old commit)."""
        for pgno in range(2, self.pages):
            raw = self.page(pgno)
            if raw is None:
                continue
            (flags,) = _U16.unpack_from(raw, 10)
            if flags & 0x7F == _P_LEAF:
                yield raw


@dataclass
class StoreContents:
    """What a page-by-page read of a store found.

    ``episodes`` maps ids to their stored bytes, each checked and decoded once;
    ``unreadable`` lists the ids the store should hold that no intact page gives.
    """

    path: Path
    problems: list[str]
    episodes: dict[int, bytes]
    lengths: dict[int, int]
    unreadable: list[int]
    state: dict[bytes, bytes]
    unreadable_state: list[str]
    meta: dict[str, Any] | None

    @property
    def damaged(self) -> bool:
        return bool(self.problems or self.unreadable or self.unreadable_state)


def _sub_dbs(reader: PageReader, meta: MetaPage) -> tuple[dict[bytes, DbRecord], list[str]]:
    walk = reader.walk(meta.main.root, f"commit {meta.txnid}, main database")
    found: dict[bytes, DbRecord] = {}
    for key, value in walk.nodes:
        if key in _SUB_DBS and value is not None and len(value) == _DB.size:
            found[key] = DbRecord.parse(value)
    missing = [k.decode() for k in _SUB_DBS if k not in found]
    if missing:
        walk.problems.append(f"commit {meta.txnid}: no database {', '.join(missing)}")
    return found, walk.problems


def _episode(episode_id: int, value: bytes | None) -> bytes | None:
    if value is None:
        return None
    try:
        decode_episode(episode_id, value)
    except (CorruptRecordError, StorageError):
        return None
    return value


def read_store(store: Path) -> StoreContents:
    """Every record of the store that an intact page still gives, without LMDB.

    The trees of both commits are read, newest first; then every leaf page of the file,
    for episodes whose branch pages are gone. An episode counts only when its bytes pass
    their checksum and decode; one found on an old page counts only when its id is one
    the store holds (episodes are never rewritten, so every copy of a live id is the
    same record).
    """
    with DataFile(store / "data.mdb") as data:
        return _Reading(store, data).run()


class _Reading:
    """One page-by-page read of a store (:func:`read_store`)."""

    def __init__(self, store: Path, data: DataFile) -> None:
        self.store = store
        self.data = data
        self.psize, metas = data.metas()
        data.refresh_size()  # after the metas, as read_header does
        self.problems = [m for m in metas if isinstance(m, str)]
        self.commits = sorted((m for m in metas if isinstance(m, MetaPage)), key=lambda m: -m.txnid)
        # Without a meta page the page size is LMDB's default, the memory page size.
        self.reader = PageReader(data, self.psize or _PAGE_SIZES[0])
        self.episodes: dict[int, bytes] = {}
        self.lengths: dict[int, int] = {}
        self.state: dict[bytes, bytes] = {}
        self.bad_state: set[bytes] = set()
        self.meta: dict[str, Any] | None = None

    def run(self) -> StoreContents:
        if self.commits and self.psize:
            needed = (self.commits[0].last_page + 1) * self.psize
            if self.data.size < needed:
                self.problems.append(
                    f"the file is {self.data.size} bytes but its last commit uses {needed}: "
                    "it was truncated"
                )
        state_whole = False
        for number, commit in enumerate(self.commits):
            trouble, state_read = self._commit(commit, take_state=not state_whole)
            state_whole = state_whole or state_read
            if number == 0:
                self.problems += trouble
        if self.meta is None:
            self.meta = _scan_meta(self.reader)
        live = _live_ids(self.meta, self.lengths, self.episodes)
        wanted = {i for i in live if i not in self.episodes}
        if wanted or self.meta is None:
            self._scan(None if self.meta is None else wanted)
            if self.meta is None:
                live = sorted(self.episodes)
        return StoreContents(
            path=self.store,
            problems=self.problems,
            episodes=dict(sorted(self.episodes.items())),
            lengths=self.lengths,
            unreadable=sorted(i for i in live if i not in self.episodes),
            state=self.state,
            unreadable_state=sorted(k.decode("utf-8", "replace") for k in self.bad_state),
            meta=self.meta,
        )

    def _commit(self, commit: MetaPage, *, take_state: bool) -> tuple[list[str], bool]:
        """Read one commit's trees; returns its problems and whether its state area was
        whole (an older commit's state is used only where the newer one's is broken, so a
        key deleted since does not come back)."""
        dbs, trouble = _sub_dbs(self.reader, commit)
        state_whole = False
        for name, db in dbs.items():
            walk = self.reader.walk(db.root, f"{name.decode()} database")
            trouble += walk.problems
            if name == b"state":
                state_whole = not walk.problems
            for key, value in walk.nodes:
                if name == b"episodes" and len(key) == _ID.size:
                    self._episode(_ID.unpack(key)[0], value)
                elif name == b"lengths" and len(key) == _ID.size:
                    if value is not None and len(value) == _LENGTH.size:
                        self.lengths.setdefault(_ID.unpack(key)[0], _LENGTH.unpack(value)[0])
                elif name == b"state" and take_state and key not in self.state:
                    if value is not None and _readable(value):
                        self.state[key] = value
                        self.bad_state.discard(key)
                    else:
                        self.bad_state.add(key)
                elif name == b"meta" and key == _META_KEY and self.meta is None:
                    self.meta = _meta_record(value)
        return trouble, state_whole

    def _episode(self, episode_id: int, value: bytes | None) -> None:
        if episode_id not in self.episodes:
            good = _episode(episode_id, value)
            if good is not None:
                self.episodes[episode_id] = good

    def _scan(self, wanted: set[int] | None) -> None:
        """Episodes on leaf pages the trees no longer lead to: those in ``wanted``, or,
        without the metadata (``None``: the live ids are unknown), every one that decodes."""
        for raw in self.reader.leaf_pages():
            for key, value in self.reader.node_values(raw):
                if len(key) != _ID.size:
                    continue
                (episode_id,) = _ID.unpack(key)
                if wanted is None or episode_id in wanted:
                    self._episode(episode_id, value)


def _readable(value: bytes | None) -> bool:
    if value is None:
        return False
    try:
        unframe(value, "state value")
    except StorageError:
        return False
    return True


def _meta_record(value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        record = unframe(value, "store metadata")
    except StorageError:
        return None
    keys = ("next_id", "episodes", "transitions", "evicted", "capacity")
    if not isinstance(record, dict) or not all(isinstance(record.get(k), int) for k in keys):
        return None
    return record


def _scan_meta(reader: PageReader) -> dict[str, Any] | None:
    """The newest store metadata on any leaf page: the id counter only grows, so the
    record with the largest ``next_id`` is the last one written."""
    best: dict[str, Any] | None = None
    for raw in reader.leaf_pages():
        for key, value in reader.node_values(raw):
            record = _meta_record(value) if key == _META_KEY else None
            if record is not None and (best is None or record["next_id"] > best["next_id"]):
                best = record
    return best


def _live_ids(
    meta: dict[str, Any] | None, lengths: dict[int, int], episodes: dict[int, bytes]
) -> list[int]:
    """The ids the store holds: eviction takes the oldest, so they are the newest
    ``episodes`` ids below ``next_id`` (or, without the metadata, what the tables name)."""
    if meta is not None:
        next_id, count = int(meta["next_id"]), int(meta["episodes"])
        if 0 <= count <= next_id:
            return list(range(next_id - count, next_id))
    return sorted(set(lengths) | set(episodes))
