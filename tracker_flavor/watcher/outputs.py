"""Which files of a step's outputs go to MLflow as artifacts, and their upload.

ZenML stores a step's outputs (and their visualizations) after the tracker's last step hook, so
the files are taken from the artifact store once ZenML has published the step: nothing is
materialized twice. An output's files land under `zenml/<step>/<output>/data/`, its
visualizations (the report) directly under `zenml/<step>/<output>/`.
"""

import os
import posixpath
import tempfile
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from zenml.logger import get_logger

from tracker_flavor.config.uris import redact_credentials

if TYPE_CHECKING:
    from zenml.models import PipelineSnapshotResponse

    from tracker_flavor.config.settings import MLflowPlusSettings
    from tracker_flavor.watcher.publisher import Publisher

logger = get_logger(__name__)

ROOT = "zenml"
DATA_FOLDER = "data"
REPORT_EXTENSIONS = {
    "csv": ".csv", "html": ".html", "image": ".png", "markdown": ".md", "json": ".json"
}  # fmt: skip
MB = 1024 * 1024

Setting = Literal["track_output", "track_intermediates", "track_reports"]


@dataclass(frozen=True)
class Output:
    """One output artifact version of a step, as the upload plan needs it."""

    name: str
    uri: str
    consumed: bool
    """Whether a later step of the pipeline reads it (an intermediate)."""
    reports: tuple[tuple[str, str], ...] = ()
    """(file URI, ZenML visualization type) of each visualization."""


@dataclass(frozen=True)
class Upload:
    """Files to store in MLflow, and the setting that asked for them."""

    output: str
    setting: Setting
    source: str
    """A folder (the output's data) or one file (a report)."""
    artifact_path: str
    file_name: str | None = None
    """For a report: its name in MLflow."""


@dataclass
class Account:
    """What a step's uploads delivered, skipped (with a warning) or lost."""

    delivered: int = 0
    skipped: int = 0
    not_delivered: list[str] = field(default_factory=list)


def selected(choice: bool | Collection[str], name: str) -> bool:
    """Tell whether a `bool | list[str]` setting selects the output `name`."""
    return choice if isinstance(choice, bool) else name in choice


def consumed_outputs(snapshot: "PipelineSnapshotResponse | None", step_name: str) -> set[str]:
    """Return the outputs of `step_name` that a step of the snapshot reads."""
    if snapshot is None:
        return set()
    names = set()
    for step in snapshot.step_configurations.values():
        for spec in step.spec.inputs.values():
            for one in spec if isinstance(spec, list) else [spec]:
                if one.step_name == step_name:
                    names.add(one.output_name)
    return names


def report_name(uri: str, kind: str, index: int) -> str:
    """Return a report's file name in MLflow: its own, else one with its type's extension."""
    base = posixpath.basename(uri.rstrip("/"))
    if posixpath.splitext(base)[1]:
        return base
    return f"report_{index}{REPORT_EXTENSIONS.get(kind, '')}"


def plan(settings: "MLflowPlusSettings", step_name: str, outputs: Iterable[Output]) -> list[Upload]:
    """Return the uploads the settings ask for, in output order."""
    uploads = []
    for output in outputs:
        folder = f"{ROOT}/{step_name}/{output.name}"
        setting: Setting = "track_intermediates" if output.consumed else "track_output"
        if selected(getattr(settings, setting), output.name):
            uploads.append(Upload(output.name, setting, output.uri, f"{folder}/{DATA_FOLDER}"))
        if selected(settings.track_reports, output.name):
            for index, (uri, kind) in enumerate(output.reports):
                name = report_name(uri, kind, index)
                uploads.append(Upload(output.name, "track_reports", uri, folder, name))
    return uploads


def files_of(source: str) -> list[tuple[str, int]]:
    """Return (path, bytes) of the files at `source` in the artifact store: a folder or a file."""
    from zenml.io import fileio

    if not fileio.exists(source):
        return []
    if not fileio.isdir(source):
        return [(source, int(fileio.size(source) or 0))]
    found = []
    for folder, _, names in fileio.walk(source):
        for name in names:
            path = posixpath.join(str(folder), str(name))
            found.append((path, int(fileio.size(path) or 0)))
    return found


def problem(upload: Upload, files: list[tuple[str, int]], max_mb: float) -> str | None:
    """Return why `upload` is skipped (no files, too large), or None."""
    what = "report" if upload.setting == "track_reports" else "output"
    if not files:
        return (
            f"{what} of output {upload.output!r} is not stored in MLflow ({upload.setting}): its "
            "materializer wrote no files to the artifact store."
        )
    size = sum(size for _, size in files)
    if size > max_mb * MB:
        return (
            f"{what} of output {upload.output!r} is not stored in MLflow ({upload.setting}): it "
            f"has {size / MB:.1f} MB, more than max_artifact_mb={max_mb:g}; raise "
            "max_artifact_mb or leave the output out of the setting."
        )
    return None


def upload(
    publisher: "Publisher", run_id: str, uploads: Iterable[Upload], max_mb: float, account: Account
) -> None:
    """Store each upload's files in the run (the server's proxied upload where it has one)."""
    from zenml.io import fileio

    for item in uploads:
        files = files_of(item.source)
        if reason := problem(item, files, max_mb):
            logger.warning(reason)
            account.skipped += 1
            continue
        try:
            with tempfile.TemporaryDirectory(prefix="mlflow-plus-") as local:
                for path, _ in files:
                    relative = (
                        item.file_name
                        if item.file_name
                        else posixpath.relpath(path, item.source.rstrip("/"))
                    )
                    target = os.path.join(local, relative)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    fileio.copy(path, target, overwrite=True)
                publisher.log_artifacts(run_id, local, item.artifact_path)
            account.delivered += 1
        except Exception as error:  # counted and reported: the other uploads go on
            logger.warning(
                "Could not store %s of output %r in MLflow run %s (%s): %s",
                "the report" if item.file_name else "the files",
                item.output,
                run_id,
                item.setting,
                redact_credentials(str(error)),
            )
            account.not_delivered.append(f"{item.artifact_path}/{item.file_name or ''}")
