"""Getting what steps log to MLflow exactly once: the batching queue, its ledgers, the spool."""
