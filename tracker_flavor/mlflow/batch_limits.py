"""What one MLflow `log-batch` request may carry, and the one way values are cut to fit.

Literals, as importing this module must not import MLflow; a unit test holds them equal to
`mlflow.utils.validation`'s.
"""

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

MAX_VALUES = 1000
"""Metric values, params and tags together in one request."""
MAX_PARAMS = 100
MAX_TAGS = 100
MAX_REQUEST_BYTES = 900_000
"""A request body may have 1 MB; this leaves room for the JSON around the values."""


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Yield `items` in consecutive slices of at most `size` (none when there are no items)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
