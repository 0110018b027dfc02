"""The examples run as the README says: the quickstart prints a link per step."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from examples.quickstart.run import main as run_quickstart

pytestmark = pytest.mark.integration


def test_quickstart_prints_each_steps_mlflow_link(zenml_stack, capsys):
    run_quickstart()
    out = capsys.readouterr().out
    links = re.findall(r"^\s+(load_data|train|evaluate|pipeline)\s+(\S+)$", out, re.MULTILINE)
    assert [name for name, _ in links] == ["load_data", "train", "evaluate", "pipeline"]
    assert all(
        re.fullmatch(
            r"http://127\.0\.0\.1:5000/#/experiments/\d+/runs/\w+\?workflowType=machine_learning", u
        )
        for _, u in links
    )
    assert "make ui" in out


def test_remote_server_example_starts_and_documents_its_options():
    result = subprocess.run(
        [sys.executable, "-m", "examples.remote_server.run", "--help"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--tracking-uri" in result.stdout and "--config" in result.stdout


def test_make_demo_and_ui_use_no_zenml_repository_of_the_checkout():
    """Another ZenML set-up in the checkout rewrites a `.zen` there; the demo must not read one."""
    root = Path(__file__).resolve().parents[2]
    dry = subprocess.run(
        ["make", "--dry-run", "--always-make", "demo", "ui"],
        cwd=root, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    commands = [line for line in dry.stdout.splitlines() if ".venv/bin/" in line]
    assert [line.split(".venv/bin/")[1].split()[:2] for line in commands] == [
        ["zenml-mlflow", "install"], ["python", "-m"], ["zenml-mlflow", "ui"]
    ]  # fmt: skip
    for line in commands:
        assert f"ZENML_CONFIG_PATH={root}/.zenml-demo " in line
        assert f"ZENML_REPOSITORY_PATH={root}/.zenml-demo/no-repository " in line
