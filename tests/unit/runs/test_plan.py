"""The step plan decides once what a step's runs are, in either mode."""

import pytest
from zenml.config.step_configurations import GroupInfo
from zenml.enums import GroupType

from tracker_flavor.config.settings import MLflowPlusSettings
from tracker_flavor.runs import tags
from tracker_flavor.runs.params import MAX_VALUE_LENGTH
from tracker_flavor.runs.plan import (
    PipelineFacts,
    Sampling,
    StepFacts,
    map_index,
    parent_spec,
    position,
    step_plan,
)

pytestmark = pytest.mark.unit

PIPELINE = PipelineFacts("run-id", "train-2026", "train", "pkg.pipelines", "stack", "0.98")
STEP = StepFacts(PIPELINE, "fit", "step-id", 2, {"alpha": 0.5})


def settings(**values) -> MLflowPlusSettings:
    return MLflowPlusSettings(**values)


def test_the_parent_is_named_after_the_zenml_run_in_the_pipeline_experiment():
    spec = parent_spec(settings(), PIPELINE, "alice")
    assert (spec.pipeline_run_id, spec.experiment_name, spec.run_name) == (
        "run-id", "train", "train-2026",
    )  # fmt: skip
    assert spec.tags[tags.PIPELINE_RUN_ID] == "run-id" and spec.tags["mlflow.user"] == "alice"
    assert spec.tags[tags.STACK] == "stack" and spec.tags["mlflow.source.name"] == "pkg.pipelines"
    named = parent_spec(
        settings(experiment_name="e", run_name="r", tags={"k": "v"}), PIPELINE, None
    )
    assert (named.experiment_name, named.run_name, named.tags["k"]) == ("e", "r", "v")


def test_unified_steps_log_params_and_their_tags_on_the_parent():
    """In unified mode the parent is the step's run: its `tags` setting goes there."""
    plan = step_plan(settings(tags={"team": "ml"}), STEP, None)
    assert not plan.nested
    assert plan.parent_tags == {"team": "ml", tags.LAST_STEP: "fit"}
    assert plan.parent_params == {"fit.alpha": "0.5"}
    assert plan.child_params == plan.queued_params == {}


def test_nested_steps_get_a_tagged_child_and_its_params_travel_in_the_first_batch():
    plan = step_plan(settings(nested=True, tags={"team": "ml"}), STEP, None)
    assert plan.parent_tags == {tags.LAST_STEP: "fit"} and plan.parent_params == {}
    assert plan.step_tags[tags.STEP_NAME] == "fit" and plan.step_tags[tags.ATTEMPT] == "2"
    assert plan.step_tags["team"] == "ml"
    assert plan.queued_params == {"alpha": "0.5"} and plan.child_params == {}
    synchronous = step_plan(settings(nested=True, async_logging=False), STEP, None)
    assert synchronous.child_params == {"alpha": "0.5"} and synchronous.queued_params == {}


def test_parameters_are_left_out_when_asked():
    assert step_plan(settings(log_step_parameters=False), STEP, None).parent_params == {}


def test_system_metrics_are_sampled_only_when_asked_named_after_the_step_in_a_shared_run():
    assert step_plan(settings(), STEP, None).sampling is None
    unified = step_plan(settings(log_system_metrics=True), STEP, None).sampling
    assert unified == Sampling(10, "fit")  # steps share the parent: each names its metrics
    nested = settings(log_system_metrics=True, nested=True, system_metrics_interval_seconds=2)
    assert step_plan(nested, STEP, None).sampling == Sampling(2, None)


