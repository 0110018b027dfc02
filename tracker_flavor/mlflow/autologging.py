"""MLflow autologging while steps run: on for the steps that ask, restored when the last one ends.

Autologging is process-wide, and mapped steps share the process. The first step to start saves
which integrations were on (and how); the steps that ask turn it on; the last step to end puts
back exactly the saved state, so one step ending never turns it off under another and what a
step's code turned on (`mlflow.sklearn.autolog()`) does not outlive the steps.

`mlflow.autolog()` imports libraries while holding MLflow's import-hook lock, and MLflow's clients
import lazily inside every request (Databricks and Spark probes). A tracker thread sending or
settling while a step turns autologging on would wait on that lock while holding a module lock
the step's import needs: both hang. So turning autologging on or off holds the autolog lock
exclusively, and each of the tracker's MLflow calls holds it shared: calls run side by side, never
beside an autologging switch, and nothing else (a wait for another process's creation lock)
holds it.
"""

import importlib
import threading
from typing import Any

from zenml.logger import get_logger

from tracker_flavor.concurrency.locks import ReadersWriterLock, Shared

logger = get_logger(__name__)

UNIVERSAL = "mlflow"
"""The integration name of `mlflow.autolog()`, which drives all the others."""

State = dict[str, dict[str, Any]]
"""The configuration of each autologging integration that is on."""


def current_state() -> State:
    """Return the integrations that are on now, with their configuration."""
    from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS

    return {
        name: dict(config)
        for name, config in AUTOLOGGING_INTEGRATIONS.items()
        if config and not config.get("disable", True)
    }


def _autolog_function(name: str) -> Any:
    """Return the `autolog` function of an integration (`mlflow.autolog` for the universal one)."""
    import mlflow

    return (
        mlflow.autolog if name == UNIVERSAL else importlib.import_module(f"mlflow.{name}").autolog
    )


def restore(saved: State) -> None:
    """Put autologging back to `saved`: turn off what was off, reconfigure what changed."""
    from mlflow.utils.autologging_utils import (
        AUTOLOGGING_CONF_KEY_IS_GLOBALLY_CONFIGURED,
        AUTOLOGGING_INTEGRATIONS,
    )

    now = current_state()
    if now == saved:
        return
    # The universal switch first: it drives the others. It does not turn off an integration a
    # step turned on by itself (`mlflow.sklearn.autolog()`), so each of those goes one by one.
    for name, config in sorted(now.items(), key=lambda item: item[0] != UNIVERSAL):
        if saved.get(name) == config:
            continue
        try:
            if name in saved:
                _autolog_function(name)(**saved[name])
            elif name == UNIVERSAL or not config.get(
                AUTOLOGGING_CONF_KEY_IS_GLOBALLY_CONFIGURED, False
            ):
                _autolog_function(name)(disable=True, silent=True)
                if name != UNIVERSAL:
                    # Else a later `mlflow.autolog()` takes it for the user's own choice and
                    # leaves it off (MLflow skips integrations configured one by one).
                    AUTOLOGGING_INTEGRATIONS.pop(name, None)
        except Exception as error:  # an integration MLflow cannot import any more
            logger.warning("Could not restore MLflow autologging of %s: %s", name, error)


class Autologging:
    """Reference-counted autologging for the steps running in this process.

    The autolog lock is taken alone only to switch autologging: waiting for every MLflow call in
    flight at each step's start and end would queue all mapped steps behind one another.
    """

    def __init__(self) -> None:
        self.lock = ReadersWriterLock()
        """Held shared by each of the tracker's MLflow calls, exclusively to switch autologging."""
        self._switch = threading.Lock()
        self._saved: State = {}
        self._switched_on: dict[str, Any] | None = None
        """The universal integration's configuration right after a step turned it on."""
        self._steps = Shared(self._save, self._restore)

    def _save(self) -> None:
        self._saved = current_state()
        self._switched_on = None

    def _restore(self) -> None:
        if current_state() != self._saved:
            with self.lock.exclusive():
                restore(self._saved)

    def enter(self, turn_on: bool) -> None:
        """Start a step: save the state if it is the first, and turn autologging on if asked."""
        self._steps.enter()
        with self._switch:
            on = current_state().get(UNIVERSAL)
            if not turn_on or (on is not None and on == self._switched_on):
                return  # nothing to switch: on already, as a step turned it on
            with self.lock.exclusive():
                import mlflow

                mlflow.autolog(silent=True)
            self._switched_on = current_state().get(UNIVERSAL)

    def leave(self) -> None:
        """End a step: the last one restores the state saved by the first."""
        self._steps.leave()
