"""Where converted models live, and how a cache entry is written safely.

A conversion (GGUF to safetensors) takes tens of seconds and may be interrupted or
run by two processes at once. Entries are therefore built in a private temporary
folder next to their destination and renamed into place in one step: a reader
either sees a complete entry or none, never a half-written one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from autotelic.files import SCRATCH_PREFIX, orphans, remove, scratch_beside

CACHE_ENV_VAR = "AUTOTELIC_CACHE"


def default_cache_dir() -> Path:
    """``$AUTOTELIC_CACHE`` when set, else ``~/.cache/autotelic``."""
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "autotelic"


def build_atomically(dest: Path, build: Callable[[Path], None]) -> Path:
    """Return ``dest``, calling ``build(tmp)`` to create it first when it is absent.

    ``build`` fills an empty temporary folder; only when it returns is the folder
    renamed to ``dest``. If another process finished first, its entry wins and
    this one is discarded. If ``build`` raises, nothing is left behind.
    """
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    for orphan in orphans(dest.parent, f"{SCRATCH_PREFIX}{dest.name}-"):
        remove(orphan)  # left by a conversion that was killed
    with scratch_beside(dest, folder=True) as tmp:
        build(tmp)
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():
                raise
            # Another process renamed its complete entry first: keep that one.
    return dest
