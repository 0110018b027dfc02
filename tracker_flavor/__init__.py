"""An MLflow experiment tracker flavor for ZenML, registered as `mlflow_plus`.

Importing this package is cheap: MLflow is only imported when a step runs.
"""

FLAVOR_NAME = "mlflow_plus"


class FlavorIdentity:
    """Name, display name and docs links of the mlflow_plus flavors (tracker and registry)."""

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


__all__ = ["FLAVOR_NAME", "FlavorIdentity"]
