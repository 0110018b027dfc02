"""Settle a step the moment ZenML's launcher returns it, in the thread that launched it.

ZenML stores a step's outputs and publishes it as final at the end of `StepLauncher.launch`,
in the process and thread that ran the step (the local orchestrator's, a dynamic pipeline's pool
thread, a step pod's entrypoint), and calls no tracker hook after that. So the runtime wraps
`launch`: a step this process watches is settled with the step run `launch` returns (no read of
it). Its outputs, model and lineage are sent before `launch` returns, or, when the orchestrator
launches another step after it here (the tracker decides), on a thread of their own that the
next launch waits for before it returns: either way they are in MLflow before `pipeline()`
returns. While the launch runs, the watcher polls neither the step nor its pipeline run. A step
published by another process, or one whose launch raised, is left to the watcher thread's polls.

The step run ZenML publishes lists its outputs without their visualizations; ZenML's step
runner had them, in the artifact versions its request that stored the outputs returned. The
runtime also wraps that method of the runner, `_store_output_artifacts` (ZenML 0.96–0.98; its
one private name the tracker relies on), to hand those versions to the settling of the step,
so reading its reports costs ZenML no call. Where the runner has no such method, or a version
comes back without its details, the reports are read from ZenML as for any other step.
"""

import functools
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import wait
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zenml.models import ArtifactVersionResponse, StepRunResponse

    from tracker_flavor.watcher.after_step import Deliveries
    from tracker_flavor.watcher.watcher import Watcher

STORE_OUTPUTS = "_store_output_artifacts"
"""The step runner's method that stores the outputs and returns their artifact versions."""


def launcher_class() -> type:
    """Return ZenML's step launcher class (imported when installed, never at import time)."""
    from zenml.orchestrators.step_launcher import StepLauncher

    return StepLauncher


def runner_class() -> type:
    """Return ZenML's step runner class (imported when installed, never at import time)."""
    from zenml.orchestrators.step_runner import StepRunner

    return StepRunner


def with_stored_outputs(
    step_run: "StepRunResponse", stored: Mapping[str, "ArtifactVersionResponse"]
) -> "StepRunResponse":
    """Return a copy of the step run whose outputs are the versions the runner stored."""
    # A copy: ZenML's caller gets the step run its launcher returned.
    by_id = {version.id: version for version in stored.values()}
    if not by_id or step_run.resources is None:
        return step_run
    outputs = {
        name: [by_id.get(version.id, version) for version in versions]
        for name, versions in step_run.resources.outputs.items()
    }
    resources = step_run.resources.model_copy(update={"outputs": outputs})
    return step_run.model_copy(update={"resources": resources})


Wrap = Callable[[Any], Callable[..., Any]]
"""Return the wrapper of an original method."""


class LaunchHook:
    """The wraps of ZenML's launcher and runner that settle the launched step (runtime state)."""

    def __init__(self, watcher: "Watcher", deliveries: "Deliveries") -> None:
        self._watcher = watcher
        self._deliveries = deliveries
        self._patched: list[tuple[type, str, Any]] = []
        self._stored = threading.local()
        """The outputs the runner stored during this thread's launch, by output name."""

    def install(self, launcher: type | None = None, runner: type | None = None) -> None:
        """Wrap the launcher's `launch` and the runner's output storing (ZenML's if not given)."""
        if self._patched:
            return
        self._wrap(launcher or launcher_class(), "launch", self._launch)
        self._wrap(runner or runner_class(), STORE_OUTPUTS, self._store)

    def _wrap(self, cls: type, name: str, wrap: Wrap) -> None:
        original = cls.__dict__.get(name)
        if original is None:  # another ZenML: its steps' reports are read from ZenML instead
            return
        wrapper = functools.wraps(original)(wrap(original))
        wrapper.__wrapped_by_mlflow_plus__ = original  # type: ignore[attr-defined]
        setattr(cls, name, wrapper)
        self._patched.append((cls, name, original))

    def _launch(self, original: Any) -> Callable[..., Any]:
        watcher, stored, deliveries = self._watcher, self._stored, self._deliveries

        def launch(launcher_self: Any, *args: Any, **kwargs: Any) -> Any:
            outer = getattr(stored, "outputs", None)
            stored.outputs = {}
            earlier = deliveries.handed()
            try:
                with watcher.launching():
                    step_run = original(launcher_self, *args, **kwargs)
                    watcher.finish(with_stored_outputs(step_run, stored.outputs))
            finally:
                stored.outputs = outer
                wait(earlier)  # the outputs of the steps before it, sent while it ran
            return step_run

        return launch

    def _store(self, original: Any) -> Callable[..., Any]:
        stored = self._stored

        def store_outputs(runner_self: Any, *args: Any, **kwargs: Any) -> Any:
            versions = original(runner_self, *args, **kwargs)
            if getattr(stored, "outputs", None) is not None:  # a launch of this thread
                stored.outputs.update(versions)
            return versions

        return store_outputs

    def uninstall(self) -> None:
        """Put the originals back, unless someone wrapped one after us (then leave it)."""
        patched, self._patched = self._patched, []
        for cls, name, original in patched:
            current = cls.__dict__.get(name)
            if getattr(current, "__wrapped_by_mlflow_plus__", None) is original:
                setattr(cls, name, original)
