"""Thread-safe building blocks: bounded caches, per-key locks, a readers-writer lock."""
