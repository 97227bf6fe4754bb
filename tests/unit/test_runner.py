"""What the runner derives from a command run on its own: the Azure ML job name and the `runs` line."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.config import Settings, parse_settings
from bot.pipeline_runs import organization_name
from bot.records import CommandRun, CommandRunState
from bot.runner import job_experiment, job_name, job_title, run_line

ASKED = datetime(2026, 11, 28, 9, 40, 5, tzinfo=UTC)
RUN = CommandRun(
    idempotency_key="alice@contoso.com:retrain model-x",
    actor="alice@contoso.com",
    platform="slack",
    conversation="C0MLMODELS",
    command="retrain model-x",
    target="model-x",
    state=CommandRunState.STARTED,
    created_at=ASKED,
    id=12,
)


def test_the_job_name_is_the_same_for_a_run_and_new_for_another() -> None:
    assert job_name("model-x", RUN) == job_name("model-x", replace(RUN)) == "handoff-model-x-12-20261128094005"
    assert job_name("model-x", replace(RUN, id=13)) != job_name("model-x", RUN)
    # a store started afresh numbers runs from 1 again: the time keeps its jobs apart from older ones
    assert job_name("model-x", replace(RUN, created_at=ASKED + timedelta(days=30))) != job_name("model-x", RUN)


def test_the_job_name_is_one_azure_ml_accepts() -> None:
    name = job_name("Model X/v2 (test)", RUN)
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", name), name


def test_a_job_is_named_as_azure_ml_studio_lists_it_not_by_its_path(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "train.yml").write_text("type: command\ndisplay_name: Train model X\nexperiment_name: model-x\n")
    (jobs / "nightly.yml").write_text("type: command\nexperiment_name: model-x-nightly\n")
    (jobs / "plain.yaml").write_text("type: command\ncommand: python train.py\n")
    (jobs / "broken.yml").write_text("type: [command\n")
    assert job_title(str(jobs / "train.yml"), Path("/elsewhere")) == "Train model X"
    assert job_title("jobs/train.yml", tmp_path) == "Train model X"  # relative to the configuration's folder
    assert job_title("jobs/nightly.yml", tmp_path) == "model-x-nightly"
    assert job_title("jobs/plain.yaml", tmp_path) == "plain"
    assert job_title("jobs/broken.yml", tmp_path) == "broken"
    assert job_title("jobs/missing.yml", tmp_path) == "missing"


def test_a_jobs_experiment_is_named_as_azure_ml_names_it_not_by_the_jobs_display_name(tmp_path: Path) -> None:
    (tmp_path / "train.yml").write_text("display_name: train-model-x\nexperiment_name: model-x-train\n")
    (tmp_path / "plain.yml").write_text("display_name: train-model-x\n")
    assert job_experiment("train.yml", tmp_path, {}) == "model-x-train"
    assert job_experiment("train.yml", tmp_path, {"experiment_name": "model-x-tuning"}) == "model-x-tuning"
    assert job_experiment("plain.yml", tmp_path, {}) == "Default"  # where Azure ML puts a job naming none
    assert job_experiment("missing.yml", tmp_path, {}) == "Default"


def test_a_runs_line_says_who_how_where_and_when() -> None:
    started = replace(
        RUN,
        backend_run_id="handoff-model-x-12-20261128094005",
        details={"service": "azure-ml", "url": "https://ml.azure.com/runs/handoff-model-x-12-20261128094005"},
    )
    assert run_line(started) == (
        "• 12: `retrain model-x` by alice@contoso.com, started, Azure ML job "
        "[handoff-model-x-12-20261128094005](https://ml.azure.com/runs/handoff-model-x-12-20261128094005), "
        "2026-11-28 09:40 UTC"
    )
    waiting = replace(RUN, state=CommandRunState.REQUESTED)
    assert "requested, not started, 2026-11-28 09:40 UTC" in run_line(waiting)


def test_a_runs_line_names_an_azure_devops_run_as_azure_devops_does() -> None:
    started = replace(
        RUN,
        command="integrate app-y",
        backend_run_id="106",
        details={
            "service": "azure-devops",
            "name": "20261129.5",
            "url": "https://dev.azure.com/contoso/p/_build?b=106",
        },
    )
    assert "Azure DevOps run [20261129.5](https://dev.azure.com/contoso/p/_build?b=106)," in run_line(started)
    # as its card names it, by its pipeline too, and who asked by their name in chat
    named = replace(
        started,
        details={**started.details, "pipeline": "integrate-app-y", "asked_by": {"name": "Alice Martin", "email": "a"}},
    )
    line = run_line(named)
    assert "`integrate app-y` by Alice Martin, started, " in line
    assert "Azure DevOps run [integrate-app-y 20261129.5](https://dev.azure.com/contoso/p/_build?b=106)," in line


def test_runs_handoff_polls_are_named_by_the_organization_azure_devops_events_name() -> None:
    def settings(url: str) -> Settings:
        hooks = {"basic": {"username": "handoff", "password": "${HOOK_PASSWORD}"}}
        devops = {"organization_url": url, "projects": ["mlops"], "pat": "${PAT}", "service_hooks": hooks}
        return parse_settings({"azure_devops": devops}, {"PAT": "p", "HOOK_PASSWORD": "h"})

    assert organization_name(settings("https://dev.azure.com/Contoso")) == "contoso"
    assert organization_name(settings("https://dev.azure.com/contoso/")) == "contoso"
    assert organization_name(settings("https://contoso.visualstudio.com")) == "contoso"  # not the host
    assert organization_name(settings("https://ado.corp.example/tfs/Contoso")) == "contoso"
    assert organization_name(parse_settings({}, {})) == ""
