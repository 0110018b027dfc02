"""Test session set-up: one private ZenML store and embedded MLflow store per session."""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Before anything imports ZenML: a throw-away global config, quiet and offline. No ZenML
# repository: step sources resolve against the project root, the active stack lives in the
# session's global config, and a `.zen` that `make demo` left in the project is ignored (step
# processes running at once would race on a repository's config file).
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="zenml-mlflow-tests-"))
os.environ["ZENML_CONFIG_PATH"] = str(_SESSION_DIR / "zenml")
os.environ["ZENML_REPOSITORY_PATH"] = str(_SESSION_DIR / "no-repository")
os.environ["ZENML_CUSTOM_SOURCE_ROOT"] = str(Path(__file__).resolve().parents[1])
os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
os.environ["ZENML_LOGGING_VERBOSITY"] = "WARN"
os.environ["ZENML_ENABLE_RICH_TRACEBACK"] = "false"
os.environ.pop("MLFLOW_TRACKING_URI", None)

import pytest  # noqa: E402

from testsupport.servers import MlflowServer  # noqa: E402
from testsupport.topology import on_topology, topology_session  # noqa: E402, F401


@pytest.fixture(scope="session")
def session_dir() -> Path:
    """Return the session's scratch directory."""
    return _SESSION_DIR


@pytest.fixture(scope="session")
def mlflow_server(session_dir: Path) -> Iterator[MlflowServer]:
    """One real `mlflow server` (SQLite) for every module that only needs a server to talk to.

    Each boot costs a core about 16 s; the modules keep apart by experiment and run ids.
    """
    server = MlflowServer(session_dir / "servers" / "shared").start()
    try:
        yield server
    finally:
        server.stop()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With `-m KIND` (one marker), leave unimported the test modules that never name that marker.

    Marks come only from the modules' own source (`pytestmark`, `@pytest.mark.KIND`), so such a
    module holds no test of that kind; importing the integration modules costs seconds.
    """
    kind = config.option.markexpr.strip()
    if not kind.isidentifier() or not collection_path.name.startswith("test_"):
        return None
    if collection_path.suffix != ".py" or f"pytest.mark.{kind}" in collection_path.read_text():
        return None
    return True
