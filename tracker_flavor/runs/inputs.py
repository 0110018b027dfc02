"""A mapped step's small scalar inputs (the mapped item, say), read cheaply from ZenML.

A mapped step gets its item as an input artifact, not a parameter, so without this its run would
not say which item it ran on. Only ZenML's built-in JSON materializers are read, and only when
their data file is at most `MAX_INPUT_BYTES`: a scalar, or one item of a JSON list. What cannot
be read that way is left out, silently: the input is in the run's lineage anyway.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from zenml.logger import get_logger

if TYPE_CHECKING:
    from zenml.artifact_stores import BaseArtifactStore
    from zenml.models import StepRunResponse
    from zenml.models.v2.core.step_run import StepRunInputResponse

logger = get_logger(__name__)

MAX_INPUT_BYTES = 64 * 1024
"""Largest data file read for one input (a list whose item a mapped step gets, say)."""
SCALARS = (bool, int, float, str)


def scalar_inputs(
    step_run: "StepRunResponse", artifact_store: "BaseArtifactStore"
) -> dict[str, Any]:
    """Return the step's scalar input values, by input name, that are cheap to read."""
    found: dict[str, Any] = {}
    inputs: Mapping[str, list[StepRunInputResponse]] = step_run.inputs
    for name, versions in inputs.items():
        if len(versions) != 1 or str(versions[0].artifact_store_id) != str(artifact_store.id):
            continue
        try:
            value = _small_value(versions[0], artifact_store)
        except Exception as error:  # never fail a step for what is only a record of its input
            logger.debug("Input %s of step %s not read: %s", name, step_run.name, error)
            continue
        if isinstance(value, SCALARS):
            found[name] = value
    return found


def _small_value(artifact: "StepRunInputResponse", artifact_store: "BaseArtifactStore") -> Any:
    """Return the input's value if a built-in JSON materializer stores it in a small file."""
    from zenml.materializers.built_in_materializer import (
        BuiltInContainerMaterializer,
        BuiltInMaterializer,
    )
    from zenml.utils import source_utils

    kind = source_utils.load(artifact.materializer)
    if kind not in (BuiltInMaterializer, BuiltInContainerMaterializer):
        return None
    materializer = kind(uri=artifact.uri, artifact_store=artifact_store)
    if not artifact_store.exists(materializer.data_path):
        return None  # a container of non-JSON items, each in its own folder
    size = artifact_store.size(materializer.data_path)
    if size is None or size > MAX_INPUT_BYTES:
        return None
    if artifact.chunk_index is not None:
        return materializer.load_item(data_type=object, index=artifact.chunk_index)
    if kind is BuiltInMaterializer:
        return materializer.load(data_type=source_utils.load(artifact.data_type))
    return None
