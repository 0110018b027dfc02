"""Settings under the built-in's key `experiment_tracker.mlflow` apply to an mlflow_plus tracker.

ZenML resolves a `type.flavor` settings key to the one component of that flavor in the stack and
drops it (with an info line only) when there is none, before any component sees it; so a project
moved to mlflow_plus would silently lose its `nested` and `tags`. The alias is resolved in that
same step, ZenML's `settings_utils.resolve_stack_component_setting_key`.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from zenml.enums import StackComponentType
from zenml.logger import get_logger
from zenml.utils import settings_utils

from tracker_flavor import FLAVOR_NAME
from tracker_flavor.concurrency.caches import Once

logger = get_logger(__name__)

BUILTIN_KEY = f"{StackComponentType.EXPERIMENT_TRACKER.value}.mlflow"
NEW_KEY = StackComponentType.EXPERIMENT_TRACKER.value


def _flavor(component: Any) -> str:
    """Return the flavor of a stack component or of a component model."""
    return str(getattr(component, "flavor_name", None) or component.flavor)


def aliased_key(
    key: str, components_by_type: Mapping[StackComponentType, Sequence[Any]], once: Once
) -> str | None:
    """Return the canonical key of the mlflow_plus tracker that `experiment_tracker.mlflow` means.

    None when the key is another one, or when the stack has a built-in `mlflow` tracker (then the
    key means it) or not exactly one mlflow_plus tracker.
    """
    if key != BUILTIN_KEY:
        return None
    trackers = components_by_type.get(StackComponentType.EXPERIMENT_TRACKER, [])
    flavors = [_flavor(tracker) for tracker in trackers]
    if "mlflow" in flavors or flavors.count(FLAVOR_NAME) != 1:
        return None
    name = trackers[flavors.index(FLAVOR_NAME)].name
    if once.first(BUILTIN_KEY):
        logger.warning(
            "Settings key %r is the built-in mlflow flavor's; applying it to the mlflow_plus "
            "tracker %r. Rename it to %r (or %r) in your code: the old key is deprecated.",
            BUILTIN_KEY,
            name,
            NEW_KEY,
            f"{NEW_KEY}.{FLAVOR_NAME}",
        )
    return f"{NEW_KEY}:{name}"


class SettingsAlias:
    """ZenML's settings-key resolution, taught the built-in key (installed by the runtime)."""

    def __init__(self, once: Once) -> None:
        self._once = once
        self._original: Callable[..., str | None] | None = None

    def install(self) -> None:
        """Make ZenML resolve `experiment_tracker.mlflow` to the stack's mlflow_plus tracker."""
        if self._original is not None:
            return
        original = self._original = settings_utils.resolve_stack_component_setting_key

        def resolve(
            key: str,
            components_by_type: Mapping[StackComponentType, Sequence[Any]],
            legacy: bool = False,
        ) -> str | None:
            """Resolve the built-in key to the mlflow_plus tracker, any other key as ZenML does."""
            if not legacy and (aliased := aliased_key(key, components_by_type, self._once)):
                return aliased
            return original(key, components_by_type, legacy)

        settings_utils.resolve_stack_component_setting_key = resolve

    def uninstall(self) -> None:
        """Give ZenML its own resolution back."""
        if self._original is not None:
            settings_utils.resolve_stack_component_setting_key = self._original
            self._original = None
