"""The step ZenML's launcher returns is settled before `launch` returns, with the outputs as
ZenML's runner stored them; what a launch hands off is sent while the next one runs, and that
one waits for it; uninstall restores both methods."""

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from zenml.enums import ExecutionStatus, VisualizationType
from zenml.models import ArtifactVersionResponse, ArtifactVisualizationResponse, StepRunResponse
from zenml.models.v2.core.artifact_version import ArtifactVersionResponseMetadata
from zenml.models.v2.core.artifact_visualization import ArtifactVisualizationResponseBody
from zenml.models.v2.core.step_run import StepRunResponseBody, StepRunResponseResources

from tracker_flavor.concurrency.locks import ReadersWriterLock
from tracker_flavor.config.settings import MLflowPlusSettings
from tracker_flavor.watcher.after_step import Deliveries, reports_of
from tracker_flavor.watcher.launches import (
    STORE_OUTPUTS,
    LaunchHook,
    launcher_class,
    runner_class,
)

pytestmark = pytest.mark.unit


class Finishes:
    """A watcher that records what it was told to finish, and when a launch was under way."""

    def __init__(self) -> None:
        self.finished: list[tuple[uuid.UUID, ExecutionStatus]] = []
        self.step_runs: list[Any] = []
        self.inside = False

    @contextmanager
    def launching(self) -> Iterator[None]:
        self.inside = True
        try:
            yield
        finally:
            self.inside = False

    def finish(self, step_run: Any) -> None:
        assert self.inside
        self.finished.append((step_run.id, step_run.status))
        self.step_runs.append(step_run)


def launcher(step_run: SimpleNamespace) -> type:
    """Return a launcher class whose `launch` returns `step_run`."""

    class Launcher:
        def launch(self) -> SimpleNamespace:
            return step_run

    return Launcher


def test_the_launched_step_is_finished_before_launch_returns_and_uninstall_restores():
    step_run = SimpleNamespace(id=uuid.uuid4(), status=ExecutionStatus.COMPLETED)
    cls, watcher = launcher(step_run), Finishes()
    original = cls.__dict__["launch"]
    hook = LaunchHook(watcher, Deliveries())  # type: ignore[arg-type]
    hook.install(cls)
    hook.install(cls)  # once
    assert cls().launch() is step_run
    assert watcher.finished == [(step_run.id, ExecutionStatus.COMPLETED)]
    hook.uninstall()
    assert cls.__dict__["launch"] is original
    cls().launch()
    assert len(watcher.finished) == 1


def test_a_wrapper_put_on_after_the_hook_stays_after_an_uninstall():
    step_run = SimpleNamespace(id=uuid.uuid4(), status=ExecutionStatus.COMPLETED)
    cls = launcher(step_run)
    hook = LaunchHook(Finishes(), Deliveries())  # type: ignore[arg-type]
    hook.install(cls)
    wrapped = cls.__dict__["launch"]

    def later(self: object) -> object:
        return wrapped(self)

    cls.launch = later  # type: ignore[attr-defined]
    hook.uninstall()
    assert cls.__dict__["launch"] is later


def test_zenml_s_launcher_and_runner_are_the_classes_wrapped():
    assert "launch" in launcher_class().__dict__
    assert STORE_OUTPUTS in runner_class().__dict__


def version(version_id: uuid.UUID, *reports: str) -> ArtifactVersionResponse:
    """Return an artifact version as a step run lists it, or with `reports` as stored."""
    if not reports:
        return ArtifactVersionResponse.model_construct(id=version_id)
    now = datetime.now()
    shown = [
        ArtifactVisualizationResponse(
            id=uuid.uuid4(),
            body=ArtifactVisualizationResponseBody(
                uri=uri, type=VisualizationType.JSON, created=now, updated=now
            ),
        )
        for uri in reports
    ]
    return ArtifactVersionResponse.model_construct(
        id=version_id,
        metadata=ArtifactVersionResponseMetadata.model_construct(visualizations=shown),
    )


def running(
    step_run: StepRunResponse, stored: dict[str, ArtifactVersionResponse]
) -> tuple[type, type]:
    """Return a runner class that stores `stored`, and a launcher that runs it, then returns."""

    class Runner:
        def _store_output_artifacts(self) -> dict[str, ArtifactVersionResponse]:
            return stored

    class Launcher:
        def launch(self) -> StepRunResponse:
            Runner()._store_output_artifacts()
            return step_run

    return Launcher, Runner