def test_a_mapped_step_gets_its_own_run_with_its_index_and_item_in_unified_mode_too():
    mapped = StepFacts(PIPELINE, "map:fit:2", "step-id", 1, {"max_iter": 5}, 2, {"alpha": 0.1})
    plan = step_plan(settings(tags={"team": "ml"}), mapped, None)
    assert plan.nested and plan.parent_params == {}
    assert plan.parent_tags == {tags.LAST_STEP: "map:fit:2"}
    assert plan.step_tags[tags.MAP_INDEX] == "2" and plan.step_tags["team"] == "ml"
    assert plan.queued_params == {"max_iter": "5", "alpha": "0.1"}
    assert tags.MAP_INDEX not in step_plan(settings(), STEP, None).step_tags


def test_a_unified_step_puts_its_stepless_metrics_at_its_position_and_tags_the_parent():
    placed = StepFacts(PIPELINE, "fit", "step-id", 1, position=2)
    plan = step_plan(settings(), placed, None)
    assert plan.metric_step == 2
    assert plan.parent_tags == {tags.LAST_STEP: "fit", f"{tags.STEP_INDEX}fit": "2"}
    nested = step_plan(settings(nested=True), placed, None)  # a run of its own: left as is
    assert nested.metric_step is None and nested.parent_tags == {tags.LAST_STEP: "fit"}
    mapped = StepFacts(PIPELINE, "map:fit:1", "step-id", 1, map_index=1, position=2)
    assert step_plan(settings(), mapped, None).metric_step is None
    assert step_plan(settings(), STEP, None).metric_step is None  # no known place


def test_a_steps_position_is_its_place_in_a_static_pipelines_spec():
    from types import SimpleNamespace

    from zenml.config.pipeline_spec import PipelineSpec
    from zenml.config.step_configurations import StepSpec

    steps = [
        StepSpec(source="pkg.steps.load", upstream_steps=[], invocation_id=name)
        for name in ("load", "fit", "fit_2")
    ]
    spec = PipelineSpec(steps=steps)
    static = SimpleNamespace(pipeline_spec=spec, is_dynamic=False)
    assert [position(static, name) for name in ("load", "fit", "fit_2", "other")] == [
        0, 1, 2, None,
    ]  # fmt: skip
    assert position(SimpleNamespace(pipeline_spec=spec, is_dynamic=True), "fit") is None
    assert position(SimpleNamespace(pipeline_spec=None, is_dynamic=False), "fit") is None


@pytest.mark.parametrize(
    ("name", "group", "index"),
    [
        ("map:fit:0", GroupType.MAP, 0),
        ("map:fit_2:11", GroupType.MAP, 11),
        ("fit", None, None),
        ("map:fit:0", GroupType.MANUAL, None),  # a group the user made, not a map
        ("fit", GroupType.MAP, None),
        ("map:fit:x", GroupType.MAP, None),
    ],
)
def test_the_map_index_is_the_last_part_of_a_mapped_steps_name(name, group, index):
    info = GroupInfo(id="g", name="fit", type=group) if group else None
    assert map_index(name, info) == index


def test_the_pipeline_parameters_are_the_parents_params_validated_like_step_params(caplog):
    facts = PipelineFacts(
        "run-id", "r", "train", parameters={"C": 0.5, "opt": {"lr": 0.1}, "bad key!": "x" * 7000}
    )
    params = parent_spec(settings(), facts, None).params
    assert params["C"] == "0.5" and params["opt.lr"] == "0.1"
    assert len(params["bad key_"]) == MAX_VALUE_LENGTH
    assert "bad key_" in caplog.text
    assert parent_spec(settings(log_step_parameters=False), facts, None).params == {}


def test_parent_run_id_makes_the_parent_a_child_of_that_run():
    under = "0123456789abcdef0123456789abcdef"
    spec = parent_spec(settings(parent_run_id=under), PIPELINE, None)
    assert spec.tags["mlflow.parentRunId"] == under and spec.under == under
    assert not spec.experiment_named  # the run's experiment is the parent's
    assert parent_spec(
        settings(parent_run_id=under, experiment_name="e"), PIPELINE, None
    ).experiment_named
    assert "mlflow.parentRunId" not in parent_spec(settings(), PIPELINE, None).tags
