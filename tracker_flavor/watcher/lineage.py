"""Lineage between ZenML artifact versions and MLflow runs, both ways, as metadata only.

A step's input and output artifact versions become MLflow dataset entries of the step's run
("Datasets" in the UI) whose source names the ZenML artifact version; each output artifact
version gets the MLflow run's link as ZenML run metadata. No data is copied.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from mlflow.entities import DatasetInput

SOURCE_TYPE = "zenml"
CONTEXT_TAG = "mlflow.data.context"
"""MLflow's tag for a dataset's role in a run, shown beside it in the UI."""
STEP_TAG = "zenml.step_name"
OUTPUT_TAG = "zenml.output_name"
INPUT_TAG = "zenml.input_name"

Role = Literal["input", "output"]


@dataclass(frozen=True)
class ArtifactRef:
    """A ZenML artifact version that a step read or wrote."""

    id: str
    name: str
    version: str
    uri: str
    role: Role
    slot: str
    """The step's input or output name it was read or written as."""


def source(ref: ArtifactRef) -> str:
    """Return the dataset source: the ZenML artifact version's id, name, version and URI."""
    return json.dumps(
        {"artifact_version_id": ref.id, "name": ref.name, "version": ref.version, "uri": ref.uri}
    )


def dataset_inputs(step_name: str, refs: Iterable[ArtifactRef]) -> list["DatasetInput"]:
    """Return one MLflow dataset entry per artifact version (digest: its id, 36 characters)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    return [
        DatasetInput(
            Dataset(
                name=ref.name,
                digest=ref.id,
                source_type=SOURCE_TYPE,
                source=source(ref),
            ),
            tags=[
                InputTag(CONTEXT_TAG, ref.role),
                InputTag(STEP_TAG, step_name),
                InputTag(OUTPUT_TAG if ref.role == "output" else INPUT_TAG, ref.slot),
            ],
        )
        for ref in refs
    ]
