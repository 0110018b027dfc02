"""Shared output of the commands: `--output table|json`, rich tables and JSON."""

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

F = TypeVar("F", bound=Callable[..., Any])


def output_option(command: F) -> F:
    """Add `--output table|json` to a command that prints data."""
    return click.option(
        "--output",
        "-o",
        "output",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="Print a human-readable table, or JSON for scripts.",
    )(command)


def print_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> None:
    """Print a rich table on stdout, unwrapped when stdout is not a terminal."""
    table = Table(*columns, title=title or None)
    for row in rows:
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 1000).print(table)


def error_message(error: Exception) -> str:
    """Return an error's message; a pydantic ValidationError's as `field: reason` lines only."""
    if not isinstance(error, ValidationError):
        return str(error)
    lines = []
    for detail in error.errors(include_url=False, include_input=False):
        # A validator's ValueError says what to fix; pydantic prefixes it with its error type.
        message = detail["msg"].removeprefix("Value error, ")
        field = ".".join(str(part) for part in detail["loc"])
        lines.append(f"{field}: {message}" if field else message)
    return "\n".join(lines)
