"""The pages people open from Handoff's cards: Azure ML studio's and the Azure portal's storage browser.

Each page is plain HTML with what the real page would tell at a glance, served at the real page's path
under ``/studio`` (Azure ML studio: a job or a drift run, a model version, a real-time endpoint) and
``/portal/`` (the portal's storage browser, whose real address is all in the fragment, which browsers
never send: the page lists every file the emulated storage holds).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from adapters.emulators.azure_ml.emulator import AzureMLEmulator


def _page(title: str, *paragraphs: str, items: Iterable[str] = ()) -> web.Response:
    rows = "".join(f"<li>{item}</li>" for item in items)
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    text = f"<html><body><h1>{html.escape(title)}</h1>{body}<ul>{rows}</ul></body></html>"
    return web.Response(text=text, content_type="text/html")


class StudioPages:
    """The emulator's views of its workspace and storage, as studio and the portal show them."""

    def __init__(self, emulator: AzureMLEmulator) -> None:
        self.emulator = emulator

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/studio/runs/{name}", self.run)
        app.router.add_get("/studio/model/{reference}/details", self.model)
        app.router.add_get("/studio/endpoints/realtime/{name}/detail", self.endpoint)
        app.router.add_get("/portal/", self.storage_browser)

    async def run(self, request: web.Request) -> web.Response:
        """A run's page (``/runs/{id}``): a job's states, or what a dataset monitor's drift run measured."""
        state = self.emulator.state
        name = request.match_info["name"]
        if (job := state.jobs.get(name)) is not None:
            return _page(
                job.display_name or job.name,
                f"Status: <b>{html.escape(job.status)}</b>",
                items=(f"{html.escape(status)} at {at.isoformat()}" for status, at in job.history),
            )
        if (drift := state.drift_runs.get(name)) is not None:
            return _page(
                f"{drift.monitor_name}: drift run {drift.run_id}",
                f"Drift coefficient: <b>{drift.drift_coefficient:.3f}</b>",
                f"Baseline {html.escape(drift.base_dataset)}, target {html.escape(drift.target_dataset)}, "
                f"from {drift.window_start.isoformat()} to {drift.window_end.isoformat()}",
            )
        return web.Response(status=404, text="run not found")

    async def model(self, request: web.Request) -> web.Response:
        """A model version's page (``/model/{name}:{version}/details``): its tags and properties."""
        name, _, version = request.match_info["reference"].rpartition(":")
        model = self.emulator.state.models.get(name, {}).get(version)
        if model is None:
            return web.Response(status=404, text="model version not found")
        return _page(
            f"{model.name}:{model.version}",
            f"Registered {model.created_at.isoformat()}",
            items=(
                f"{html.escape(key)}: {html.escape(value)}"
                for key, value in sorted({**model.tags, **model.properties}.items())
            ),
        )

    async def endpoint(self, request: web.Request) -> web.Response:
        """A real-time endpoint's page (``/endpoints/realtime/{name}/detail``): its compute, the models on it."""
        name = request.match_info["name"]
        emulator = self.emulator
        if name not in emulator.deployments and name not in emulator.world.endpoints:
            return web.Response(status=404, text="endpoint not found")
        compute = emulator.world.endpoints.get(name, "Managed")
        deployed = emulator.deployments.get(name, [])
        return _page(
            name,
            f"Compute: {html.escape(compute)}",
            "Deployed models:" if deployed else "No model deployed",
            items=(html.escape(model_id) for model_id in deployed),
        )

    async def storage_browser(self, request: web.Request) -> web.Response:
        """The storage browser: every file of every account and container, as ``account/container/path``."""
        blobs = sorted(self.emulator.state.blobs)
        return _page(
            "Storage browser",
            items=(html.escape(f"{account}/{container}/{path}") for account, container, path in blobs),
        )
