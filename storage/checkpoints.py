"""Atomic checkpoints of everything a restart needs, with a verifiable manifest.

A checkpoint is a directory ``ckpt-<step>`` holding one file per top-level part
of the saved state (``model.pt``, ``optimizer.pt``, ``curriculum.json``, ...) and
a ``manifest.json`` naming each file with its size and SHA-256. It is written in
a temporary directory (every file fsynced, then the manifest, then the
directory), renamed into place, and the parent directory is fsynced, so a crash
at any moment leaves either the complete checkpoint or no ``ckpt-`` directory
at all. Corruption after the fact (a truncated or altered file, a missing
manifest) is caught by the checksums: :meth:`CheckpointManager.latest` warns and
falls back to the previous complete checkpoint.

Tensors are saved with ``torch.save`` and loaded with ``weights_only=True``, so
loading a checkpoint cannot run code; a part that such loading would refuse
(a NumPy array, an arbitrary object) is rejected when saving, not on restart.
Parts made only of JSON values are stored as JSON, readable without torch.
torch is imported on first use, so importing :mod:`autotelic.storage` stays light.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from autotelic.core.errors import CheckpointError
from autotelic.files import fsync_dir, orphans, remove, scratch_beside
from autotelic.storage.errors import (
    FULL_ERRNOS,
    SchemaVersionError,
    StorageFullError,
    out_of_space,
)

if TYPE_CHECKING:
    import torch

CHECKPOINT_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_PREFIX = "ckpt-"
_NAME = re.compile(r"^ckpt-(\d{12})$")
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_TRASH = ".trash-"
"""A replaced checkpoint's folder while its successor is renamed in (then removed)."""
_HASH_CHUNK = 1 << 20


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped because it is incomplete or corrupt."""


log = logging.getLogger(__name__)

# The skip is logged (one line in the service's own format); the warning stays for code
# that catches it (``warnings.catch_warnings``) but is not printed a second time, in the
# warnings module's format with a line of source. A filter of the application's comes
# first and still wins.
warnings.filterwarnings("ignore", category=CheckpointWarning, append=True)


def _skipped(message: str) -> None:
    log.warning("%s", message)
    warnings.warn(message, CheckpointWarning, stacklevel=3)


@dataclass(frozen=True)
class CheckpointFile:
    """One part of a checkpoint as the manifest records it."""

    file: str
    kind: Literal["torch", "json"]
    size: int
    sha256: str


@dataclass(frozen=True)
class Checkpoint:
    """A complete, verified checkpoint on disk."""

    path: Path
    step: int
    created_at: float
    metadata: dict[str, Any]
    files: dict[str, CheckpointFile] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint's parts, loaded."""

    checkpoint: Checkpoint
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return self.checkpoint.step

    @property
    def metadata(self) -> dict[str, Any]:
        return self.checkpoint.metadata


def _is_json(value: Any) -> bool:
    """Whether JSON round-trips ``value`` exactly (tuples and tensors do not)."""
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


