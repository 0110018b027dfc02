"""What a step logged and where each value stands: the chunks values travel in, and its ledger.

A chunk holds values of one logging call for one run, sized to fit one `log-batch` request; a
ledger is one step's exact account of them (submitted, delivered, rejected, spooled, left), and
what it reports as step metadata. queue.py moves chunks; this module only accounts for them.
"""

import json
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from tracker_flavor.config.uris import redact_credentials
from tracker_flavor.mlflow.batch_limits import MAX_PARAMS, batches
from tracker_flavor.runs import metadata

if TYPE_CHECKING:
    from mlflow.entities import Metric, Param, RunTag

    from tracker_flavor.mlflow.internals import Internals

FINAL_WAIT_SECONDS = 30.0
"""How long a step's end waits for its values when MLflow's request limits are not known."""


class DeliveryError(RuntimeError):
    """Values a step logged did not reach the MLflow store."""


@dataclass(eq=False)
class Call:
    """One logging call: MLflow's handle on its delivery resolves when all its chunks settle."""

    done: Future[None] = field(default_factory=Future)
    pieces: int = 0
    error: Exception | None = None

    def settle(self, error: Exception | None = None) -> None:
        """Record one chunk's outcome; resolve the handle when it was the last one."""
        self.error = self.error or error
        self.pieces -= 1
        if self.pieces <= 0:
            if self.error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(self.error)


@dataclass(eq=False)
class Chunk:
    """Values of one logging call (or a slice of it) for one run that travel together."""

    run_id: str
    ledger: "Ledger | None"
    call: Call
    metrics: list["Metric"] = field(default_factory=list)
    params: list["Param"] = field(default_factory=list)
    tags: list["RunTag"] = field(default_factory=list)
    sent: bool = False
    """Whether a request carrying the chunk may have reached the store (its answer was lost)."""
    group: int = 0
    """Non-zero for a part of a refused request: it travels only with its own group."""

    @property
    def size(self) -> int:
        """Return the number of values in the chunk."""
        return len(self.metrics) + len(self.params) + len(self.tags)

    @property
    def ordered_keys(self) -> set[tuple[str, str]]:
        """Return the keys whose stored value depends on the order of requests.

        A run keeps a tag's last value and a param's first (a changed one is refused); it keeps
        every metric point, ordered by step and time whatever order they arrive in.
        """
        return {("param", p.key) for p in self.params} | {("tag", t.key) for t in self.tags}

    @property
    def bytes(self) -> int:
        """Return about how much of a request body the chunk takes."""
        strings = [(p.key, p.value) for p in self.params] + [(t.key, t.value) for t in self.tags]
        return sum(80 + len(m.key) for m in self.metrics) + sum(
            40 + len(json.dumps(key)) + len(json.dumps(value)) for key, value in strings
        )

    def halves(self) -> tuple["Chunk", "Chunk"]:
        """Split the chunk's values in two chunks of the same call (size > 1)."""
        values: list[tuple[str, Any]] = [("metrics", v) for v in self.metrics]
        values += [("params", v) for v in self.params] + [("tags", v) for v in self.tags]
        middle = len(values) // 2
        parts = []
        for part in (values[:middle], values[middle:]):
            chunk = Chunk(self.run_id, self.ledger, self.call, sent=self.sent)
            for kind, value in part:
                getattr(chunk, kind).append(value)
            parts.append(chunk)
        self.call.pieces += 1
        return parts[0], parts[1]


