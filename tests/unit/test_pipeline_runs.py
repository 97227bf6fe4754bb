"""Which pipelines the configuration starts with a model version, and the version a run of one names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.config import parse_settings
from bot.events import PipelineRef
from bot.pipeline_runs import ModelPipelines, pipeline_run_event
from bot.ports import RunStatus, StartedRun


def pipelines(config: dict[str, Any]) -> ModelPipelines:
    return ModelPipelines.of(parse_settings(config, {}))


def run_of(pipeline: str, pipeline_id: str = "", project: str = "mlops") -> PipelineRef:
    return PipelineRef(
        organization="contoso", project=project, pipeline_id=pipeline_id, pipeline_name=pipeline, run_id="5"
    )


DEMO = {
    "models": {
        "model-x": {
            "consumers": ["app-y"],
            "promotion_gate": {"release": {"project": "mlops", "pipeline": "release-app-y"}},
        }
    },
    "apps": {"app-y": {"integration": {"project": "mlops", "pipeline": "integrate-app-y"}, "model": "model-x"}},
}


def test_an_apps_integration_and_a_models_release_are_read_for_a_model_version() -> None:
    configured = pipelines(DEMO)
    for pipeline in ("integrate-app-y", "Release-App-Y"):
        assert configured.takes_model("MLOps", run_of(pipeline))
        release = configured.model_of("mlops", run_of(pipeline), {"modelName": "model-x", "modelVersion": "9"})
        assert release == "model-x:9"
    assert not configured.takes_model("mlops", run_of("train-model-x"))
    assert not configured.takes_model("other", run_of("release-app-y"))
    assert configured.model_of("mlops", run_of("train-model-x"), {"modelName": "m", "modelVersion": "1"}) is None
    assert not pipelines({}).takes_model("mlops", run_of("release-app-y"))


def test_a_run_whose_parameters_give_the_version_alone_is_for_the_model_its_pipeline_is_configured_for() -> None:
    configured = pipelines(DEMO)
    assert configured.model_of("mlops", run_of("release-app-y"), {"modelVersion": "9"}) == "model-x:9"
    assert configured.model_of("mlops", run_of("release-app-y"), {"modelName": "model-x"}) is None


def test_a_pipeline_several_models_go_through_needs_the_model_named_in_its_parameters() -> None:
    release = {"release": {"project": "mlops", "pipeline": "release-all"}}
    configured = pipelines({"models": {"model-x": {"promotion_gate": release}, "model-z": {"promotion_gate": release}}})
    assert configured.model_of("mlops", run_of("release-all"), {"modelVersion": "9"}) is None
    assert configured.model_of("mlops", run_of("release-all"), {"modelName": "model-z", "modelVersion": "3"}) == (
        "model-z:3"
    )


def test_a_pipeline_configured_by_its_id_matches_runs_named_by_id() -> None:
    configured = pipelines({"apps": {"app-y": {"integration": {"project": "mlops", "pipeline": "2"}}}})
    assert configured.takes_model("mlops", run_of("integrate-app-y", pipeline_id="2"))
    assert not configured.takes_model("mlops", run_of("integrate-app-y", pipeline_id="3"))


def test_a_polled_run_names_its_branch_as_the_hooks_and_the_build_api_do() -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    started = StartedRun("5", "20261130.1", None, "inProgress")

    def branch(configured: str | None, told: str | None = None) -> str | None:
        status = RunStatus("5", "running", branch=told) if told is not None else None
        return pipeline_run_event("contoso", now, "mlops", "integrate-app-y", configured, started, status).branch

    assert branch("main") == "refs/heads/main"  # as configured, the way people write it
    assert branch("refs/heads/release/1") == branch("release/1") == "refs/heads/release/1"
    assert branch(None) is None
    assert branch(None, told="refs/heads/develop") == branch("main", told="refs/heads/develop") == "refs/heads/develop"
