"""What every sweep needs: the server, the proxy in front of it, the probe and the stacks."""

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from testsupport.probe import Probe
    from testsupport.proxy import ProxyProcess
    from testsupport.servers import MlflowServer

BUILTIN, PLUS, NESTED, NONE = "mlflow", "mlflow_plus", "mlflow_plus nested", "no tracker"


@dataclass
class Bench:
    """A running benchmark: the MLflow server, the counting proxy, the probe and the stacks."""

    server: "MlflowServer"
    proxy: "ProxyProcess"
    probe: "Probe"
    stacks: dict[str, str]
    workdir: Path

    def activate(self, variant: str) -> None:
        """Make the stack of `variant` active."""
        from zenml.client import Client

        Client().activate_stack(self.stacks[variant])


def median(values: list[float]) -> float:
    """Return the median, 0 for no values."""
    return statistics.median(values) if values else 0.0


def spread(values: list[float], digits: int = 0) -> str:
    """Return 'median (min–max)' of `values`."""
    if not values:
        return "–"
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:.{digits}f}"
    return f"{middle:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def register_stacks(tracking_uri: str) -> dict[str, str]:
    """Register both flavors' trackers and one stack per variant; return variant -> stack."""
    from click.testing import CliRunner
    from zenml.client import Client
    from zenml.enums import StackComponentType

    from tracker_flavor.cli.main import cli

    result = CliRunner().invoke(
        cli,
        [
            "install", "--stack", "bench-plus", "--tracker", "bench-plus",
            "--config", f"tracking_uri={tracking_uri}", "--no-activate",
        ],
    )  # fmt: skip
    if result.exit_code:
        raise RuntimeError(result.output or repr(result.exception))
    client = Client()
    default = client.get_stack("default")
    components = {kind: [found[0].id] for kind, found in default.components.items()}
    builtin = client.create_stack_component(
        name="bench-builtin",
        flavor="mlflow",
        component_type=StackComponentType.EXPERIMENT_TRACKER,
        # The built-in refuses a server without authentication: a dummy token passes through.
        configuration={"tracking_uri": tracking_uri, "tracking_token": "benchmark"},
    )
    client.create_stack(
        name="bench-builtin",
        components={**components, StackComponentType.EXPERIMENT_TRACKER: [builtin.id]},
    )
    return {BUILTIN: "bench-builtin", PLUS: "bench-plus", NESTED: "bench-plus", NONE: "default"}
