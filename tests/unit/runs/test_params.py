import logging

import pytest

from tracker_flavor.runs.params import MAX_VALUE_LENGTH, sanitize_key, step_params

pytestmark = pytest.mark.unit


def test_dicts_are_flattened_with_dots_and_prefixed():
    params = step_params({"opt": {"lr": 0.1, "betas": {"b1": 0.9}}, "epochs": 3}, prefix="train")
    assert params == {"train.opt.lr": "0.1", "train.opt.betas.b1": "0.9", "train.epochs": "3"}


def test_no_parameters_log_nothing_and_empty_nested_dicts_keep_their_key():
    assert step_params({}) == {}
    assert step_params({"extra": {}}) == {"extra": "{}"}


def test_keys_are_sanitised_to_mlflows_characters():
    assert sanitize_key("a b/c.d-e:f") == "a b/c.d-e:f"
    assert sanitize_key("weird*key?[0]") == "weird_key__0_"
    assert len(sanitize_key("k" * 400)) == 250


def test_long_values_are_truncated_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING):
        params = step_params({"a": "x" * 10_000, "b": "y" * 7_000, "c": "short"})
    assert len(params["a"]) == MAX_VALUE_LENGTH and params["a"].endswith("...")
    assert len(params["b"]) == MAX_VALUE_LENGTH
    assert params["c"] == "short"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "a, b" in warnings[0].getMessage()


def test_a_value_whose_str_raises_does_not_crash():
    class Hostile:
        def __str__(self):
            raise RuntimeError("no")

    assert step_params({"h": Hostile()}) == {"h": "<unprintable Hostile>"}
