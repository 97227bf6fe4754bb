"""Pipelines API: pipelines, runs (``run_pipeline``, ``get_run``, ``list_runs``) and run logs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from adapters.emulators.azure_devops import locations
from adapters.emulators.azure_devops.errors import ServiceError, bad_request, not_found
from adapters.emulators.azure_devops.model import Run
from adapters.emulators.azure_devops.router import Call, Router
from adapters.emulators.azure_devops.shapes import collection
from adapters.emulators.azure_devops.world import PipelineDef

if TYPE_CHECKING:
    from adapters.emulators.azure_devops.emulator import AzureDevOpsEmulator

BASE = "{org}/{project}/_apis/pipelines"


def validation_error(message: str) -> ServiceError:
    return ServiceError(400, "PipelineValidationException", message)


def resolve_parameters(pipeline: PipelineDef, given: Mapping[str, Any]) -> dict[str, str]:
    """Template parameters as the service checks them: declared names, allowed values, defaults."""
    declared = {p.name.lower(): p for p in pipeline.parameters}
    errors = [
        f"{pipeline.yaml_path} (Line: 1, Col: 1): Unexpected parameter '{k}'"
        for k in given
        if k.lower() not in declared
    ]
    out: dict[str, str] = {}
    for key, spec in declared.items():
        value = next((str(v) for k, v in given.items() if k.lower() == key), spec.default)
        if value is None:
            errors.append(f"A value for the '{spec.name}' parameter must be provided.")
            continue
        if spec.values is not None and value not in spec.values:
            errors.append(f"The '{spec.name}' parameter value '{value}' is not a valid value.")
        out[spec.name] = value
    if errors:
        raise validation_error("\n".join(errors))
    return out


def resolve_variables(pipeline: PipelineDef, given: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Queue-time variables: only variables marked settable may be given."""
    declared = {v.name.lower(): v for v in pipeline.variables}
    refused = [k for k in given if k.lower() not in declared or not declared[k.lower()].settable]
    if refused:
        raise validation_error(
            f"You can't set the following variables ({', '.join(refused)}). If you want to be able to set these "
            "variables, then edit the pipeline and select Settable at queue time on the variables tab of the "
            "pipeline editor."
        )
    out: dict[str, dict[str, Any]] = {v.name: {"value": v.value} for v in pipeline.variables}
    for key, spec in given.items():
        name = declared[key.lower()].name
        value = spec.get("value") if isinstance(spec, Mapping) else spec
        entry: dict[str, Any] = {"value": "" if value is None else str(value)}
        if isinstance(spec, Mapping) and spec.get("isSecret"):
            entry["isSecret"] = True
        out[name] = entry
    return out


