"""Quickstart: load data -> train a small scikit-learn model -> evaluate, tracked in MLflow."""

import mlflow
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from zenml import pipeline, step

TRACKER = "mlflow_plus"
EPOCHS = 120


@step(experiment_tracker=TRACKER)
def load_data(test_size: float = 0.25) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the digits data set and split it."""
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x / 16.0, y, test_size=test_size, random_state=0
    )
    mlflow.log_metric("train_rows", len(x_train))
    return x_train, x_test, y_train, y_test


@step(experiment_tracker=TRACKER)
def train(
    x_train: np.ndarray, y_train: np.ndarray, alpha: float = 1e-4, epochs: int = EPOCHS
) -> SGDClassifier:
    """Train a linear classifier epoch by epoch, logging its training accuracy each epoch."""
    model = SGDClassifier(alpha=alpha, random_state=0)
    classes = np.unique(y_train)
    for epoch in range(epochs):
        model.partial_fit(x_train, y_train, classes=classes)
        mlflow.log_metric("train_accuracy", model.score(x_train, y_train), step=epoch)
    mlflow.sklearn.log_model(model, name="model")
    return model


@step(experiment_tracker=TRACKER)
def evaluate(model: SGDClassifier, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Score the model on held-out data."""
    accuracy = float(model.score(x_test, y_test))
    mlflow.log_metric("test_accuracy", accuracy)
    return accuracy


@pipeline(enable_cache=False)
def quickstart(alpha: float = 1e-4) -> None:
    """Load, train, evaluate."""
    x_train, x_test, y_train, y_test = load_data()
    model = train(x_train, y_train, alpha=alpha)
    evaluate(model, x_test, y_test)
