"""One lock between turning MLflow autologging on or off and the tracker's MLflow calls.

`mlflow.autolog()` imports libraries while holding MLflow's import-hook lock, and MLflow's clients
import lazily inside every request (Databricks and Spark probes). A tracker thread sending or
settling while a step turns autologging on would wait on that lock while holding a module lock
the step's import needs: both hang. So turning autologging on or off holds the lock exclusively,
and each of the tracker's MLflow calls holds it shared: calls run side by side, never beside an
autologging switch, and nothing else (a wait for another process's creation lock) holds it.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class AutologLock:
    """A readers-writer lock: shared by MLflow calls, exclusive for autologging switches.

    Re-entrant per thread, in either mode (a settle that builds a client inside a call). A
    waiting switch goes before new calls, so a stream of calls cannot hold it off.
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
        """Hold the lock shared for the block: other calls may run, no autologging switch."""
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
        """Hold the lock alone for the block (turning autologging on or off)."""
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


AUTOLOG_LOCK = AutologLock()
