"""Byte framing of stored values: a CRC-32 of the payload, then msgpack.

msgpack decodes only plain data (maps, lists, strings, numbers), so opening a
replay file can never run code, unlike pickle. The checksum turns a flipped or
truncated value into a clear error naming the record instead of a confusing
failure (or silently wrong data) later in training.
"""

from __future__ import annotations

import gc
import math
import struct
import threading
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import msgpack

from autotelic.storage.errors import CorruptRecordError, SchemaVersionError

_CRC = struct.Struct(">I")


def seal(body: bytes) -> bytes:
    """``body`` prefixed with its CRC-32: the stored form of every value."""
    return _CRC.pack(zlib.crc32(body)) + body


def checked_body(data: bytes | memoryview, what: str, min_size: int = 1) -> memoryview:
    """The body of a sealed value, after checking its length and CRC-32.

    ``min_size`` is the fewest body bytes a valid value has; ``what`` names the
    record in errors.
    """
    view = memoryview(data)
    if len(view) < _CRC.size + min_size:
        raise CorruptRecordError(what, f"value of {len(view)} bytes is truncated")
    (expected,) = _CRC.unpack_from(view)
    body = view[_CRC.size :]
    if zlib.crc32(body) != expected:
        raise CorruptRecordError(what, "checksum mismatch (bytes changed after writing)")
    return body


def frame(payload: Any) -> bytes:
    """Pack ``payload`` with msgpack and prefix its CRC-32."""
    return seal(msgpack.packb(payload, use_bin_type=True))


def unframe(data: bytes | memoryview, what: str) -> Any:
    """Check the CRC-32 and unpack; ``what`` names the record in errors."""
    body = checked_body(data, what)
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise CorruptRecordError(what, f"not valid msgpack ({exc})") from exc


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while decoding a batch of records.

    Unpacking creates many small lists and strings, none in cycles; in a process
    with a large heap (a learner) the collections they trigger cost more than the
    decoding itself. Pausing is counted, so overlapping pauses from several
    threads re-enable the collector once, and only if it was enabled before.
    """
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()


def check_version(record: Mapping[str, Any], what: str, supported: int) -> int:
    """The record's schema version; newer than ``supported`` is a clear error."""
    version = record.get("v") if isinstance(record, Mapping) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CorruptRecordError(what, f"missing or invalid schema version {version!r}")
    if version > supported:
        raise SchemaVersionError(what, version, supported)
    return version


def check_packable(value: Any, what: str) -> None:
    """Reject what msgpack would store lossily or not at all, naming the path to it."""
    _check(value, what, depth=0)


_MAX_DEPTH = 64


def _check(value: Any, path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"{path}: nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise ValueError(f"{path}: integer {value} does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: {value} is not a finite number")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise ValueError(f"{path}: key {key!r} must be a str or an int")
            _check(item, f"{path}[{key!r}]", depth + 1)
        return
    raise ValueError(
        f"{path}: {type(value).__name__} cannot be stored; use dict, list, str, int, float, "
        "bool or None"
    )
