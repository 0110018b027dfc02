"""Thread-safe building blocks: bounded caches, locks, work started on a thread of its own."""
