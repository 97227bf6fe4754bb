"""Properties: whatever arrives, the ingest routes answer 200, 400, 401 or 413, never 5xx, while the
sink works."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.azure_devops.run_state_hook import EVENT_TYPE as RUN_STATE_CHANGED
from adapters.azure_devops.service_hooks import EVENT_TYPES
from tests.adapters.ingest.conftest import ENVIRON, RIGHT_BASIC, Ingest
from tests.conftest import SHARED

ANSWERS = {200, 400, 401, 413}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

KEYS = [
    "id", "name", "run", "pipeline", "stage", "approval", "steps", "_links", "web", "href", "pipeline.web",
    "state", "result", "status", "createdDate", "finishedDate", "definition", "requests", "requestedFor",
    "repository", "project", "refUpdates", "commits", "commitId", "author", "pullRequestId", "environment",
    "release", "releaseEnvironment", "approver", "approvedBy", "resource", "type", "stageName", "owner",
    "displayName", "uniqueName", "minRequiredApprovers", "sourceGetVersion", "url", "baseUrl", "account",
    "api", "contentLength", "modelName", "modelVersion", "ModelTags", "serviceName", "modelIds", "runId",
    "runStatus", "driftCoefficient", "dataDriftId", "validationCode", "topic", "source", "subject",
    "eventTime", "time", "data", "specversion", "eventType",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["", "0", "2026-03-01T10:00:00Z", "https://dev.azure.com/o/p/_build", "refs/heads/x"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
header_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)


def samples(kind: str) -> list[Any]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((SHARED / "samples" / kind).glob("*.json"))]


@st.composite
def mutated(draw: st.DrawFn, documents: list[Any]) -> Any:
    """A documented payload with one to three values somewhere inside replaced by arbitrary JSON."""
    doc = copy.deepcopy(draw(st.sampled_from(documents)))
    for _ in range(draw(st.integers(1, 3))):
        node = doc
        while isinstance(node, dict | list) and node:
            key: Any = (
                draw(st.sampled_from(sorted(node))) if isinstance(node, dict) else draw(st.integers(0, len(node) - 1))
            )
            child = node[key]
            if not isinstance(child, dict | list) or not child or draw(st.booleans()):
                node[key] = draw(json_values)
                break
            node = child
    return doc


def encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def ado_samples() -> list[Any]:
    """The documented samples, and the run-state one as Azure DevOps sends it (naming its organization's
    ``baseUrl``), which the route reads with its typed read rather than the general parser."""
    documents = samples("ado")
    delivered = [copy.deepcopy(d) for d in documents if d.get("eventType") == RUN_STATE_CHANGED]
    for document in delivered:
        document["resourceContainers"]["account"] = {"baseUrl": "https://dev.azure.com/contoso/"}
    return [*documents, *delivered]


ado_bodies = (
    mutated(ado_samples() if SHARED.is_dir() else [{}])
    | st.fixed_dictionaries(
        {"id": json_values, "eventType": st.sampled_from(EVENT_TYPES) | json_values},
        optional={"resource": json_values, "createdDate": json_values, "resourceContainers": json_values},
    )
    | json_values
    | st.binary(max_size=64)
)
eventgrid_bodies = (
    mutated(samples("eventgrid") if SHARED.is_dir() else [{}])
    | st.lists(mutated(samples("eventgrid") if SHARED.is_dir() else [{}]), max_size=3)
    | json_values
    | st.binary(max_size=64)
)


@FUZZ
@given(
    body=ado_bodies,
    authorization=st.sampled_from([RIGHT_BASIC, None]) | header_text.map(lambda t: f"Basic {t}") | header_text,
    token=st.none() | st.just(ENVIRON["HOOK_TOKEN"]) | header_text,
)
async def test_azure_devops_hook_never_fails(
    ingest: Ingest, shared_dir: Path, body: Any, authorization: str | None, token: str | None
) -> None:
    headers = {"X-Handoff-Token": token} if token is not None else {}
    reply = await ingest.hook(encode(body), authorization=authorization, **headers)
    assert reply.status in ANSWERS, reply.text


@FUZZ
@given(
    body=eventgrid_bodies,
    code=st.sampled_from([ENVIRON["EG_SECRET"], None]) | header_text,
    content_type=st.sampled_from(["application/json", "application/cloudevents+json", "text/plain"]),
    event_type=st.sampled_from(["Notification", "SubscriptionValidation", "SubscriptionDeletion"]),
)
async def test_eventgrid_route_never_fails(
    ingest: Ingest, shared_dir: Path, body: Any, code: str | None, content_type: str, event_type: str
) -> None:
    reply = await ingest.eventgrid(encode(body), code=code, content_type=content_type, **{"aeg-event-type": event_type})
    assert reply.status in ANSWERS, reply.text


@FUZZ
@given(origin=st.none() | header_text, rate=st.none() | header_text)
async def test_eventgrid_handshake_never_fails(ingest: Ingest, origin: str | None, rate: str | None) -> None:
    headers = {k: v for k, v in {"WebHook-Request-Origin": origin, "WebHook-Request-Rate": rate}.items() if v}
    reply = await ingest.options("/hooks/eventgrid", headers)
    assert reply.status in (200, 400, 403)
