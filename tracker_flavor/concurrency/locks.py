"""Locks that keep no state beyond the threads that hold them."""

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager


class KeyLocks:
    """One lock per key, kept only while some thread holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        """Hold the lock of `key` for the block."""
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


class ReadersWriterLock:
    """A lock held shared by many threads at once, or exclusively by one.

    Re-entrant per thread, in either mode. A waiting exclusive holder goes before new shared
    ones, so a stream of shared holds cannot hold it off.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared: dict[int, int] = {}
        """Depth of the shared holds of each thread holding it shared."""
        self._owner: int | None = None
        self._depth = 0
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock shared for the block: other shared holders may too, no exclusive one."""
        me = threading.get_ident()
        with self._cond:
            if me not in self._shared and self._owner != me:
                self._cond.wait_for(lambda: self._owner is None and not self._waiting)
            self._shared[me] = self._shared.get(me, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                self._shared[me] -= 1
                if not self._shared[me]:
                    del self._shared[me]
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock alone for the block."""
        me = threading.get_ident()
        with self._cond:
            if self._owner != me:
                self._waiting += 1
                try:
                    self._cond.wait_for(
                        lambda: self._owner is None and not set(self._shared) - {me}
                    )
                finally:
                    self._waiting -= 1
                self._owner = me
            self._depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if not self._depth:
                    self._owner = None
                    self._cond.notify_all()


class Shared:
    """Process state while someone uses it: the first `enter` puts it in, the last `leave` out."""

    def __init__(self, put_in: Callable[[], None], take_out: Callable[[], None]) -> None:
        self._put_in = put_in
        self._take_out = take_out
        self._lock = threading.Lock()
        self._users = 0

    def enter(self) -> None:
        """Count one more user, putting the state in for the first."""
        with self._lock:
            if self._users == 0:
                self._put_in()
            self._users += 1

    def leave(self) -> None:
        """Count one user less (an extra leave is harmless), taking the state out after the last."""
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0:
                self._take_out()

    def reset(self) -> None:
        """Take the state out whoever still uses it."""
        with self._lock:
            if self._users:
                self._take_out()
            self._users = 0
