"""Render the CLI reference page (docs/cli.md) from the click commands themselves.

Regenerate it with `python -m tracker_flavor.cli.reference > docs/cli.md`; a unit test keeps
it current.
"""

from collections.abc import Iterator

import click

HEADER = """# CLI reference

`zenml-mlflow` is installed with the package. Every command has `--help`, exits with a non-zero
code and a one-line reason when it fails, and commands that print data take `--output json`.
This page is generated from the commands (`python -m tracker_flavor.cli.reference > docs/cli.md`).
"""


def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    """Yield every command under `command` with its full invocation, depth first."""
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from walk(command.commands[name], f"{path} {name}")


def _help(text: str) -> list[str]:
    """Return a command's help as Markdown; `Example:` paragraphs become code blocks."""
    lines = []
    for paragraph in text.strip().split("\n\n"):
        paragraph = " ".join(line.strip() for line in paragraph.splitlines())
        if paragraph.startswith("Example:"):
            lines += ["```bash", paragraph.removeprefix("Example:").strip(), "```", ""]
        else:
            lines += [paragraph, ""]
    return lines


def render(root: click.Group, name: str = "zenml-mlflow") -> str:
    """Return the Markdown reference of `root` and all its subcommands."""
    lines = [HEADER]
    for path, command in walk(root, name):
        context = click.Context(command, info_name=path, **root.context_settings)
        usage = " ".join([path, *command.collect_usage_pieces(context)])
        lines += [f"## `{path}`", "", *_help(command.help or ""), "```text", usage, "```", ""]
        options = [
            record
            for param in command.get_params(context)
            if (record := param.get_help_record(context)) is not None
        ]
        lines += [f"- `{decl}`: {text}" for decl, text in options]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    from .main import cli

    click.echo(render(cli), nl=False)
