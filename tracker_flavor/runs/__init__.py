"""The run model: which MLflow runs a step logs into, their statuses, and what ZenML records."""
