"""Per-pipeline and per-step settings of the `mlflow_plus` experiment tracker."""

import difflib
import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from zenml.config.base_settings import BaseSettings

RUN_ID = re.compile(r"[0-9a-f]{32}")
"""The ids every MLflow store gives runs (`uuid4().hex`), as in a run's URL `.../runs/<id>`."""


class MLflowPlusSettings(BaseSettings):
    """Settings given with `settings={"experiment_tracker": {...}}` on a step or pipeline."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    experiment_name: str | None = Field(
        None, description="MLflow experiment of the run; defaults to the pipeline name."
    )
    nested: bool = Field(
        False,
        description="Give each step a child run under the pipeline run's parent run; "
        "when False every step logs into the parent run.",
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="Extra tags set on the MLflow runs."
    )
    run_name: str | None = Field(
        None, description="Name of the MLflow parent run; defaults to the ZenML run name."
    )
    parent_run_id: str | None = Field(
        None,
        description="Id of an existing MLflow run to put the pipeline run's parent run under "
        "(mlflow.parentRunId); it goes into that run's experiment.",
    )
    log_step_parameters: bool = Field(
        True, description="Log the step's parameters as MLflow params."
    )
    autolog: bool = Field(
        False, description="Turn MLflow autologging on for the duration of the step."
    )
    async_logging: bool = Field(
        True,
        description="Batch what the step's code logs with mlflow.log_metric/log_param/set_tag "
        "and deliver it before the step ends; the step fails if any valid value does not arrive.",
    )
    on_tracking_outage: Literal["spool", "fail"] = Field(
        "spool",
        description="When the tracking server is down at step start or stops answering: "
        "'spool' keeps the step going and writes what it logs to a spool in the artifact store "
        "(delivered later by `zenml-mlflow sync` or a later step); 'fail' fails the step.",
    )
    outage_grace_seconds: float = Field(
        30,
        ge=0,
        description="In spool mode, how long a step's end waits for an unreachable server "
        "before it spools what is left.",
    )

    track_output: bool | list[str] = Field(
        False,
        description="Store the step's outputs that no later step consumes (True), or the named "
        "outputs, as MLflow artifacts under zenml/<step>/<output>/data/.",
    )
    track_reports: bool | list[str] = Field(
        True,
        description="Store the visualizations ZenML makes of the step's outputs (all, or of the "
        "named outputs) as MLflow artifacts, so reports open in the MLflow UI.",
    )
    track_intermediates: bool | list[str] = Field(
        False,
        description="Store the step's outputs that later steps consume (True), or the named "
        "ones, as MLflow artifacts.",
    )
    max_artifact_mb: float = Field(
        100,
        gt=0,
        description="Largest output or report (in MB) stored in MLflow; larger ones are "
        "skipped with a warning.",
    )
    lineage: bool = Field(
        True,
        description="Record the step's input and output ZenML artifact versions as MLflow "
        "datasets of its run, and the run's link on each output artifact version.",
    )
    log_model: str | None = Field(
        None,
        description="Name of the step output to log as an MLflow model of the step's run.",
    )
    registered_model_name: str | None = Field(
        None,
        description="Register the model of log_model as a new version of this registered model.",
    )
    log_system_metrics: bool = Field(
        False,
        description="Sample MLflow's system metrics (CPU, memory, disk, network, GPU) while "
        "the step runs; prefixed by the step name in unified mode.",
    )
    system_metrics_interval_seconds: float = Field(
        10, gt=0, description="Seconds between two samples of the system metrics."
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        """Name an unknown key and the closest valid one, instead of dropping it silently."""
        if cls.model_config.get("extra") != "forbid" or not isinstance(data, dict):
            return data
        unknown = sorted(set(data) - set(cls.model_fields))
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, cls.model_fields, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(
                f"unknown mlflow_plus experiment tracker setting(s) {', '.join(hints)}: "
                f"valid settings are {', '.join(sorted(cls.model_fields))}."
            )
        return data

    @field_validator("experiment_name", "run_name")
    @classmethod
    def _not_blank(cls, value: str | None, info: Any) -> str | None:
        """Reject an empty or blank name."""
        if value is not None and not value.strip():
            raise ValueError(
                f"{info.field_name} must not be empty: give a name, or leave it unset "
                + (
                    "to use the pipeline name."
                    if info.field_name == "experiment_name"
                    else "to use the ZenML run name."
                )
            )
        if value is not None and info.field_name == "experiment_name":
            from mlflow.utils.validation import MAX_EXPERIMENT_NAME_LENGTH

            if len(value) > MAX_EXPERIMENT_NAME_LENGTH:
                raise ValueError(
                    f"experiment_name is {len(value)} characters long; MLflow allows at most "
                    f"{MAX_EXPERIMENT_NAME_LENGTH}: give a shorter name."
                )
        return value

    @field_validator("parent_run_id")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        """Refuse what cannot be an MLflow run id (a run name, a URL) before any run starts."""
        if value is not None and not RUN_ID.fullmatch(value):
            raise ValueError(
                f"parent_run_id {value!r} is not an MLflow run id: give the 32 hexadecimal "
                "characters after /runs/ in the run's URL (or `mlflow.active_run().info.run_id`)."
            )
        return value

    @field_validator("tags", mode="before")
    @classmethod
    def _string_tags(cls, value: Any) -> Any:
        """Turn tag values into strings with `str`, as MLflow's `set_tag` does (the built-in's)."""
        if not isinstance(value, dict):
            raise ValueError("tags must be a mapping of tag names to values.")
        return {key: item if isinstance(item, str) else str(item) for key, item in value.items()}

    def check_unity_catalog_name(self) -> None:
        """Refuse a registered model name Unity Catalog cannot take (not catalog.schema.model)."""
        name = self.registered_model_name
        if name and (len(parts := name.split(".")) != 3 or not all(parts)):
            raise ValueError(
                f"registered_model_name {name!r} is not a Unity Catalog name: with "
                "enable_unity_catalog, name the model <catalog>.<schema>.<model>, e.g. "
                "'main.ml.churn'."
            )

    @model_validator(mode="after")
    def _model_to_register(self) -> "MLflowPlusSettings":
        """Refuse registered_model_name without log_model, which names what to register."""
        if self.registered_model_name and not self.log_model:
            raise ValueError(
                "registered_model_name needs log_model: name the step output to register, "
                "e.g. log_model='model'."
            )
        return self