def register(router: Router, emulator: AzureDevOpsEmulator) -> None:
    world = emulator.world
    shapes = emulator.shapes

    def pipeline_of(call: Call) -> PipelineDef:
        pipeline_id = call.int_param("pipelineId")
        pipeline = next((p for p in world.pipelines if p.id == pipeline_id), None)
        if pipeline is None:
            raise not_found(
                "DefinitionNotFoundException",
                f"The pipeline with id {pipeline_id} does not exist or you do not have permission to see it.",
            )
        return pipeline

    def run_of(call: Call, pipeline: PipelineDef) -> Run:
        run_id = call.int_param("runId")
        run = emulator.engine.runs.get(run_id)
        if run is None or run.pipeline.id != pipeline.id:
            raise not_found("PipelineRunNotFoundException", f"Pipeline run {run_id} not found.")
        return run

    async def list_pipelines(call: Call) -> web.Response:
        items = sorted(world.pipelines, key=lambda p: p.name.lower())
        if (call.arg("orderBy") or "").lower().endswith("desc"):
            items.reverse()
        top = call.arg("$top")
        if top and top.isdigit():
            items = items[: int(top)]
        return web.json_response(collection([shapes.pipeline(p) for p in items]))

    async def get_pipeline(call: Call) -> web.Response:
        return web.json_response(shapes.pipeline(pipeline_of(call), with_configuration=True))

    async def list_runs(call: Call) -> web.Response:
        pipeline = pipeline_of(call)
        runs = sorted((r for r in emulator.engine.runs.values() if r.pipeline.id == pipeline.id), key=lambda r: -r.id)
        return web.json_response(collection([shapes.run(r) for r in runs]))

    async def run_pipeline(call: Call) -> web.Response:
        pipeline = pipeline_of(call)
        body = await call.json()
        if not isinstance(body, Mapping):
            raise bad_request("The run parameters must be a JSON object.")
        template = body.get("templateParameters") or {}
        variables = body.get("variables") or {}
        if not isinstance(template, Mapping) or not isinstance(variables, Mapping):
            raise bad_request("templateParameters and variables must be JSON objects.")
        parameters = resolve_parameters(pipeline, template)
        resolved = resolve_variables(pipeline, variables)
        repos = (
            ((body.get("resources") or {}).get("repositories") or {})
            if isinstance(body.get("resources"), Mapping)
            else {}
        )
        self_repo = repos.get("self") or {}
        stages_to_skip = tuple(str(s) for s in body.get("stagesToSkip") or ())
        unknown = [s for s in stages_to_skip if pipeline.stage(s) is None]
        if unknown:
            raise validation_error(f"Stage {unknown[0]} not found.")
        if body.get("previewRun"):
            return web.json_response({"finalYaml": emulator.final_yaml(pipeline, parameters), "id": -1, "name": None})
        assert call.caller is not None
        run = emulator.engine.queue(
            pipeline,
            call.caller,
            template_parameters=parameters,
            variables=resolved,
            ref_name=self_repo.get("refName"),
            source_version=self_repo.get("version"),
            stages_to_skip=stages_to_skip,
        )
        return web.json_response(shapes.run(run))

    async def get_run(call: Call) -> web.Response:
        return web.json_response(shapes.run(run_of(call, pipeline_of(call))))

    async def list_logs(call: Call) -> web.Response:
        pipeline = pipeline_of(call)
        run = run_of(call, pipeline)
        signed = (call.arg("$expand") or "").lower() == "signedcontent"
        logs = [shapes.pipeline_log(run, log, emulator.sign_log(run, log) if signed else None) for log in run.logs]
        return web.json_response({"logs": logs, "url": emulator.links.run_log(pipeline.id, run.id)})

    async def get_log(call: Call) -> web.Response:
        pipeline = pipeline_of(call)
        run = run_of(call, pipeline)
        log_id = call.int_param("logId")
        log = next((lg for lg in run.logs if lg.id == log_id), None)
        if log is None:
            raise not_found("PipelineLogNotFoundException", f"Log {log_id} of run {run.id} not found.")
        signed = (call.arg("$expand") or "").lower() == "signedcontent"
        return web.json_response(shapes.pipeline_log(run, log, emulator.sign_log(run, log) if signed else None))

    router.add("GET", BASE, list_pipelines, location=locations.PIPELINES)
    router.add("GET", BASE + "/{pipelineId:\\d+}", get_pipeline, location=locations.PIPELINES)
    router.add("GET", BASE + "/{pipelineId:\\d+}/runs", list_runs, location=locations.RUNS)
    router.add("POST", BASE + "/{pipelineId:\\d+}/runs", run_pipeline, location=locations.RUNS)
    router.add("GET", BASE + "/{pipelineId:\\d+}/runs/{runId:\\d+}", get_run, location=locations.RUNS)
    router.add("GET", BASE + "/{pipelineId:\\d+}/runs/{runId:\\d+}/logs", list_logs, location=locations.PIPELINE_LOGS)
    router.add(
        "GET",
        BASE + "/{pipelineId:\\d+}/runs/{runId:\\d+}/logs/{logId:\\d+}",
        get_log,
        location=locations.PIPELINE_LOGS,
    )
