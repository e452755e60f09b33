"""Errors raised by the storage layer.

Each names what is wrong and where (path, episode id, versions), because these
surface in a long-running service's logs, far from the code that caused them.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from autotelic.core.errors import UserError

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""What an operating system says when a write does not fit."""
LOW_SPACE_BYTES = 16 * 2**20
"""Free space under which a failed write is put down to a full disk: libraries that hide the
errno (LMDB's short writes as EIO, torch's zip writer) leave nothing better to go by."""


def out_of_space(path: Path) -> bool:
    """Whether the file system holding ``path`` has next to no free space left."""
    return shutil.disk_usage(path).free < LOW_SPACE_BYTES


class StorageError(UserError, RuntimeError):
    """Base class of every error the storage layer raises on purpose (each names the path
    and what to do, so the command line shows it as one line)."""


class StorageFullError(StorageError):
    """A write did not fit: the map reached ``max_map_size`` or the disk refused it.

    The write was rolled back as a whole; everything stored before it is intact.
    """


class StorageWriteError(StorageError):
    """The operating system refused a write for another reason (an I/O error).

    As with :class:`StorageFullError`, the transaction was rolled back.
    """


class StoreLockedError(StorageError):
    """Another writer (another process, or this one) already has the store open."""


class SchemaVersionError(StorageError):
    """A record or store was written by a newer schema version than this code reads."""

    def __init__(self, what: str, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"{what} was written with schema version {found}, but this version of "
            f"autotelic reads schema versions up to {supported}: upgrade autotelic to read it"
        )


class CorruptRecordError(StorageError):
    """A stored record failed its checksum or does not have the expected structure."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what} is corrupt: {reason}")


def salvage_hint(store: Path) -> str:
    """The commands that list and recover what a damaged store still holds.

    A store inside a run directory is named by the run (``--run`` is what the CLI takes);
    any other store by its own folder.
    """
    run = store.parent if store.name == "store" else store
    return (
        f"list what is readable with `autotelic replay verify --run {run}` and copy it into a "
        f"new store with `autotelic replay salvage --run {run} --out NEW_DIR`"
    )


class StoreDamagedError(StorageError):
    """The files of an episode store are damaged: truncated, overwritten or not LMDB.

    Raised before LMDB maps a damaged file (mapping it is what turns damage into a SIGBUS
    or SIGSEGV) and in place of LMDB's own corruption errors. Nothing of the store was
    changed; the message names the file and the commands that recover what is readable.
    """

    def __init__(self, store: Path, reason: str) -> None:
        self.store = store
        self.reason = reason
        super().__init__(
            f"the episode store {store / 'data.mdb'} is damaged ({reason}); nothing was "
            f"changed: {salvage_hint(store)}"
        )


class EpisodeNotFoundError(StorageError, KeyError):
    """No episode with this id is stored (never written, or evicted)."""

    def __init__(self, episode_id: int) -> None:
        self.episode_id = episode_id
        super().__init__(f"episode {episode_id} is not in the store (never written or evicted)")

    def __str__(self) -> str:
        # KeyError.__str__ would print the repr of the message.
        return str(self.args[0])


class EmptyReplayError(StorageError):
    """Sampling was asked of a store that holds no transitions yet."""
