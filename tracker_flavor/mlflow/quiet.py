"""Keep urllib3's per-request noise out of the output of the tracker's own requests.

The tracker warns once about a connection it does not verify, and turns a failed request into
one line; urllib3 would add an `InsecureRequestWarning` for every request and a `Retrying ...`
line for every retry, and MLflow a warning for each Databricks request after a step, whose
SDK path finds no credentials in the environment (the tracker's are in memory).
"""

import logging
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import urlsplit

from urllib3.exceptions import InsecureRequestWarning

URLLIB3_POOL_LOGGER = "urllib3.connectionpool"
DATABRICKS_LOGGER = "mlflow.utils.databricks_utils"
SDK_FALLBACK = "Failed to create databricks SDK workspace client"
"""MLflow's warning when its SDK path finds no credentials in the environment; the tracker's
requests after a step then go MLflow's other way, with the credentials from memory."""


class RequestNoise(logging.Filter):
    """Drops urllib3's `Retrying` lines of the requests the tracker makes in a thread.

    Logger levels are process-wide: a per-thread filter keeps the lines of user code and of
    other threads, which the tracker does not report for.
    """

    def __init__(self) -> None:
        super().__init__()
        self._inside = threading.local()
        self._unverified: set[str] = set()
        """Hosts whose per-request TLS warning is filtered out."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep a record unless it is a retry or SDK-fallback line of a tracker request here."""
        inside = getattr(self._inside, "depth", 0) > 0
        return not (inside and str(record.msg).startswith(("Retrying", SDK_FALLBACK)))

    @contextmanager
    def tracker_requests(self) -> Iterator[None]:
        """Leave out urllib3's retry lines for the requests this thread makes inside the block."""
        self._inside.depth = getattr(self._inside, "depth", 0) + 1
        try:
            yield
        finally:
            self._inside.depth -= 1

    def skip_unverified_warnings(self, uri: str) -> None:
        """Stop urllib3's per-request warning about `uri`'s host: the tracker warns once itself.

        Warning filters are process-wide, and `warnings.catch_warnings` swaps the whole filter
        list, which is not safe while steps run on several threads. A filter keyed on the host
        leaves the warning for every other host; for this one the user chose
        `tracking_insecure_tls`.
        """
        if host := urlsplit(uri).hostname:
            self._unverified.add(host)
            # Again each time: a filter list swapped in since (catch_warnings) may lack it, and
            # Python keeps one copy of a filter, moved to the front.
            warnings.filterwarnings(
                "ignore", message=_unverified(host), category=InsecureRequestWarning
            )

    def install(self) -> None:
        """Filter urllib3's connection-pool logger and MLflow's Databricks one."""
        for name in (URLLIB3_POOL_LOGGER, DATABRICKS_LOGGER):
            logging.getLogger(name).addFilter(self)

    def uninstall(self) -> None:
        """Stop filtering urllib3's connection-pool logger and MLflow's Databricks one."""
        for name in (URLLIB3_POOL_LOGGER, DATABRICKS_LOGGER):
            logging.getLogger(name).removeFilter(self)
        patterns = {_unverified(host) for host in self._unverified}
        filters = cast(list[Any], warnings.filters)
        filters[:] = [
            entry
            for entry in warnings.filters
            if not (
                entry[2] is InsecureRequestWarning
                and getattr(entry[1], "pattern", None) in patterns
            )
        ]
        self._unverified.clear()


def _unverified(host: str) -> str:
    """Return the pattern of urllib3's warning about an unverified request to `host`."""
    return f"Unverified HTTPS request is being made to host '{re.escape(host)}'"
