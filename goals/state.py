"""Where the curriculum keeps what must survive a crash at once.

The run's episode store offers a small key-value side table. The curriculum
writes to it only the goal registry and the injection queue, as they change;
its learning state goes into the runtime's checkpoints instead (see
:mod:`autotelic.goals.daemon`). It codes against this protocol only, so it
needs no import of the storage package and tests can use
:class:`MemoryStateStore`.
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import msgpack
import numpy as np
import numpy.typing as npt

STATE_PREFIX = "curriculum/"
"""Every key the curriculum writes starts with this."""


@runtime_checkable
class StateStore(Protocol):
    """A durable key-value table: values are msgpack-able (dict/list/str/int/float/bool/None)."""

    def get_state(self, key: str) -> Any | None:
        """The value last put under ``key``, or None."""
        ...

    def put_state(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``; it is durable when this returns."""
        ...


@runtime_checkable
class BatchStateStore(StateStore, Protocol):
    """A :class:`StateStore` that also writes several keys at once and lists keys.

    The daemon's durable outbox of injection results needs it: an outcome and the
    results it owes are written in one step (see :mod:`autotelic.goals.daemon`).
    """

    def put_states(self, values: Mapping[str, Any], delete: Iterable[str] = ()) -> None:
        """Put ``values`` and delete the keys ``delete`` atomically; durable when it returns."""
        ...

    def state_keys(self, prefix: str = "") -> list[str]:
        """Stored keys that start with ``prefix``, sorted."""
        ...


class MemoryStateStore:
    """A process-local :class:`StateStore` that round-trips values through msgpack.

    The round trip, and a refusal of non-finite numbers, make it fail where the
    run's LMDB store would. Useful for tests and for runs without persistence.
    """

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get_state(self, key: str) -> Any | None:
        with self._lock:
            raw = self._data.get(key)
        return None if raw is None else msgpack.unpackb(raw, strict_map_key=False)

    def put_state(self, key: str, value: Any) -> None:
        _check_finite(value, key)
        raw = msgpack.packb(value)
        with self._lock:
            self._data[key] = raw

    def put_states(self, values: Mapping[str, Any], delete: Iterable[str] = ()) -> None:
        for key, value in values.items():
            _check_finite(value, key)
        raws = {key: msgpack.packb(value) for key, value in values.items()}
        with self._lock:
            for key in delete:
                self._data.pop(key, None)
            self._data.update(raws)

    def state_keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(k for k in self._data if k.startswith(prefix))


def _check_finite(value: Any, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path}: {value} is not a finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{path}[{k!r}]")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_finite(v, f"{path}[{i}]")


def encode_array(array: npt.NDArray[Any]) -> dict[str, Any]:
    """An array as JSON- and msgpack-able data (base64 of its bytes, dtype and shape)."""
    contiguous = np.ascontiguousarray(array)
    return {
        "dtype": str(contiguous.dtype),
        "shape": list(contiguous.shape),
        "b64": base64.b64encode(contiguous.tobytes()).decode("ascii"),
    }


def decode_array(data: dict[str, Any]) -> npt.NDArray[Any]:
    """The inverse of :func:`encode_array` (a fresh, writable array)."""
    raw = base64.b64decode(data["b64"])
    return np.frombuffer(raw, dtype=np.dtype(data["dtype"])).reshape(data["shape"]).copy()


_BIT_GENERATORS: dict[str, Any] = {
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "Philox": np.random.Philox,
    "SFC64": np.random.SFC64,
}


def encode_rng(rng: np.random.Generator) -> dict[str, Any]:
    """A numpy Generator's state with its 128-bit integers as strings (msgpack stops at 64)."""
    state: dict[str, Any] = _stringify_ints(rng.bit_generator.state)
    return state


def decode_rng(data: dict[str, Any]) -> np.random.Generator:
    """A Generator in exactly the state :func:`encode_rng` saw."""
    state = _parse_ints(data)
    name = state.get("bit_generator")
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown random generator {name!r} in saved state")
    bit_generator = _BIT_GENERATORS[name]()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _stringify_ints(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stringify_ints(v) for k, v in value.items()}
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {"int": str(value)}
    return value


def _parse_ints(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"int"}:
            return int(value["int"])
        return {k: _parse_ints(v) for k, v in value.items()}
    return value
