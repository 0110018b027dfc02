"""The `zenml-mlflow` command line."""
