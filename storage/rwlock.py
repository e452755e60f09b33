"""A shared/exclusive lock for the transactions of one LMDB environment.

Resizing an LMDB map (``set_mapsize``) is only safe when no transaction of the
process is open: py-lmdb aborts open ones under the caller's feet. Every
transaction therefore runs under the shared side of this lock and a resize takes
the exclusive side. A waiting resize blocks new shared holders so a busy sampler
cannot starve it; shared sections must not nest (they would deadlock behind a
waiting resize), and none in this package do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SharedExclusiveLock:
    """Many shared holders or one exclusive holder; exclusive waiters go first."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._shared = 0
        self._exclusive = False
        self._waiting_exclusive = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive or self._waiting_exclusive:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                if self._shared == 0:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting_exclusive += 1
            try:
                while self._exclusive or self._shared:
                    self._cond.wait()
            finally:
                self._waiting_exclusive -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()
