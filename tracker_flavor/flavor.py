"""The `mlflow_plus` experiment tracker flavor."""

from typing import TYPE_CHECKING

from zenml.experiment_trackers.base_experiment_tracker import BaseExperimentTrackerFlavor

from tracker_flavor import FLAVOR_NAME
from tracker_flavor.config import MLflowPlusConfig

if TYPE_CHECKING:
    from tracker_flavor.tracker import MLflowPlusExperimentTracker


class MLflowPlusFlavor(BaseExperimentTrackerFlavor):
    """MLflow experiment tracking: one MLflow run per pipeline run, a deep link per step."""

    @property
    def name(self) -> str:
        """Return the flavor name."""
        return FLAVOR_NAME

    @property
    def display_name(self) -> str:
        """Return the name shown in the dashboard."""
        return "MLflow Plus"

    @property
    def docs_url(self) -> str | None:
        """Return the flavor's documentation URL."""
        return None

    @property
    def sdk_docs_url(self) -> str | None:
        """Return the flavor's SDK documentation URL."""
        return None

    @property
    def logo_url(self) -> str:
        """Return the flavor's logo URL."""
        return "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/experiment_tracker/mlflow.png"

    @property
    def config_class(self) -> type[MLflowPlusConfig]:
        """Return the config class."""
        return MLflowPlusConfig

    @property
    def implementation_class(self) -> type["MLflowPlusExperimentTracker"]:
        """Return the tracker class (imports MLflow lazily)."""
        from tracker_flavor.tracker import MLflowPlusExperimentTracker

        return MLflowPlusExperimentTracker
