"""The world panel's data: Azure DevOps pipelines and their recent runs, Azure ML jobs, models and the lake."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.emulators.azure_devops.emulator import AzureDevOpsEmulator
from adapters.emulators.azure_devops.model import Run
from adapters.emulators.azure_ml.emulator import AzureMLEmulator
from adapters.emulators.suite import EmulatorSuite

RECENT_RUNS = 4
RECENT_JOBS = 6
RECENT_VERSIONS = 4
RECENT_FILES = 3


def world_snapshot(suite: EmulatorSuite) -> dict[str, Any]:
    """What the panel shows, JSON-ready; it changes whenever a run, job, model or lake file does."""
    return {"devops": _devops(suite.ado), "ml": _ml(suite.aml)}


def _devops(ado: AzureDevOpsEmulator) -> dict[str, Any]:
    runs = ado.runs
    pipelines = []
    for pipeline in ado.world.pipelines:
        mine = [r for r in runs if r.pipeline.id == pipeline.id]
        pipelines.append(
            {
                "id": pipeline.id,
                "name": pipeline.name,
                "stages": [s.display_name for s in pipeline.stages],
                "scripted": len(ado.engine.scripts.get(pipeline.id, ())),
                "runs": [_run(ado, r) for r in reversed(mine[-RECENT_RUNS:])],
            }
        )
    return {"organization": ado.world.organization, "project": ado.world.project, "pipelines": pipelines}


def _run(ado: AzureDevOpsEmulator, run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "state": run.state,
        "result": run.result,
        "requestedBy": run.requested_by.display_name,
        "created": _iso(run.created),
        "parameters": dict(run.template_parameters),
        "stages": [
            {"name": s.definition.display_name, "state": s.state, "result": s.result, "skipped": s.skip}
            for s in run.stages
        ],
        "approvals": [{"id": a.id, "stage": a.stage_name, "status": a.status} for a in ado.approvals_for(run.id)],
    }


def _ml(aml: AzureMLEmulator) -> dict[str, Any]:
    state = aml.state
    jobs = sorted(state.jobs.values(), key=lambda j: j.created_at, reverse=True)[:RECENT_JOBS]
    models = []
    for name in sorted(state.models):
        versions = state.model_versions(name)
        models.append(
            {
                "name": name,
                "versions": [
                    {
                        "version": m.version,
                        "created": _iso(m.created_at),
                        "description": m.description,
                        "tags": dict(m.tags),
                    }
                    for m in versions[:RECENT_VERSIONS]
                ],
                "count": len(versions),
            }
        )
    lake = aml.world.lake
    files = []
    if lake is not None:
        found = [
            (record.last_modified, path)
            for (account, _, path), record in state.blobs.items()
            if account == lake.account
        ]
        files = [path for _, path in sorted(found, reverse=True)[:RECENT_FILES]]
    return {
        "workspace": aml.world.workspace,
        "jobs": [
            {
                "name": j.name,
                "displayName": j.display_name or j.name,
                "experiment": j.experiment_name,
                "status": j.status,
                "created": _iso(j.created_at),
                "model": ":".join(j.registered_model) if j.registered_model else None,
            }
            for j in jobs
        ],
        "models": models,
        "lake": None
        if lake is None
        else {"account": lake.account, "filesystem": lake.filesystem, "paths": list(lake.paths), "recent": files},
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None
