"""Where converted models live, and how a cache entry is written safely.

A conversion (GGUF to safetensors) takes tens of seconds and may be interrupted or
run by two processes at once. Entries are therefore built in a private temporary
folder next to their destination and renamed into place in one step: a reader
either sees a complete entry or none, never a half-written one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from autotelic.processes import pid_alive

CACHE_ENV_VAR = "AUTOTELIC_CACHE"
_TMP_PREFIX = ".tmp-"


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
    _remove_orphans(dest)
    tmp = dest.parent / f"{_TMP_PREFIX}{dest.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        build(tmp)
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():
                raise
            # Another process renamed its complete entry first: keep that one.
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _remove_orphans(dest: Path) -> None:
    """Delete temporary folders for ``dest`` left by processes that no longer run."""
    for tmp in dest.parent.glob(f"{_TMP_PREFIX}{dest.name}-*"):
        pid_text = tmp.name[len(f"{_TMP_PREFIX}{dest.name}-") :].split("-", 1)[0]
        if pid_text.isdigit() and not pid_alive(int(pid_text)):
            shutil.rmtree(tmp, ignore_errors=True)
