"""The configuration reference documents exactly the config and settings schema, with defaults."""

import re
from pathlib import Path

import pytest
from zenml.utils.secret_utils import is_secret_field

from tracker_flavor.config.component import MLflowPlusConfig
from tracker_flavor.config.settings import MLflowPlusSettings

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def table(heading: str) -> dict[str, list[str]]:
    section = DOC.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if match := re.match(r"\| `(\w+)` \|(.*)\|$", line):
            rows[match[1]] = [cell.strip() for cell in match[2].split("|")]
    return rows


def documented_default(field) -> str:
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`"
    return "unset" if field.default is None else f"`{field.default!r}`"


def test_every_config_key_is_documented_with_its_default_and_secrecy():
    rows = table("Config")
    config_only = set(MLflowPlusConfig.model_fields) - set(MLflowPlusSettings.model_fields)
    assert set(rows) == config_only
    for name, (default, secret, meaning) in rows.items():
        field = MLflowPlusConfig.model_fields[name]
        assert default == documented_default(field), name
        assert (secret == "yes") == is_secret_field(field), name
        assert meaning


def test_every_setting_is_documented_with_its_default():
    rows = table("Settings")
    assert set(rows) == set(MLflowPlusSettings.model_fields)
    for name, (default, meaning) in rows.items():
        assert default == documented_default(MLflowPlusSettings.model_fields[name]), name
        assert meaning
