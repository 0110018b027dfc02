"""MLflow's own system-metrics sampler (CPU, memory, disk, network, GPU) around each step.

In unified mode concurrent steps share the parent run, so each step's metrics carry its name
(MLflow's node id: `system/<step>/cpu_utilization_percentage`). A final sample is logged when
the step ends, so a step shorter than the interval is measured too.
"""

from typing import Any
from uuid import UUID

from tracker_flavor.concurrency.caches import BoundedCache
from tracker_flavor.mlflow import internals


class SystemMetrics:
    """The running steps' samplers."""

    def __init__(self) -> None:
        self._monitors: BoundedCache[UUID, Any] = BoundedCache()

    def start(
        self, step_run_id: UUID, run_id: str, uri: str, interval: float, node: str | None
    ) -> None:
        """Sample the process's resources into `run_id` every `interval` seconds, until `stop`."""
        monitor = internals.system_metrics_monitor(run_id, uri, interval, node)
        self._monitors.put(step_run_id, monitor)
        monitor.start()

    def stop(self, step_run_id: UUID) -> None:
        """Stop the step's sampler after one last sample (no-op when it has none)."""
        monitor = self._monitors.pop(step_run_id)
        if monitor is None:
            return
        monitor.finish()
        monitor.collect_metrics()
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()

    def __len__(self) -> int:
        return len(self._monitors)
