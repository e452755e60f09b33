"""File operations shared by the store's checkpoints, the model cache, plots and the run's
logs: durable directories, and scratch entries renamed into place.

Whatever is written where a reader may look (a checkpoint, a converted model, a PNG, a
built library) is written under a scratch name beside its destination and renamed onto
it in one step, so a reader sees the whole entry or none. A scratch name carries its
writer's pid, so what a killed writer left behind is recognised and removed later
(:func:`orphans`), and never mistaken for an entry.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from autotelic.processes import pid_alive

SCRATCH_PREFIX = ".tmp-"
"""How a scratch entry's name starts: ``.tmp-<destination>-<pid>-<random>``."""


def fsync_dir(path: Path) -> None:
    """Sync a directory, so the files just created or renamed in it survive a power cut
    (fsyncing a file makes its data durable, not its name)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def scratch_beside(dest: Path, *, folder: bool = False) -> Iterator[Path]:
    """A fresh path next to ``dest`` (an empty folder if ``folder``) for the caller to fill
    and rename onto ``dest``; whatever is still there on exit (a failure, or another
    writer's entry won) is removed."""
    scratch = dest.with_name(f"{SCRATCH_PREFIX}{dest.name}-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    if folder:
        scratch.mkdir()
    try:
        yield scratch
    finally:
        remove(scratch)


def remove(path: Path) -> None:
    """Delete a file or a folder tree if it is there (errors ignored: best effort)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def orphans(directory: Path, prefix: str = SCRATCH_PREFIX) -> list[Path]:
    """Entries of ``directory`` named ``<prefix>...-<pid>-<random>`` whose writer process
    has ended: interrupted writes, safe to remove (a live writer's are kept)."""
    found = []
    for entry in directory.glob(f"{prefix}*"):
        parts = entry.name.rsplit("-", 2)
        if len(parts) == 3 and parts[1].isdigit() and not pid_alive(int(parts[1])):
            found.append(entry)
    return found
