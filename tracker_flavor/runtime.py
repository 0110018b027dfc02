"""The tracker's process state, in one object that tests can reset.

ZenML may run several steps of one tracker at once on a thread pool, and a long-lived process
(a notebook, a server running pipelines) runs many pipelines: every cache here is bounded, every
lock map forgets locks nobody holds, and nothing is registered at import time.
"""

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar
from uuid import UUID

from tracker_flavor.autologging import Autologging
from tracker_flavor.batching import Ledgers
from tracker_flavor.environment import ProcessEnvironment
from tracker_flavor.finalizer import RunFinalizer
from tracker_flavor.published import Deliveries
from tracker_flavor.runs import Parent
from tracker_flavor.settlement import ParentStatuses

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

CACHE_SIZE = 1024
"""Entries each cache keeps: far more than the pipeline runs one process works on at once."""


class BoundedCache(Generic[K, V]):
    """A thread-safe mapping that forgets its least recently used entries beyond `size`."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """Return the value of `key`, None if it is not (or no longer) cached."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def pop(self, key: K) -> V | None:
        """Forget `key`; return its value, None if it was not cached."""
        with self._lock:
            return self._items.pop(key, None)

    def put_new(self, key: K, value: V) -> bool:
        """Cache `value` under `key` unless it is cached; tell whether it was not."""
        with self._lock:
            if key in self._items:
                return False
            self._store(key, value)
            return True

    def put(self, key: K, value: V) -> None:
        """Cache `value` under `key`, forgetting the oldest entry when full."""
        with self._lock:
            self._store(key, value)

    def _store(self, key: K, value: V) -> None:
        """Cache `value` under `key` as the most recent entry, within the size (lock held)."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


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


class Runtime:
    """What the tracker keeps per process: environment, autologging, caches, ledgers, watchers."""

    def __init__(self) -> None:
        self.environment = ProcessEnvironment()
        self.autologging = Autologging()
        self.experiments: BoundedCache[tuple[str, str], str] = BoundedCache()
        self.parents: BoundedCache[tuple[str, str], Parent] = BoundedCache()
        self.locks = KeyLocks()
        self.statuses = ParentStatuses()
        self.finalizer = RunFinalizer()
        self.ledgers = Ledgers()
        self.monitors: BoundedCache[UUID, Any] = BoundedCache()
        """Each running step's system-metrics sampler (see system_metrics.py)."""
        self.deliveries = Deliveries()
        self.deferred: BoundedCache[UUID, tuple[str, float]] = BoundedCache()
        """A pipeline run's first failure, kept for its first step (see errors.defer)."""
        self.current_stores: BoundedCache[Path, bool] = BoundedCache()
        """SQLite stores found at the schema this MLflow needs (see sqlite_store.prepare)."""
        self._warned: BoundedCache[tuple[Hashable, ...], bool] = BoundedCache()

    def first(self, *warning: Hashable) -> bool:
        """Tell whether this process has not yet given this warning (and now has)."""
        return self._warned.put_new(warning, True)

    def reset(self) -> None:
        """Start afresh (tests): forget every cache; pending watchers are dropped."""
        self.finalizer.stop()
        self.deliveries.stop()
        self.__init__()  # type: ignore[misc]


runtime = Runtime()
"""The process's one runtime."""
