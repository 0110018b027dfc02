"""A pipeline that logs metrics, a param, an artifact and a model, for every scenario."""

import tempfile
from pathlib import Path

import mlflow
from zenml import pipeline, step


@step(experiment_tracker=True)
def log_things(points: int = 5) -> int:
    for i in range(points):
        mlflow.log_metric("m", float(i), step=i)
    mlflow.log_param("p", "v")
    with tempfile.TemporaryDirectory() as directory:
        notes = Path(directory) / "notes.txt"
        notes.write_text("proxied artifact")
        mlflow.log_artifact(str(notes))
    return points


@step(experiment_tracker=True)
def log_metrics(points: int = 5) -> None:
    for i in range(points):
        mlflow.log_metric("m", float(i), step=i)


@step(experiment_tracker=True)
def log_model() -> None:
    from sklearn.linear_model import LinearRegression

    mlflow.sklearn.log_model(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), name="model")


@pipeline(enable_cache=False)
def scenario(points: int = 5) -> None:
    log_things(points=points)


@pipeline(enable_cache=False)
def metrics_only(points: int = 5) -> None:
    # Artifacts are left out: a local server stands in for Databricks, whose artifacts live in
    # its own storage rather than behind the tracking API.
    log_metrics(points=points)


@pipeline(enable_cache=False)
def scenario_with_model() -> None:
    log_things()
    log_model()


@pipeline(dynamic=True, enable_cache=False)
def dynamic_metrics(points: int = 3) -> None:
    # A dynamic pipeline's parent run is settled by the watcher thread after the run returns.
    log_metrics(points=points)


@step(experiment_tracker=True)
def alphas() -> list[float]:
    return [0.1, 1.0, 10.0]


@step(experiment_tracker=True)
def fit(alpha: float, max_iter: int = 5) -> float:
    score = round(1.0 / (1.0 + alpha), 4)
    mlflow.log_metric("score", score)
    return score


@step(experiment_tracker=True)
def pick(scores: list[float]) -> float:
    mlflow.log_metric("best_score", max(scores))
    return max(scores)


@pipeline(dynamic=True, enable_cache=False)
def sweep(C: float = 1.0, label: str = "x" * 9000) -> None:
    pick(fit.map(alphas()))


@step(experiment_tracker=True)
def items(count: int = 3) -> list[int]:
    return list(range(count))


@step(experiment_tracker=True)
def from_memory(x: int) -> str:
    """Authenticate from this thread, a thread of the step's own and its own client; return `env`."""
    import subprocess
    import threading

    from mlflow import MlflowClient

    mlflow.log_metric("m", float(x))
    run_id = mlflow.active_run().info.run_id
    failures: list[BaseException] = []

    def tag_from_a_thread() -> None:
        try:
            MlflowClient().set_tag(run_id, "from_a_thread", str(x), synchronous=True)
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=tag_from_a_thread)
    thread.start()
    thread.join()
    if failures:
        raise failures[0]
    assert MlflowClient().get_run(run_id).data.tags["from_a_thread"] == str(x)
    return subprocess.run(["env"], capture_output=True, text=True, check=True).stdout


@pipeline(dynamic=True, enable_cache=False, settings={"experiment_tracker": {"nested": True}})
def credentials_in_memory(count: int = 3) -> None:
    from_memory.map(items(count=count))


class Echo(mlflow.pyfunc.PythonModel):
    """A model whose type hints give MLflow its signature."""

    def predict(self, model_input: list[str], params: dict | None = None) -> list[str]:
        return model_input


UC_MODEL = "main.ml.echo"


@step(
    experiment_tracker=True,
    settings={"experiment_tracker": {"log_model": "output", "registered_model_name": UC_MODEL}},
)
def signed_model() -> Echo:
    return Echo()


@pipeline(enable_cache=False)
def unity_catalog_model() -> None:
    signed_model()
