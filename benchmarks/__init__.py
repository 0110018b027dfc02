"""Benchmark of the mlflow_plus tracker against ZenML's built-in mlflow tracker."""
