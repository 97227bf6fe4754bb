"""Build API over the same runs: queue, get, list, cancel (``update_build``), timeline and logs."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from adapters.emulators.azure_devops import locations
from adapters.emulators.azure_devops.api.pipelines import resolve_parameters, resolve_variables
from adapters.emulators.azure_devops.errors import ServiceError, bad_request, not_found
from adapters.emulators.azure_devops.model import Run
from adapters.emulators.azure_devops.router import Call, Router
from adapters.emulators.azure_devops.shapes import collection

if TYPE_CHECKING:
    from adapters.emulators.azure_devops.emulator import AzureDevOpsEmulator

BASE = "{org}/{project}/_apis/build/builds"


def _slice(lines: list[str], start: str | None, end: str | None) -> list[str]:
    """``startLine``/``endLine`` are 1-based and inclusive."""
    first = max(int(start), 1) if start and start.isdigit() else 1
    last = int(end) if end and end.isdigit() else len(lines)
    return lines[first - 1 : last]


# The time each ``queryOrder`` orders builds by, which ``minTime`` and ``maxTime`` bound.
_TIMES: dict[str, Callable[[Run], datetime | None]] = {
    "queuetime": lambda r: r.created,
    "starttime": lambda r: r.start_time,
    "finishtime": lambda r: r.finished,
}


def _time(call: Call, name: str) -> datetime | None:
    """A time query parameter (ISO 8601, as the SDK sends it), as an aware datetime; None if not given."""
    raw = call.arg(name)
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise bad_request(f"{name} {raw} is not a valid date.") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def register(router: Router, emulator: AzureDevOpsEmulator) -> None:
    world = emulator.world
    shapes = emulator.shapes

    def build_of(call: Call) -> Run:
        build_id = call.int_param("buildId")
        run = emulator.engine.runs.get(build_id)
        if run is None:
            raise not_found("BuildNotFoundException", f"The requested build {build_id} could not be found.")
        return run

    async def queue_build(call: Call) -> web.Response:
        body = await call.json()
        if not isinstance(body, Mapping):
            raise bad_request("The build must be a JSON object.")
        definition = body.get("definition") or {}
        definition_id = definition.get("id") if isinstance(definition, Mapping) else None
        definition_id = definition_id or call.arg("definitionId")
        pipeline = world.pipeline(str(definition_id)) if definition_id is not None else None
        if pipeline is None or str(pipeline.id) != str(definition_id):
            raise not_found(
                "DefinitionNotFoundException",
                f"The build definition with id {definition_id} does not exist or you do not have permission to see it.",
            )
        raw = body.get("parameters")
        try:
            given = json.loads(raw) if isinstance(raw, str) and raw else {}
        except ValueError:
            raise bad_request("The parameters of the build are not valid JSON.") from None
        if not isinstance(given, Mapping):
            raise bad_request("The parameters of the build must be a JSON object.")
        template = body.get("templateParameters") or {}
        assert call.caller is not None
        run = emulator.engine.queue(
            pipeline,
            call.caller,
            template_parameters=resolve_parameters(pipeline, template),
            variables=resolve_variables(pipeline, given),
            ref_name=body.get("sourceBranch"),
            source_version=body.get("sourceVersion"),
        )
        return web.json_response(shapes.build(run))

    async def list_builds(call: Call) -> web.Response:
        order = (call.arg("queryOrder") or "queueTimeDescending").lower()
        when = _TIMES.get(order.removesuffix("ascending").removesuffix("descending"))
        if when is None:
            raise bad_request(f"queryOrder {call.arg('queryOrder')} is not a valid BuildQueryOrder.")
        earliest, latest = _time(call, "minTime"), _time(call, "maxTime")

        def within(run: Run) -> bool:
            at = when(run)
            if earliest is None and latest is None:
                return True
            return at is not None and (earliest is None or at >= earliest) and (latest is None or at <= latest)

        never = datetime.max.replace(tzinfo=UTC)  # (a build not yet started or finished sorts after the others)
        runs = sorted(
            filter(within, emulator.engine.runs.values()),
            key=lambda r: (when(r) or never, r.id),
            reverse=order.endswith("descending"),
        )
        definitions = {d for d in (call.arg("definitions") or "").split(",") if d}
        ids = {i for i in (call.arg("buildIds") or "").split(",") if i}
        status = (call.arg("statusFilter") or "").lower()
        result = (call.arg("resultFilter") or "").lower()
        branch = (call.arg("branchName") or "").lower()
        selected = [
            r
            for r in runs
            if (not definitions or str(r.pipeline.id) in definitions)
            and (not ids or str(r.id) in ids)
            and (not status or status == "all" or r.build_status.lower() == status)
            and (not result or (r.result or "").lower() == result)
            and (not branch or r.ref_name.lower() == branch)
        ]
        top = call.arg("$top")
        if top and top.isdigit():
            selected = selected[: int(top)]
        return web.json_response(collection([shapes.build(r) for r in selected]))

    async def get_build(call: Call) -> web.Response:
        return web.json_response(shapes.build(build_of(call)))

    async def update_build(call: Call) -> web.Response:
        run = build_of(call)
        body = await call.json()
        if not isinstance(body, Mapping):
            raise bad_request("The build must be a JSON object.")
        assert call.caller is not None
        status = body.get("status")
        if status is not None and status not in ("cancelling", run.build_status):
            raise ServiceError(400, "InvalidBuildStatusException", f"The build status cannot be changed to {status}.")
        if status == "cancelling":
            emulator.engine.cancel(run, call.caller)
        if "keepForever" in body:
            run.keep_forever = bool(body["keepForever"])
            run.last_changed, run.last_changed_by = emulator.clock.now(), call.caller
        return web.json_response(shapes.build(run))

    async def get_timeline(call: Call) -> web.Response:
        run = build_of(call)
        timeline_id = call.params.get("timelineId")
        if timeline_id is not None and timeline_id.lower() != run.timeline_id:
            raise not_found("TimelineNotFoundException", f"Timeline {timeline_id} not found.")
        return web.json_response(shapes.timeline(run))

    async def get_logs(call: Call) -> web.Response:
        run = build_of(call)
        return web.json_response(collection([shapes.build_log(run, log) for log in run.logs]))

    async def get_log(call: Call) -> web.Response:
        run = build_of(call)
        log_id = call.int_param("logId")
        log = next((lg for lg in run.logs if lg.id == log_id), None)
        if log is None:
            raise not_found("BuildLogNotFoundException", f"Log {log_id} of build {run.id} not found.")
        lines = _slice(log.lines, call.arg("startLine"), call.arg("endLine"))
        if call.accepts_text:
            return web.Response(text="\n".join(lines), content_type="text/plain")
        return web.json_response(collection(lines))

    number = r"\d+"
    router.add("POST", BASE, queue_build, location=locations.BUILDS)
    router.add("GET", BASE, list_builds, location=locations.BUILDS)
    router.add("GET", BASE + f"/{{buildId:{number}}}", get_build, location=locations.BUILDS)
    router.add("PATCH", BASE + f"/{{buildId:{number}}}", update_build, location=locations.BUILDS)
    router.add("GET", BASE + f"/{{buildId:{number}}}/Timeline", get_timeline, location=locations.TIMELINE)
    router.add(
        "GET", BASE + f"/{{buildId:{number}}}/Timeline/{{timelineId}}", get_timeline, location=locations.TIMELINE
    )
    router.add("GET", BASE + f"/{{buildId:{number}}}/logs", get_logs, location=locations.BUILD_LOGS)
    router.add("GET", BASE + f"/{{buildId:{number}}}/logs/{{logId:{number}}}", get_log, location=locations.BUILD_LOGS)