@contextlib.contextmanager
def _synced_file(path: Path) -> Iterator[BinaryIO]:
    """``path`` opened for writing; flushed and fsynced when the block completes."""
    with path.open("wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class CheckpointManager:
    """Saves, finds, loads and prunes the checkpoints of one run directory."""

    def __init__(self, directory: str | os.PathLike[str], keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep
        self.directory.mkdir(parents=True, exist_ok=True)
        self._verified: dict[Path, tuple[int, Checkpoint]] = {}
        self._remove_stale_scratch()

    # -- saving --------------------------------------------------------------------------------

    def save(
        self,
        state: Mapping[str, Any],
        *,
        step: int,
        metadata: Mapping[str, Any] | None = None,
    ) -> Checkpoint:
        """Write ``state`` (part name -> state dict, tensors or JSON values) atomically.

        Saving the same step twice replaces the earlier checkpoint of that step.
        Returns the new checkpoint; older ones beyond ``keep`` are then pruned.
        """
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be a non-negative int, got {step!r}")
        if not state:
            raise ValueError("nothing to checkpoint: state is empty")
        meta = dict(metadata or {})
        if not _is_json(meta):
            raise ValueError("checkpoint metadata must be JSON values (str-keyed dicts, lists...)")
        for name in state:
            if not isinstance(name, str) or not _PART.match(name):
                raise ValueError(
                    f"part name {name!r} must be 1-100 letters, digits, '_', '-' or '.', "
                    "starting with a letter, digit or '_'"
                )
        final = self.directory / f"{_PREFIX}{step:012d}"
        try:
            with scratch_beside(final, folder=True) as scratch:
                files = {name: self._write_part(scratch, name, v) for name, v in state.items()}
                created = time.time()
                manifest = {
                    "format": CHECKPOINT_FORMAT_VERSION,
                    "step": step,
                    "created_at": created,
                    "metadata": meta,
                    "files": {n: f.__dict__ for n, f in files.items()},
                }
                self._write_bytes(scratch / MANIFEST, json.dumps(manifest, indent=1).encode())
                fsync_dir(scratch)
                self._move_into_place(scratch, final)
        except BaseException as err:
            if self._disk_full(err):
                raise StorageFullError(
                    f"cannot write a checkpoint in {self.directory} ({err}): the disk is full. "
                    "Nothing was replaced: the newest complete checkpoint is intact"
                ) from err
            raise
        checkpoint = Checkpoint(final, step, created, meta, files)
        self._verified[final] = ((final / MANIFEST).stat().st_mtime_ns, checkpoint)
        self.prune()
        return checkpoint

    def _write_part(self, scratch: Path, name: str, value: Any) -> CheckpointFile:
        if _is_json(value):
            target = scratch / f"{name}.json"
            self._write_bytes(target, json.dumps(value).encode())
            kind: Literal["torch", "json"] = "json"
        else:
            import torch

            target = scratch / f"{name}.pt"
            with _synced_file(target) as f:
                torch.save(value, f)
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(target))
            if unsafe:
                raise ValueError(
                    f"checkpoint part {name!r} holds {', '.join(unsafe)}, which loading with "
                    "weights_only=True refuses: store tensors, numbers, strings, lists, tuples "
                    "and dicts only"
                )
            kind = "torch"
        return CheckpointFile(target.name, kind, target.stat().st_size, _sha256(target))

    def _disk_full(self, err: BaseException) -> bool:
        if isinstance(err, OSError) and err.errno in FULL_ERRNOS:
            return True
        return isinstance(err, OSError | RuntimeError) and out_of_space(self.directory)

    @staticmethod
    def _write_bytes(path: Path, data: bytes) -> None:
        with _synced_file(path) as f:
            f.write(data)

    def _move_into_place(self, scratch: Path, final: Path) -> None:
        trash = None
        if final.exists():
            trash = self.directory / f"{_TRASH}{final.name}-{os.getpid()}-{uuid.uuid4().hex}"
            final.rename(trash)
            self._verified.pop(final, None)
        scratch.rename(final)
        fsync_dir(self.directory)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    # -- finding -------------------------------------------------------------------------------

    def _candidates(self) -> list[tuple[int, Path]]:
        found = []
        for entry in self.directory.iterdir():
            match = _NAME.match(entry.name)
            if match and entry.is_dir():
                found.append((int(match.group(1)), entry))
        return sorted(found, reverse=True)

    def verify(self, path: str | os.PathLike[str]) -> Checkpoint:
        """Check a checkpoint directory against its manifest; :class:`CheckpointError` if not."""
        path = Path(path)
        manifest_path = path / MANIFEST
        try:
            mtime = manifest_path.stat().st_mtime_ns
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no {MANIFEST} (incomplete checkpoint)") from None
        cached = self._verified.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        checkpoint = self._check_manifest(path, manifest_path)
        self._verified[path] = (mtime, checkpoint)
        return checkpoint

    def _check_manifest(self, path: Path, manifest_path: Path) -> Checkpoint:
        try:
            manifest = json.loads(manifest_path.read_bytes())
            version = manifest["format"]
            step, created, meta = manifest["step"], manifest["created_at"], manifest["metadata"]
            files = {n: CheckpointFile(**f) for n, f in manifest["files"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{manifest_path}: unreadable manifest ({exc!r})") from exc
        if not isinstance(version, int) or version > CHECKPOINT_FORMAT_VERSION:
            raise SchemaVersionError(f"checkpoint {path}", int(version), CHECKPOINT_FORMAT_VERSION)
        match = _NAME.match(path.name)
        if match is None or int(match.group(1)) != step:
            raise CheckpointError(f"{path}: manifest says step {step}, the directory name does not")
        for name, entry in files.items():
            file = path / entry.file
            if Path(entry.file).name != entry.file:
                raise CheckpointError(f"{path}: part {name!r} names a file outside the checkpoint")
            if not file.is_file():
                raise CheckpointError(f"{path}: part {name!r} is missing ({entry.file})")
            size = file.stat().st_size
            if size != entry.size:
                raise CheckpointError(
                    f"{path}: {entry.file} has {size} bytes, the manifest says {entry.size} "
                    "(truncated or overwritten)"
                )
            if _sha256(file) != entry.sha256:
                raise CheckpointError(f"{path}: {entry.file} does not match its SHA-256")
        return Checkpoint(path, step, float(created), dict(meta), files)

    def checkpoints(self) -> list[Checkpoint]:
        """Every complete checkpoint, newest first; broken ones are skipped with a warning."""
        good = []
        for _, path in self._candidates():
            try:
                good.append(self.verify(path))
            except CheckpointError as exc:
                _skipped(f"skipping checkpoint: {exc}")
        return good

    def latest(self) -> Checkpoint | None:
        """The newest complete checkpoint; newer broken ones are skipped with a warning."""
        for _, path in self._candidates():
            try:
                return self.verify(path)
            except CheckpointError as exc:
                _skipped(f"skipping checkpoint, falling back to an older one: {exc}")
        return None

    # -- loading -------------------------------------------------------------------------------

    def load(
        self,
        checkpoint: Checkpoint | None = None,
        *,
        map_location: str | torch.device = "cpu",
    ) -> LoadedCheckpoint | None:
        """Load a checkpoint's parts (default: the latest complete one; None if there is none)."""
        chosen = checkpoint if checkpoint is not None else self.latest()
        if chosen is None:
            return None
        state: dict[str, Any] = {}
        for name, entry in chosen.files.items():
            file = chosen.path / entry.file
            if entry.kind == "json":
                state[name] = json.loads(file.read_bytes())
            else:
                import torch

                state[name] = torch.load(file, map_location=map_location, weights_only=True)
        return LoadedCheckpoint(chosen, state)

    # -- pruning -------------------------------------------------------------------------------

    def prune(self) -> list[Path]:
        """Delete all but the ``keep`` newest complete checkpoints (and broken older ones)."""
        kept = 0
        removed: list[Path] = []
        for _, path in self._candidates():
            if kept < self.keep:
                try:
                    self.verify(path)
                except CheckpointError:
                    continue  # newer than a kept one: left for inspection
                kept += 1
                continue
            # Candidates come newest first, one per step: this one is older than every kept one.
            shutil.rmtree(path, ignore_errors=True)
            self._verified.pop(path, None)
            removed.append(path)
        if removed:
            fsync_dir(self.directory)
        return removed

    def _remove_stale_scratch(self) -> None:
        for entry in orphans(self.directory) + orphans(self.directory, _TRASH):
            if entry.is_dir():
                remove(entry)
        with contextlib.suppress(OSError):
            fsync_dir(self.directory)
