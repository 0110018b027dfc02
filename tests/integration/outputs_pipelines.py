"""Pipelines with a DataFrame intermediate, an HTML report and a scikit-learn model."""

from typing import Annotated

import pandas as pd
from sklearn.linear_model import LogisticRegression
from zenml import Model, pipeline, step
from zenml.types import HTMLString

REGISTERED_MODEL = "outputs-classifier"


@step(experiment_tracker=True)
def load() -> Annotated[pd.DataFrame, "frame"]:
    return pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "y": [0, 0, 0, 1, 1, 1]})


@step(
    experiment_tracker=True,
    settings={
        "experiment_tracker": {"log_model": "model", "registered_model_name": REGISTERED_MODEL}
    },
)
def train(
    frame: pd.DataFrame,
) -> tuple[Annotated[LogisticRegression, "model"], Annotated[HTMLString, "report"]]:
    model = LogisticRegression().fit(frame[["x"]], frame["y"])
    score = model.score(frame[["x"]], frame["y"])
    return model, HTMLString(f"<h1>Training report</h1><p>accuracy: {score:.2f}</p>")


@step(experiment_tracker=True)
def deploy() -> Annotated[list[int], "predictions"]:
    """Load the version `train` registered, as a deployment step would (no waiting)."""
    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL}/latest")
    return [int(p) for p in loaded.predict(pd.DataFrame({"x": [0.0, 5.0]}))]


@pipeline(
    enable_cache=False,
    model=Model(name="outputs_classifier"),
    settings={
        "experiment_tracker": {
            "track_output": True,
            "track_intermediates": ["frame"],
            "log_system_metrics": True,
            "system_metrics_interval_seconds": 1,
        }
    },
)
def outputs_pipeline() -> None:
    train(load())
    deploy(after="train")


@step(experiment_tracker=True, settings={"experiment_tracker": {"log_model": "summary"}})
def describe(frame: pd.DataFrame) -> Annotated[HTMLString, "summary"]:  # no flavor saves it
    return HTMLString(f"<p>{len(frame)} rows</p>")


@pipeline(
    enable_cache=False,
    settings={
        "experiment_tracker": {
            "track_intermediates": True,
            "max_artifact_mb": 0.0001,  # the DataFrame's files are larger: skipped with a warning
        }
    },
)
def guarded_pipeline() -> None:
    describe(load())
