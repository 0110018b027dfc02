"""The wheel `uv build` makes: metadata for an index, typing markers, the license, and that it installs."""

import os
import shutil
import subprocess
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def uv(*args: str, cwd: Path = ROOT) -> str:
    # `python3 -m uv` as the Makefile runs it; every install below names its interpreter.
    result = subprocess.run(
        ["python3", "-m", "uv", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    uv("build", "--wheel", "--out-dir", str(out))
    (built,) = out.glob("zenml_mlflow_tracker-*-py3-none-any.whl")
    return built


def test_wheel_metadata_is_ready_for_an_index(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata_name,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
        dist_info = metadata_name.rsplit("/", 1)[0]
        license_text = archive.read(f"{dist_info}/licenses/LICENSE").decode()
    assert metadata["Name"] == "zenml-mlflow-tracker"
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert license_text == (ROOT / "LICENSE").read_text()
    assert license_text.lstrip().startswith(
        "Apache License\n                           Version 2.0"
    )
    classifiers = metadata.get_all("Classifier")
    for classifier in (
        "Programming Language :: Python :: 3.11",
        "Typing :: Typed",
        "Development Status :: 3 - Alpha",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ):
        assert classifier in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # the expression says it
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL"))
    assert urls and all(url.startswith("https://") for url in urls.values())
    assert metadata["Requires-Python"] == "<3.12,>=3.11"
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert {"tracker_flavor/py.typed", "cli/py.typed"} <= names
    assert not [name for name in names if name.startswith(("tests/", "docs/", "examples/"))]


def test_wheel_installs_into_a_fresh_environment_and_works_outside_the_checkout(
    wheel, tmp_path, request
):
    venv = tmp_path / "venv"
    request.addfinalizer(lambda: shutil.rmtree(venv, ignore_errors=True))  # ~700 MB if copied
    uv("venv", "--quiet", str(venv), "--python", "python3")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(uv("export", "--frozen", "--no-dev", "--no-emit-project", "--quiet"))
    python = str(venv / "bin" / "python")
    uv("pip", "install", "--quiet", "--python", python, "-c", str(constraints), str(wheel))
    # Outside the checkout, so only the installed wheel can answer.
    flavor = subprocess.run(
        [python, "-c", "from tracker_flavor.flavor import MLflowPlusFlavor as F; print(F().name)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert flavor.returncode == 0, flavor.stderr
    assert flavor.stdout.strip() == "mlflow_plus"
    helped = subprocess.run(
        [str(venv / "bin" / "zenml-mlflow"), "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert helped.returncode == 0 and "install" in helped.stdout
