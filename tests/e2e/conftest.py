"""Fixtures for the browser tests: the integration store with the embedded-store stack."""

from tests.integration.conftest import zenml_stack  # noqa: F401
