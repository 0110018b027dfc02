"""Keep urllib3's per-request noise out of the output of the tracker's own requests.

The tracker warns once about a connection it does not verify, and turns a failed request into
one line; urllib3 would add an `InsecureRequestWarning` for every request and a `Retrying ...`
line for every retry.
"""

import logging
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from urllib3.exceptions import InsecureRequestWarning

_tracker_requests = threading.local()


class _TrackerRetries(logging.Filter):
    """Drop urllib3's `Retrying` lines of the requests the tracker makes in this thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        inside = getattr(_tracker_requests, "depth", 0) > 0
        return not (inside and str(record.msg).startswith("Retrying"))


_RETRIES = _TrackerRetries()


@contextmanager
def tracker_requests() -> Iterator[None]:
    """Leave out urllib3's retry lines for the requests this thread makes inside the block.

    Logger levels are process-wide: a per-thread filter keeps the lines of user code and of
    other threads, which the tracker does not report for.
    """
    logging.getLogger("urllib3.connectionpool").addFilter(_RETRIES)
    _tracker_requests.depth = getattr(_tracker_requests, "depth", 0) + 1
    try:
        yield
    finally:
        _tracker_requests.depth -= 1


def skip_unverified_warnings(uri: str) -> None:
    """Stop urllib3's per-request warning about `uri`'s host: the tracker warns once itself.

    Warning filters are process-wide, and `warnings.catch_warnings` swaps the whole filter list,
    which is not safe while steps run on several threads. A filter keyed on the host leaves the
    warning for every other host; for this one the user chose `tracking_insecure_tls`.
    """
    if host := urlsplit(uri).hostname:
        warnings.filterwarnings(
            "ignore",
            message=f"Unverified HTTPS request is being made to host '{re.escape(host)}'",
            category=InsecureRequestWarning,
        )
