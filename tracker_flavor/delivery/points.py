"""A metric point's identity, and the points of a batch a run's history lacks."""

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.entities import Metric


def identity(metric: "Metric") -> tuple[str, int, int, Any]:
    """Return what makes a point one point to MLflow; NaN equals NaN, unlike in Python."""
    value = metric.value
    return metric.key, metric.step, metric.timestamp, "nan" if math.isnan(value) else value


def missing_points(batch: Iterable["Metric"], stored: Iterable["Metric"]) -> list["Metric"]:
    """Return the points of `batch` that `stored` lacks (one stored stands for all equal ones)."""
    have = {identity(metric) for metric in stored}
    return [metric for metric in batch if identity(metric) not in have]
