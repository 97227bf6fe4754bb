"""What a person's browser reaches: signed log downloads and a minimal run results page.

Both are anonymous, like the time-limited ``signedContent`` URLs of the service; the results page
stands in for ``_build/results?buildId=N`` so links in chat cards lead somewhere during the demo.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from aiohttp import web

from adapters.emulators.azure_devops.errors import not_found
from adapters.emulators.azure_devops.router import Call, Router

if TYPE_CHECKING:
    from adapters.emulators.azure_devops.emulator import AzureDevOpsEmulator


def register(router: Router, emulator: AzureDevOpsEmulator) -> None:
    async def signed_log(call: Call) -> web.Response:
        found = emulator.signed_logs.get(call.params["token"])
        run = emulator.engine.runs.get(found[0]) if found else None
        log = next((lg for lg in run.logs if found and lg.id == found[1]), None) if run else None
        if log is None:
            raise not_found("NotFoundException", "The signed URL is not valid or has expired.")
        return web.Response(text="\n".join(log.lines), content_type="text/plain")

    async def results(call: Call) -> web.Response:
        build_id = call.arg("buildId") or ""
        run = emulator.engine.runs.get(int(build_id)) if build_id.isdigit() else None
        if run is None:
            raise not_found("BuildNotFoundException", f"The requested build {build_id} could not be found.")
        rows = "".join(
            f"<tr><td>{html.escape(s.definition.display_name)}</td><td>{s.state}</td><td>{s.result or ''}</td></tr>"
            for s in run.stages
        )
        page = (
            f"<!doctype html><title>{html.escape(run.pipeline.name)} {html.escape(run.name)}</title>"
            f"<h1>{html.escape(run.pipeline.name)} &middot; {html.escape(run.name)}</h1>"
            f"<p>State: {run.state}; result: {run.result or 'pending'}; requested by "
            f"{html.escape(run.requested_by.display_name)}</p>"
            f"<table><tr><th>Stage</th><th>State</th><th>Result</th></tr>{rows}</table>"
        )
        return web.Response(text=page, content_type="text/html")

    router.add("GET", "_signed/logs/{token}", signed_log, anonymous=True)
    router.add("GET", "{org}/{project}/_build/results", results, anonymous=True)
