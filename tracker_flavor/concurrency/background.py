"""Work started on a thread of its own, its result or error taken where it is needed."""

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


def started(work: Callable[[], T], name: str) -> "Future[T]":
    """Run `work` on a daemon thread named `name`; return its future result or error."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(work())
        except BaseException as error:  # handed to whoever takes the result
            future.set_exception(error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
