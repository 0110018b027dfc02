"""Register an mlflow_plus tracker for a tracking server, then run the quickstart against it."""

import argparse

from zenml.client import Client
from zenml.enums import StackComponentType

from examples.quickstart.pipeline import quickstart
from examples.quickstart.run import main as run_quickstart
from tracker_flavor.cli.components import create_stack_with_tracker

TRACKER = "mlflow_plus_server"


def use_server(tracking_uri: str, extra: list[str]) -> None:
    """Point the `remote_server` stack's tracker at the server and activate the stack."""
    client = Client()
    config = {"tracking_uri": tracking_uri, **dict(pair.split("=", 1) for pair in extra)}
    stack_name = "remote_server"
    try:
        stack = client.get_stack(stack_name, allow_name_prefix_match=False)
        tracker = stack.components[StackComponentType.EXPERIMENT_TRACKER][0]
        client.update_stack_component(
            tracker.id, StackComponentType.EXPERIMENT_TRACKER, configuration=config
        )
    except KeyError:
        tracker = client.create_stack_component(
            name=TRACKER, flavor="mlflow_plus",
            component_type=StackComponentType.EXPERIMENT_TRACKER, configuration=config,
        )  # fmt: skip
        create_stack_with_tracker(stack_name, tracker.id)
    client.activate_stack(stack_name)


def main() -> None:
    """Parse the arguments, set up the stack and run the quickstart."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracking-uri", default="http://127.0.0.1:5001")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    arguments = parser.parse_args()
    use_server(arguments.tracking_uri, arguments.config)
    # The quickstart's steps name the embedded tracker; point them at this one instead.
    steps = {name: {"experiment_tracker": TRACKER} for name in ("load_data", "train", "evaluate")}
    run_quickstart(quickstart.with_options(steps=steps))


if __name__ == "__main__":
    main()
