"""Run the quickstart pipeline and print each step's MLflow run link from ZenML step metadata."""

from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

from examples.quickstart.pipeline import quickstart


def main() -> None:
    """Run the pipeline, then read the links back from ZenML."""
    run = quickstart()
    run = Client().get_pipeline_run(run.id)
    print(f"\nZenML run {run.name}: {run.status}")
    print("MLflow run links (step metadata 'experiment_tracker_url'):")
    for name, step in run.steps.items():
        print(f"  {name:<10} {step.run_metadata.get(METADATA_EXPERIMENT_TRACKER_URL)}")
    print(f"  {'pipeline':<10} {run.run_metadata.get(METADATA_EXPERIMENT_TRACKER_URL)}")
    print("\nOpen them with the MLflow UI on the embedded store:  make ui")


if __name__ == "__main__":
    main()
