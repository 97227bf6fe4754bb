"""A running Handoff with both ingest routes, a recording sink, and helpers to POST to it."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.azure_devops.hooks_route import (
    ApprovalDetails,
    ApproverIdentities,
    DependsOnActor,
    DependsOnRunFacts,
    RunDetails,
    add_azure_devops_hooks,
)
from adapters.azure_ml.eventgrid_route import add_eventgrid_route
from adapters.emulators.base import LocalServer
from adapters.sql import SqlStore
from adapters.web.hook_deadline import HOOK_TIMEOUT
from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings, parse_settings
from bot.events import DomainEvent
from bot.ingest import Ingest as StoringIngest

ENVIRON = {
    "ADO_PAT": "pat-value-not-used",
    "HOOK_PASSWORD": "hook-pa55word",
    "HOOK_TOKEN": "hook-t0ken-value",
    "EG_SECRET": "eg-delivery-s3cret",
}
HOOK_USER = "handoff"
HOOK_HEADER = "X-Handoff-Token"
WORKSPACE = {
    "subscription_id": "A5FE3BC5-98F0-4C84-AFFC-A589F54D9B23",
    "resource_group": "Jenns",
    "workspace": "JENNS-canary",
}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


RIGHT_BASIC = basic(HOOK_USER, ENVIRON["HOOK_PASSWORD"])


def make_settings(
    store_url: str,
    *,
    hook_auth: dict[str, Any] | None = None,
    eventgrid: dict[str, Any] | None = None,
    workspace: bool = False,
    environ: dict[str, str] | None = None,
) -> Settings:
    raw: dict[str, Any] = {
        "store": {"url": store_url},
        "azure_devops": {
            "organization_url": "https://dev.azure.com/contoso",
            "projects": ["Fabrikam"],
            "pat": "${ADO_PAT}",
            "service_hooks": hook_auth
            or {
                "basic": {"username": HOOK_USER, "password": "${HOOK_PASSWORD}"},
                "header": {"name": HOOK_HEADER, "value": "${HOOK_TOKEN}"},
            },
        },
        "eventgrid": {"delivery_secret": "${EG_SECRET}", **(eventgrid or {})},
    }
    if workspace:
        raw["azure_ml"] = WORKSPACE
    return parse_settings(raw, {**ENVIRON, **(environ or {})})


@dataclass
class RecordingSink:
    """Records every event it is asked to accept; a repeated dedupe key is a duplicate."""

    events: list[DomainEvent] = field(default_factory=list)
    deliveries: list[int] = field(default_factory=list)  # how many events each accept_all call brought
    fail_with: Exception | None = None
    _seen: set[str] = field(default_factory=set)

    async def accept(self, event: DomainEvent) -> bool:
        self.events.append(event)
        if self.fail_with is not None:
            raise self.fail_with
        new = event.dedupe_key not in self._seen
        self._seen.add(event.dedupe_key)
        return new

    async def accept_all(self, events: Sequence[DomainEvent]) -> list[bool]:
        self.deliveries.append(len(events))
        return [await self.accept(event) for event in events]

    async def stored_before(self, events: Sequence[DomainEvent]) -> list[bool]:
        if self.fail_with is not None:
            raise self.fail_with
        return [event.dedupe_key in self._seen for event in events]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Ingest:
    """Handoff with both routes, served on 127.0.0.1."""

    url: str
    sink: RecordingSink
    session: aiohttp.ClientSession

    async def post(
        self, path: str, body: bytes | str | Any, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Reply:
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        async with self.session.post(f"{self.url}{path}", data=data, headers=headers or {}, **kwargs) as resp:
            return Reply(resp.status, dict(resp.headers), await resp.text())

    async def options(self, path: str, headers: dict[str, str]) -> Reply:
        async with self.session.options(f"{self.url}{path}", headers=headers) as resp:
            return Reply(resp.status, dict(resp.headers), await resp.text())

    async def hook(self, payload: Any, authorization: str | None = RIGHT_BASIC, **headers: str) -> Reply:
        """POST to /hooks/azure-devops with basic auth (or the given Authorization / headers)."""
        sent = {"Content-Type": "application/json", **headers}
        if authorization is not None:
            sent["Authorization"] = authorization
        return await self.post("/hooks/azure-devops", payload, sent)

    async def eventgrid(
        self,
        body: Any,
        code: str | None = ENVIRON["EG_SECRET"],
        content_type: str = "application/json",
        **headers: str,
    ) -> Reply:
        """POST to /hooks/eventgrid with the secret in the query string (or none)."""
        params = {"code": code} if code is not None else {}
        sent = {"Content-Type": content_type, "aeg-event-type": "Notification", **headers}
        return await self.post("/hooks/eventgrid", body, sent, params=params)


IngestFactory = Callable[..., AbstractAsyncContextManager[Ingest]]


@pytest.fixture
async def make_ingest(sqlite_url: str) -> AsyncIterator[IngestFactory]:
    """Start Handoff with the ingest routes: ``async with make_ingest(eventgrid={...}) as ingest``."""
    store = await SqlStore.open(sqlite_url)

    @asynccontextmanager
    async def start(
        *,
        hook_auth: dict[str, Any] | None = None,
        eventgrid: dict[str, Any] | None = None,
        workspace: bool = False,
        approval_details: ApprovalDetails | None = None,
        run_details: RunDetails | None = None,
        approver_identities: ApproverIdentities | None = None,
        sink: RecordingSink | None = None,
        environ: dict[str, str] | None = None,
        depends_on_actor: DependsOnActor | None = None,
        depends_on_run_facts: DependsOnRunFacts | None = None,
        hook_timeout: float = HOOK_TIMEOUT,
    ) -> AsyncIterator[Ingest]:
        settings = make_settings(
            sqlite_url, hook_auth=hook_auth, eventgrid=eventgrid, workspace=workspace, environ=environ
        )
        assert settings.azure_devops is not None and settings.eventgrid is not None
        recorder = sink or RecordingSink()
        app = create_app(settings, store)
        add_azure_devops_hooks(
            app,
            settings.azure_devops,
            recorder,
            approval_details,
            run_details,
            approver_identities,
            depends_on_actor=depends_on_actor,
            depends_on_run_facts=depends_on_run_facts,
            hook_timeout=hook_timeout,
        )
        add_eventgrid_route(app, settings.eventgrid, recorder, settings.azure_ml, hook_timeout)
        async with LocalServer(app) as server, aiohttp.ClientSession() as session:
            yield Ingest(server.url, recorder, session)

    try:
        yield start
    finally:
        await store.close()


@pytest.fixture
async def ingest(make_ingest: IngestFactory) -> AsyncIterator[Ingest]:
    """Handoff with both routes, basic and header auth for hooks, no Event Grid filters."""
    async with make_ingest() as running:
        yield running


def load_sample(shared_dir: Path, kind: str, name: str) -> Any:
    return json.loads((shared_dir / "samples" / kind / name).read_text(encoding="utf-8"))


Details = Callable[[str, str], Awaitable[dict[str, Any] | None]]


STORED_AT = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
async def storing(make_ingest: IngestFactory, store_url: str) -> AsyncIterator[tuple[Ingest, SqlStore]]:
    """Handoff's ingest routes storing into SQLite and PostgreSQL (the core's ingest on a real store)."""
    store = await SqlStore.open(store_url)
    try:
        async with make_ingest(sink=StoringIngest(store, [], FakeClock(STORED_AT))) as ingest:
            yield ingest, store
    finally:
        await store.close()
