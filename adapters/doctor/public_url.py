"""``server.public_url`` reaches Handoff's own endpoints, the way the services will call them.

- ``GET /healthz`` answers as Handoff does;
- ``POST /hooks/azure-devops`` accepts the configured hook credentials (a probe of an event type Handoff
  ignores, so nothing is stored);
- ``OPTIONS`` then ``POST /hooks/eventgrid`` complete the CloudEvents handshake and accept the delivery
  secret (again a probe Handoff ignores);
- ``POST /slack/events`` answers a correctly signed ``url_verification``;
- ``POST /api/messages`` is there (and asks for a token when authentication is on).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import aiohttp

from adapters.doctor.report import DEADLINE, Check, fail, ok, skip
from adapters.web.metrics import PROBE_HEADER, PROBE_VALUE
from bot.config import Settings

ORIGIN = "eventgrid.azure.net"


async def _request(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, dict[str, str], Any]:
    async with session.request(method, url, allow_redirects=False, **kwargs) as response:
        text = await response.text()
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = text
        return response.status, dict(response.headers), body


def _missing(status: int, route: str, section: str) -> str:
    if status == 404:
        return f"the server at public_url has no {route}: is {section} enabled where Handoff runs?"
    return f"{route} answered {status}"


async def _health(session: aiohttp.ClientSession, base: str) -> Check:
    status, _, body = await _request(session, "GET", f"{base}/healthz")
    if status == 200 and isinstance(body, dict) and body.get("status") == "ok":
        return ok("public_url", f"{base} reaches Handoff {body.get('version', '')}".rstrip())
    return fail(
        "public_url",
        f"{base}/healthz answered {status}, not Handoff",
        "point server.public_url (and the proxy or load balancer) at Handoff",
    )


async def _azure_devops(session: aiohttp.ClientSession, base: str, settings: Settings) -> Check:
    ado = settings.azure_devops
    name = "public_url.azure_devops"
    assert ado is not None
    headers = {"Content-Type": "application/json"}
    if ado.service_hooks.basic is not None:
        pair = f"{ado.service_hooks.basic.username}:{ado.service_hooks.basic.password.reveal()}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    if ado.service_hooks.header is not None:
        headers[ado.service_hooks.header.name] = ado.service_hooks.header.value.reveal()
    probe = {"eventType": "handoff.doctor.probe", "id": str(uuid.uuid4()), "resource": {}}
    status, _, body = await _request(session, "POST", f"{base}/hooks/azure-devops", json=probe, headers=headers)
    if status == 200 and isinstance(body, dict) and body.get("ignored") == 1:
        return ok(name, "/hooks/azure-devops accepts the configured hook credentials")
    if status == 401:
        return fail(
            name,
            "/hooks/azure-devops refused the configured hook credentials",
            "the running Handoff has other azure_devops.service_hooks secrets: restart it with this configuration",
        )
    return fail(name, _missing(status, "/hooks/azure-devops", "azure_devops"), "check server.public_url")


async def _eventgrid(session: aiohttp.ClientSession, base: str, settings: Settings) -> Check:
    grid = settings.eventgrid
    name = "public_url.eventgrid"
    assert grid is not None
    url = f"{base}/hooks/eventgrid"
    # the handshake as Event Grid makes it, from an origin the configuration allows
    origin = next((o for o in grid.allowed_origins if o != "*"), ORIGIN)
    status, headers, _ = await _request(session, "OPTIONS", url, headers={"WebHook-Request-Origin": origin})
    allowed = {k.lower(): v for k, v in headers.items()}.get("webhook-allowed-origin", "")
    if status != 200 or allowed not in (origin, "*"):
        return fail(name, _missing(status, "/hooks/eventgrid", "eventgrid") + " (handshake)", "check server.public_url")
    probe = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "handoff-doctor", "type": "Handoff.Doctor.Probe"}
    status, _, _ = await _request(
        session,
        "POST",
        url,
        params={grid.secret_query_parameter: grid.delivery_secret.reveal()},
        data=json.dumps(probe),
        headers={"Content-Type": "application/cloudevents+json; charset=utf-8"},
    )
    if status == 200:
        return ok(name, "/hooks/eventgrid answers the handshake and accepts the delivery secret")
    if status == 401:
        return fail(
            name,
            "/hooks/eventgrid refused the configured delivery secret",
            "the running Handoff has another eventgrid.delivery_secret: restart it with this configuration",
        )
    return fail(name, _missing(status, "/hooks/eventgrid", "eventgrid"), "check server.public_url")


async def _slack(session: aiohttp.ClientSession, base: str, settings: Settings) -> Check:
    slack = settings.slack
    name = "public_url.slack"
    assert slack is not None
    challenge = uuid.uuid4().hex
    body = json.dumps({"type": "url_verification", "token": "handoff-doctor", "challenge": challenge})
    timestamp = str(int(time.time()))
    digest = hmac.new(slack.signing_secret.reveal().encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256)
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }
    status, _, answer = await _request(session, "POST", f"{base}/slack/events", data=body, headers=headers)
    answered = answer.get("challenge") if isinstance(answer, dict) else answer
    if status == 200 and answered == challenge:
        return ok(name, "/slack/events answers a signed url_verification")
    if status == 401:
        return fail(
            name,
            "/slack/events refused a request signed with the configured signing secret",
            "the running Handoff has another slack.signing_secret: restart it with this configuration",
        )
    return fail(name, _missing(status, "/slack/events", "slack"), "check server.public_url")


async def _teams(session: aiohttp.ClientSession, base: str, settings: Settings) -> Check:
    teams = settings.teams
    name = "public_url.teams"
    assert teams is not None
    status, _, _ = await _request(session, "POST", f"{base}/api/messages", json={}, headers={})
    if status == 404 or status == 405:
        return fail(name, _missing(status, "/api/messages", "teams"), "check server.public_url")
    if teams.app_id and status != 401:
        return fail(
            name,
            f"/api/messages answered {status} without a token",
            "the running Handoff does not check Teams tokens: restart it with this configuration",
        )
    return ok(name, "/api/messages is there" + (" and asks for a Bot Framework token" if teams.app_id else ""))


async def check_public_url(settings: Settings, deadline: float = DEADLINE) -> list[Check]:
    """Reach Handoff through ``server.public_url`` (Handoff must be running there); each request waits
    ``deadline`` seconds for an answer."""
    base = (settings.server.public_url or "").rstrip("/")
    if not base:
        return [fail("public_url", "server.public_url is not set", "set it to the https URL the services reach")]
    checks: list[Check] = []
    # Handoff counts these requests apart from the services' traffic (handoff_doctor_probes)
    timeout = aiohttp.ClientTimeout(total=deadline)
    async with aiohttp.ClientSession(headers={PROBE_HEADER: PROBE_VALUE}, timeout=timeout) as session:
        try:
            health = await _health(session, base)
        except (aiohttp.ClientError, TimeoutError) as error:
            said = (
                f"{base} did not answer within {deadline:g} s"
                if isinstance(error, TimeoutError)
                else f"cannot reach {base} ({type(error).__name__})"
            )
            return [fail("public_url", said, "start Handoff, and check DNS, TLS and the proxy for server.public_url")]
        checks.append(health)
        if health.failed:
            return checks
        probes = (
            (settings.azure_devops, _azure_devops, "public_url.azure_devops"),
            (settings.eventgrid, _eventgrid, "public_url.eventgrid"),
            (settings.slack, _slack, "public_url.slack"),
            (settings.teams, _teams, "public_url.teams"),
        )
        for section, probe, name in probes:
            if section is None or not section.enabled:
                continue
            try:
                checks.append(await probe(session, base, settings))
            except (aiohttp.ClientError, TimeoutError) as error:
                checks.append(fail(name, f"{type(error).__name__} on the way", "check the proxy for server.public_url"))
    return checks or [skip("public_url", "nothing to check")]
