"""Turn step parameters into MLflow params: flattened, sanitised, truncated, never a crash."""

import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = MAX_ENTITY_KEY_LENGTH
MAX_VALUE_LENGTH = MAX_PARAM_VAL_LENGTH
_INVALID_KEY_CHARS = re.compile(r"[^\w./\- :]")


def sanitize_key(key: str) -> str:
    """Replace characters MLflow rejects in a key with `_` and cap its length."""
    return _INVALID_KEY_CHARS.sub("_", key)[:MAX_KEY_LENGTH] or "_"


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _flatten(f"{prefix}.{key}" if prefix else str(key), item)
    else:
        yield prefix, value


def step_params(parameters: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Return MLflow params for step parameters: dicts flattened with `.`, long values truncated.

    One warning names every truncated key; nothing here raises on a user's value.
    """
    params: dict[str, str] = {}
    truncated: list[str] = []
    items = (
        (key, item)
        for name, value in parameters.items()
        for key, item in _flatten(str(name), value)
    )
    for raw_key, value in items:
        key = sanitize_key(f"{prefix}.{raw_key}" if prefix else raw_key)
        try:
            text = str(value)
        except Exception:  # a user's __str__ may raise; the param must not crash the step
            text = f"<unprintable {type(value).__name__}>"
        if len(text) > MAX_VALUE_LENGTH:
            truncated.append(key)
            text = text[: MAX_VALUE_LENGTH - 3] + "..."
        params[key] = text
    if truncated:
        logger.warning(
            "MLflow params longer than %d characters were truncated: %s",
            MAX_VALUE_LENGTH,
            ", ".join(truncated),
        )
    return params
