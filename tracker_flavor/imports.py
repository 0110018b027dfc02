"""One lock between turning MLflow autologging on or off and the tracker's background threads.

`mlflow.autolog()` imports libraries while holding MLflow's import-hook lock, and MLflow's clients
import lazily inside every request (Databricks and Spark probes). A tracker thread sending or
settling while a step turns autologging on would wait on that lock while holding a module lock
the step's import needs: both hang. The tracker's threads take this lock around MLflow calls and
the hooks take it around `autolog`, so the two never overlap.
"""

import threading

AUTOLOG_LOCK = threading.RLock()
