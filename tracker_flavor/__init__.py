"""An MLflow experiment tracker flavor for ZenML, registered as `mlflow_plus`.

Importing this package is cheap: MLflow is only imported when a step runs.
"""

FLAVOR_NAME = "mlflow_plus"

__all__ = ["FLAVOR_NAME"]
