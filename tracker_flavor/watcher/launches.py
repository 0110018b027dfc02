"""Settle a step the moment ZenML's launcher returns it, in the thread that launched it.

ZenML stores a step's outputs and publishes it as final at the end of `StepLauncher.launch`,
in the process and thread that ran the step (the local orchestrator's, a dynamic pipeline's pool
thread, a step pod's entrypoint), and calls no tracker hook after that. So the runtime wraps
`launch`: a step this process watches is settled with the step run `launch` returns (no read of
it), before `launch` returns, so its outputs, model and lineage are in MLflow before `pipeline()`
returns and before a later step starts. While the launch runs, the watcher polls neither the
step nor its pipeline run. A step published by another process, or one whose launch raised, is
left to the watcher thread's polls.
"""

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracker_flavor.watcher.watcher import Watcher


def launcher_class() -> type:
    """Return ZenML's step launcher class (imported when installed, never at import time)."""
    from zenml.orchestrators.step_launcher import StepLauncher

    return StepLauncher


class LaunchHook:
    """The wrap of ZenML's `StepLauncher.launch` that settles the launched step (runtime state)."""

    def __init__(self, watcher: "Watcher") -> None:
        self._watcher = watcher
        self._patched: tuple[type, Any] | None = None

    def install(self, launcher: type | None = None) -> None:
        """Wrap the launcher class's `launch` (ZenML's when not given)."""
        if self._patched is not None:
            return
        cls = launcher or launcher_class()
        original = cls.__dict__["launch"]
        watcher = self._watcher

        @functools.wraps(original)
        def launch(launcher_self: Any, *args: Any, **kwargs: Any) -> Any:
            with watcher.launching():
                step_run = original(launcher_self, *args, **kwargs)
                watcher.finish(step_run)
            return step_run

        launch.__wrapped_by_mlflow_plus__ = original  # type: ignore[attr-defined]
        cls.launch = launch  # type: ignore[attr-defined]
        self._patched = (cls, original)

    def uninstall(self) -> None:
        """Put the original `launch` back, unless someone wrapped it after us (then leave it)."""
        if self._patched is None:
            return
        cls, original = self._patched
        self._patched = None
        current = cls.__dict__.get("launch")
        if getattr(current, "__wrapped_by_mlflow_plus__", None) is original:
            cls.launch = original  # type: ignore[attr-defined]
