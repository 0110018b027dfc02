"""The step ZenML's launcher returns is settled before `launch` returns; uninstall restores it."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from zenml.enums import ExecutionStatus

from tracker_flavor.watcher.launches import LaunchHook, launcher_class

pytestmark = pytest.mark.unit


class Finishes:
    """A watcher that records what it was told to finish, and when a launch was under way."""

    def __init__(self) -> None:
        self.finished: list[tuple[uuid.UUID, ExecutionStatus]] = []
        self.inside = False

    @contextmanager
    def launching(self) -> Iterator[None]:
        self.inside = True
        try:
            yield
        finally:
            self.inside = False

    def finish(self, step_run: SimpleNamespace) -> None:
        assert self.inside
        self.finished.append((step_run.id, step_run.status))


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
    hook = LaunchHook(watcher)  # type: ignore[arg-type]
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
    hook = LaunchHook(Finishes())  # type: ignore[arg-type]
    hook.install(cls)
    wrapped = cls.__dict__["launch"]

    def later(self: object) -> object:
        return wrapped(self)

    cls.launch = later  # type: ignore[attr-defined]
    hook.uninstall()
    assert cls.__dict__["launch"] is later


def test_zenml_s_launcher_is_the_class_wrapped():
    assert "launch" in launcher_class().__dict__
