"""A mapped step's scalar inputs are read only when ZenML's JSON materializers keep them small."""

import datetime
import uuid
from types import SimpleNamespace

import pytest

from tracker_flavor.runs.inputs import MAX_INPUT_BYTES, scalar_inputs

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path):
    from zenml.artifact_stores.local_artifact_store import (
        LocalArtifactStore,
        LocalArtifactStoreConfig,
    )
    from zenml.enums import StackComponentType

    now = datetime.datetime.now()
    return LocalArtifactStore(
        name="local", id=uuid.uuid4(), config=LocalArtifactStoreConfig(path=str(tmp_path)),
        flavor="local", type=StackComponentType.ARTIFACT_STORE, user=None, created=now,
        updated=now,
    )  # fmt: skip


def saved(store, name, value, chunk_index=None, store_id=None):
    """Return a step input (as ZenML describes it) of `value`, saved as ZenML saves it."""
    from zenml.materializers.materializer_registry import materializer_registry
    from zenml.utils import source_utils

    uri = f"{store.path}/{name}"
    store.makedirs(uri)
    materializer = materializer_registry[type(value)]
    materializer(uri=uri, artifact_store=store).save(value)
    return SimpleNamespace(
        uri=uri, chunk_index=chunk_index, artifact_store_id=store_id or store.id,
        materializer=source_utils.resolve(materializer).import_path,
        data_type=source_utils.resolve(type(value)).import_path,
    )  # fmt: skip


def test_the_mapped_item_and_small_scalars_are_read_and_nothing_else(store):
    big = ["x" * 100] * (MAX_INPUT_BYTES // 100)
    inputs = {
        "alpha": [saved(store, "alphas", [0.1, 1.0, 10.0], chunk_index=1)],
        "name": [saved(store, "name", "ridge")],
        "flag": [saved(store, "flag", True)],
        "whole_list": [saved(store, "whole", [1, 2])],  # not a scalar
        "item_of_a_big_list": [saved(store, "big", big, chunk_index=0)],
        "nested_item": [saved(store, "nested", [{"a": 1}], chunk_index=0)],
        "elsewhere": [saved(store, "other", 3, store_id=uuid.uuid4())],
        "many": [saved(store, "m1", 1), saved(store, "m2", 2)],
        "unreadable": [SimpleNamespace(artifact_store_id=store.id, materializer="no.such.Thing")],
    }
    step_run = SimpleNamespace(name="map:fit:1", inputs=inputs)
    assert scalar_inputs(step_run, store) == {"alpha": 1.0, "name": "ridge", "flag": True}
