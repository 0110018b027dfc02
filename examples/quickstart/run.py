"""Run the quickstart pipeline and print each step's MLflow run link from ZenML step metadata."""

from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL
from zenml.pipelines.pipeline_definition import Pipeline

from examples.quickstart.pipeline import quickstart


def main(pipeline: Pipeline = quickstart) -> None:
    """Run the pipeline, then read the links back from ZenML."""
    run = pipeline()
    run = Client().get_pipeline_run(run.id)
    print(f"\nZenML run {run.name}: {run.status}")
    print("MLflow run links (step metadata 'experiment_tracker_url'):")
    for name, step in run.steps.items():
        print(f"  {name:<10} {step.run_metadata.get(METADATA_EXPERIMENT_TRACKER_URL)}")
    print(f"  {'pipeline':<10} {run.run_metadata.get(METADATA_EXPERIMENT_TRACKER_URL)}")
    if str(run.run_metadata.get(METADATA_EXPERIMENT_TRACKER_URL, "")).startswith(
        "http://127.0.0.1:5000/"
    ):
        print("\nOpen them with the MLflow UI on the embedded store:  make ui")


if __name__ == "__main__":
    main()
