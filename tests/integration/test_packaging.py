"""The wheel `uv build` makes: metadata for an index, typing markers, the license, and that it installs."""

import json
import os
import re
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
    uv("build", "--out-dir", str(out))  # the wheel from the sdist, as an index would build it
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
        *(f"Programming Language :: Python :: 3.{minor}" for minor in (10, 11, 12, 13)),
        "Typing :: Typed",
        "Development Status :: 3 - Alpha",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ):
        assert classifier in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # the expression says it
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL"))
    assert urls and all(url.startswith("https://") for url in urls.values())
    assert metadata["Requires-Python"] == "<3.14,>=3.10"
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert {"tracker_flavor/py.typed", "tracker_flavor/cli/main.py"} <= names
    # One import package: the command line lives inside it, no bare `cli` beside it.
    assert {name.split("/")[0] for name in names} == {"tracker_flavor", dist_info}


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
    bare = subprocess.run(
        [python, "-c", "import cli"], cwd=tmp_path, capture_output=True, text=True
    )
    assert bare.returncode != 0 and "No module named 'cli'" in bare.stderr


def installed(python: str) -> dict[str, str]:
    """Return the name and version of every package in the environment of `python`."""
    listed = json.loads(uv("pip", "list", "--format", "json", "--python", python))
    return {package["name"]: package["version"] for package in listed}


def test_installing_beside_the_newest_zenml_and_mlflow_changes_none_of_their_packages(
    wheel, tmp_path, request
):
    """A team's venv keeps its versions: the wheel forces no downgrade (nor upgrade) on it."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        requires = Parser().parsestr(archive.read(name).decode()).get_all("Requires-Dist")
    # The newest releases the wheel accepts, resolved from the index as a user's venv would be.
    plain = [r for r in requires if ";" not in r]  # not an extra's
    ranges = [r for r in plain if re.match(r"(zenml|mlflow)[<>=]", r)]
    assert len(ranges) == 2 and not [r for r in plain if r.startswith("zenml[")], plain
    venv = tmp_path / "newest"
    request.addfinalizer(lambda: shutil.rmtree(venv, ignore_errors=True))
    uv("venv", "--quiet", str(venv), "--python", "python3")
    python = str(venv / "bin" / "python")
    uv("pip", "install", "--quiet", "--python", python, *ranges)
    before = installed(python)
    uv("pip", "install", "--quiet", "--python", python, str(wheel))
    after = installed(python)
    changed = {pkg: (v, after.get(pkg)) for pkg, v in before.items() if after.get(pkg) != v}
    assert changed == {}
    assert set(after) - set(before) == {"zenml-mlflow-tracker"}
