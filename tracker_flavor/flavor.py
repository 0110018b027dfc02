"""The `mlflow_plus` experiment tracker flavor."""

from typing import TYPE_CHECKING

from zenml.experiment_trackers.base_experiment_tracker import BaseExperimentTrackerFlavor

from tracker_flavor import FlavorIdentity
from tracker_flavor.config.component import MLflowPlusConfig

if TYPE_CHECKING:
    from tracker_flavor.tracker import MLflowPlusExperimentTracker


class MLflowPlusFlavor(FlavorIdentity, BaseExperimentTrackerFlavor):
    """MLflow experiment tracking: one MLflow run per pipeline run, a deep link per step."""

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