@dataclass(eq=False)
class Ledger:
    """One step's account of the values its code logged, into its run or any other."""

    run_id: str
    uri: str
    step_name: str = ""
    final_wait: float = FINAL_WAIT_SECONDS
    """Seconds the step's end keeps trying to deliver what is left."""
    submitted: int = 0
    delivered: int = 0
    rejected: int = 0
    spooled: int = 0
    """Values handed to the spool (see spool.py) after the final wait: no longer owed."""
    spooled_unconfirmed: int = 0
    """Of those, values sent without an answer: they may be stored; the spool's delivery checks."""
    error: str | None = None
    left: list[Chunk] = field(default_factory=list)
    """What was not delivered by the step's end, in order, with every value."""
    queued: int = 0
    settling: bool = False
    """The step is ending: its values are due at once, ahead of other steps' values."""
    closed: bool = False
    late: int = 0
    """Values a thread of the step logged after it ended: sent to their run, not in its count."""

    @property
    def undelivered(self) -> int:
        """Return how many valid values have not reached the store (yet)."""
        return self.submitted - self.delivered - self.rejected - self.spooled

    @property
    def unconfirmed(self) -> int:
        """Return how many undelivered values were sent without an answer (they may be stored)."""
        return sum(chunk.size for chunk in self.left if chunk.sent)

    def failure(self) -> DeliveryError | None:
        """Return the error that fails the step, if any value was not delivered."""
        if not self.undelivered:
            return None
        unknown = (
            f" ({self.unconfirmed} of them were sent without an answer and may have arrived)"
            if self.unconfirmed
            else ""
        )
        return DeliveryError(
            redact_credentials(  # both the URI and MLflow's message may carry user:password@
                f"{self.undelivered} of {self.submitted} points (metric values, params, tags) "
                f"logged in this step were not delivered to MLflow run {self.run_id} at "
                f"{self.uri}{unknown}: {self.error or 'the store did not acknowledge them'}"
            )
        )

    def metadata(self) -> dict[str, int]:
        """Return the account as step metadata."""
        return {
            metadata.VALUES_DELIVERED_KEY: self.delivered,
            metadata.VALUES_NOT_DELIVERED_KEY: self.undelivered,
            metadata.VALUES_UNCONFIRMED_KEY: self.unconfirmed + self.spooled_unconfirmed,
            metadata.VALUES_REJECTED_KEY: self.rejected,
            **({metadata.VALUES_SPOOLED_KEY: self.spooled} if self.spooled else {}),
        }


def chunks_of(
    run_id: str,
    ledger: Ledger | None,
    call: Call,
    metrics: list["Metric"],
    params: list["Param"],
    tags: list["RunTag"],
) -> list[Chunk]:
    """Split one logging call into chunks that each fit in a single request."""
    parts = zip_longest(
        batches(metrics, MAX_PARAMS), batches(params, MAX_PARAMS), batches(tags, MAX_PARAMS),
        fillvalue=(),
    )  # fmt: skip
    chunks = [Chunk(run_id, ledger, call, list(m), list(p), list(t)) for m, p, t in parts]
    call.pieces = len(chunks)
    return chunks


def validated(
    seam: "Internals",
    metrics: Iterable["Metric"],
    params: Iterable["Param"],
    tags: Iterable["RunTag"],
) -> tuple[list["Metric"], list["Param"], list["RunTag"], list[tuple[str, str, Exception]]]:
    """Check values with MLflow's validators; return the valid ones and (kind, key, error)s."""
    from mlflow.entities import Param, RunTag
    from mlflow.exceptions import MlflowException

    if (found := seam.validators()) is None:
        return list(metrics), list(params), list(tags), []
    _validate_metric, _validate_param, _validate_tag = found
    good_metrics: list[Metric] = []
    good_params: list[Param] = []
    good_tags: list[RunTag] = []
    bad: list[tuple[str, str, Exception]] = []
    for metric in metrics:
        try:
            _validate_metric(metric.key, metric.value, metric.timestamp, metric.step)
            good_metrics.append(metric)
        except MlflowException as error:
            bad.append(("metric", metric.key, error))
    for param in params:
        try:  # the validators return long values truncated, as MLflow stores them
            checked = _validate_param(param.key, str(param.value))
            good_params.append(Param(checked.key, checked.value))
        except MlflowException as error:
            bad.append(("param", param.key, error))
    for tag in tags:
        try:
            checked = _validate_tag(tag.key, str(tag.value))
            good_tags.append(RunTag(checked.key, checked.value))
        except MlflowException as error:
            bad.append(("tag", tag.key, error))
    return good_metrics, good_params, good_tags, bad
