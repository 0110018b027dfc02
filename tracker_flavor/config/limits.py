"""How long a request to the tracking server may take to fail, and how a server counts as down.

MLflow gives every attempt of a request `MLFLOW_HTTP_REQUEST_TIMEOUT` seconds (one number, used
by urllib3 as connect and read timeout) and retries it `MLFLOW_HTTP_REQUEST_MAX_RETRIES` times
with urllib3's exponential backoff, so a server that never answers costs all attempts plus the
sleeps between them: that total, not one attempt's timeout, is the time a failure message may
state.

A slow server is not a down one, so MLflow's number is the read timeout (`read_timeout_seconds`,
120 s). Whether a server is down is decided apart from MLflow's requests, by whether it accepts a
TCP connection within `connect_timeout_seconds` (`mlflow/connection.py`): MLflow's one number
cannot be a (connect, read) pair without replacing its HTTP session, and a refused connection
fails at once anyway.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from urllib3.util import Retry

if TYPE_CHECKING:
    from tracker_flavor.config.component import MLflowPlusConfig

BACKOFF_FACTOR = 1


@dataclass(frozen=True)
class RequestLimits:
    """The time limits of one request to the tracking server."""

    timeout_seconds: int
    """Seconds one attempt may wait for an answer (MLflow's request timeout)."""
    retries: int
    connect_seconds: int = 10
    """Seconds a server has to accept a connection before it counts as down."""

    @classmethod
    def of(cls, config: "MLflowPlusConfig") -> "RequestLimits":
        """Return the limits a tracker's configuration sets."""
        return cls(config.read_timeout_seconds, config.max_retries, config.connect_timeout_seconds)

    @property
    def attempts(self) -> int:
        """Return how often a request is sent before it fails."""
        return self.retries + 1

    def backoff_seconds(self) -> float:
        """Return the sleeps between the attempts: urllib3 waits none after the first failure."""
        longest = float(Retry.DEFAULT_BACKOFF_MAX)
        return sum(
            min(BACKOFF_FACTOR * 2.0 ** (failures - 1), longest)
            for failures in range(2, self.attempts)
        )

    def bound_seconds(self) -> float:
        """Return how long a request to a server that never answers takes to fail."""
        return self.attempts * self.timeout_seconds + self.backoff_seconds()

    def describe(self) -> str:
        """Return the bound in words, e.g. `32 s (3 attempts of 10 s plus 2 s backoff)`."""
        if self.attempts == 1:
            return f"{self.bound_seconds():g} s"
        return (
            f"{self.bound_seconds():g} s ({self.attempts} attempts of {self.timeout_seconds} s "
            f"plus {self.backoff_seconds():g} s backoff)"
        )

    def variables(self) -> dict[str, str]:
        """Return the MLflow environment variables that apply these limits."""
        return {
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.timeout_seconds),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(BACKOFF_FACTOR),
            # Without jitter the bound above is exact.
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
        }