def test_the_outputs_the_runner_stored_reach_the_settling_and_zenml_keeps_its_step_run():
    output_id, other_id = uuid.uuid4(), uuid.uuid4()
    listed = {"output": [version(output_id)], "other": [version(other_id)]}
    step_run = StepRunResponse.model_construct(
        id=uuid.uuid4(), body=StepRunResponseBody.model_construct(status=ExecutionStatus.COMPLETED),
        resources=StepRunResponseResources.model_construct(outputs=listed),
    )  # fmt: skip
    stored = {"output": version(output_id, "s3://b/data.json")}
    launcher_cls, runner_cls = running(step_run, stored)
    watcher, original = Finishes(), runner_cls.__dict__[STORE_OUTPUTS]
    hook = LaunchHook(watcher, Deliveries())  # type: ignore[arg-type]
    hook.install(launcher_cls, runner_cls)
    try:
        assert launcher_cls().launch() is step_run
        assert runner_cls()._store_output_artifacts() is stored  # outside a launch: as it was
    finally:
        hook.uninstall()
    assert runner_cls.__dict__[STORE_OUTPUTS] is original
    (settled,) = watcher.step_runs
    assert settled.outputs["output"] == [stored["output"]]
    assert settled.outputs["other"] == listed["other"]
    assert step_run.outputs["output"][0].metadata is None  # ZenML's own is left as it was
    # The stored version's reports are known without asking ZenML (it has no such versions).
    settings = MLflowPlusSettings(track_reports=["output"])
    assert reports_of(settled, settings) == {output_id: (("s3://b/data.json", "json"),)}


def test_a_runner_storing_outside_a_launch_hands_nothing_to_the_next_launch():
    step_run = SimpleNamespace(id=uuid.uuid4(), status=ExecutionStatus.COMPLETED)
    launcher_cls, runner_cls = running(step_run, {"output": version(uuid.uuid4(), "s3://x")})  # type: ignore[arg-type]

    class Quiet:
        def launch(self) -> SimpleNamespace:
            return step_run

    watcher = Finishes()
    hook = LaunchHook(watcher, Deliveries())  # type: ignore[arg-type]
    hook.install(Quiet, runner_cls)
    try:
        runner_cls()._store_output_artifacts()
        Quiet().launch()
    finally:
        hook.uninstall()
    assert watcher.step_runs == [step_run]


def test_a_runner_without_the_method_is_left_alone_and_the_launch_still_settles():
    step_run = SimpleNamespace(id=uuid.uuid4(), status=ExecutionStatus.COMPLETED)
    cls, watcher = launcher(step_run), Finishes()

    class Runner:
        pass

    hook = LaunchHook(watcher, Deliveries())  # type: ignore[arg-type]
    hook.install(cls, Runner)
    try:
        assert cls().launch() is step_run
        assert STORE_OUTPUTS not in Runner.__dict__
    finally:
        hook.uninstall()
    assert watcher.step_runs == [step_run]


def test_a_handed_off_sending_overlaps_the_next_launch_which_waits_for_it():
    """Step 1's outputs go while step 2 runs, and step 2's launch returns only once they are in."""
    step_two_runs, sent = threading.Event(), threading.Event()
    deliveries, lock = Deliveries(), ReadersWriterLock()

    def send_step_one() -> None:
        # Sent one after the other, step 2 would not have started: this waits in vain and fails.
        assert step_two_runs.wait(timeout=10)
        sent.set()

    class Handing(Finishes):
        def finish(self, step_run: Any) -> None:
            super().finish(step_run)
            if len(self.finished) == 1:
                deliveries.hand_off(send_step_one, lock)

    class Launcher:
        launches = 0

        def launch(self) -> SimpleNamespace:
            Launcher.launches += 1
            if Launcher.launches == 2:
                step_two_runs.set()
                assert not sent.is_set()  # step 1's sending is still under way
            return SimpleNamespace(id=uuid.uuid4(), status=ExecutionStatus.COMPLETED)

    hook = LaunchHook(Handing(), deliveries)  # type: ignore[arg-type]
    hook.install(Launcher)
    try:
        Launcher().launch()
        assert not sent.is_set()  # step 1's launch returned before its outputs were sent
        Launcher().launch()
        assert sent.is_set()  # step 2's launch waited for them
    finally:
        hook.uninstall()
    assert deliveries.handed() == [] and deliveries.wait(timeout=1)


def test_a_launch_that_raises_still_waits_for_what_the_steps_before_it_handed_off():
    deliveries, release, sent = Deliveries(), threading.Event(), threading.Event()

    def slow() -> None:
        release.wait(timeout=10)
        sent.set()

    deliveries.hand_off(slow, ReadersWriterLock())

    class Failing:
        def launch(self) -> None:
            release.set()
            raise RuntimeError("the step failed")

    hook = LaunchHook(Finishes(), deliveries)  # type: ignore[arg-type]
    hook.install(Failing)
    try:
        with pytest.raises(RuntimeError):
            Failing().launch()
        assert sent.is_set()
    finally:
        hook.uninstall()
