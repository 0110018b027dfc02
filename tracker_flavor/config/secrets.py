"""Resolve `{{secret.key}}` references of the config with an error that names the fix."""

from typing import TYPE_CHECKING, Any

from zenml.utils.secret_utils import is_secret_reference, parse_secret_reference

if TYPE_CHECKING:
    from tracker_flavor.config.component import MLflowPlusConfig


class SecretReferenceError(KeyError):
    """A config field refers to a ZenML secret or key that does not exist."""

    def __str__(self) -> str:
        return str(self.args[0])


def resolve(config: "MLflowPlusConfig", field: str) -> Any:
    """Return the field's value, looking up its ZenML secret if it is a reference."""
    raw = config.__dict__[field]
    if not is_secret_reference(raw):
        return raw
    try:
        return getattr(config, field)
    except KeyError:
        reference = parse_secret_reference(raw)
        raise SecretReferenceError(
            f"{field} refers to the ZenML secret {reference.name!r}, key {reference.key!r}, "
            f"which does not exist: create it (`zenml secret create {reference.name} "
            f"--{reference.key}=...`) or correct {field}."
        ) from None
