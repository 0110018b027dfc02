"""Run the Python blocks of the docs' pages in tests, as if their code were written in the test."""

import linecache
import re
from typing import Any


def python_block(text: str, where: str) -> str:
    """Return the first ```python block of `text` (a page's section); `where` names it on failure."""
    found = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert found, where
    return found[1]


def define(code: str, filename: str, namespace: dict[str, Any]) -> None:
    """Run `code` in `namespace`, registered under `filename` (ZenML reads a step's source)."""
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    exec(compile(code, filename, "exec"), namespace)
