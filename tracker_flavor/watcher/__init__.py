"""After a step: the watcher thread that waits for ZenML's final word, and what it sends then."""
