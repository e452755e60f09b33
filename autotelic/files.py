"""Durable file operations shared by the store's checkpoints and the run's logs."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Sync a directory, so the files just created or renamed in it survive a power cut
    (fsyncing a file makes its data durable, not its name)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
