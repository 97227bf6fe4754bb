"""The typed read of run-state-changed deliveries agrees with the general parser wherever it answers."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.azure_devops.run_state_hook import read_run_state_changed
from adapters.azure_devops.service_hooks import PayloadError, parse_service_hook
from adapters.web.payloads import decode_json
from bot.events import RunStateChanged
from tests.adapters.ingest.test_properties import json_values, mutated
from tests.conftest import SHARED

ORG = "contoso"
SAMPLE = SHARED / "samples" / "ado" / "ms.vss-pipelines.run-state-changed-event.json"


def delivered() -> dict[str, Any]:
    """The documented sample as Azure DevOps really sends it: with the organization's ``baseUrl``."""
    if not SAMPLE.exists():
        pytest.skip(f"{SAMPLE} is not present")
    payload = json.loads(SAMPLE.read_text(encoding="utf-8"))
    payload["resourceContainers"]["account"] = {"id": "a1", "baseUrl": "https://dev.azure.com/fabrikam/"}
    payload["resource"]["run"]["requestedFor"] = {
        "displayName": "Ada Lovelace",
        "uniqueName": "ada@example.com",
        "id": "7c1e",
    }
    payload["resource"]["run"]["resources"] = {"repositories": {"self": {"refName": "refs/heads/main"}}}
    return payload


def general(payload: Any) -> RunStateChanged:
    (event,) = parse_service_hook(payload, ORG)
    assert isinstance(event, RunStateChanged)
    return event


def body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def test_a_usual_delivery_is_read_whole_and_as_the_general_parser_reads_it() -> None:
    payload = delivered()
    event = read_run_state_changed(body(payload))
    assert event is not None
    assert event == general(payload)
    assert event.scope == "fabrikam" and event.run.organization == "fabrikam"
    assert event.actor is not None and event.actor.email == "ada@example.com"
    assert event.run.branch == "refs/heads/main"
    assert event.run.pipeline_id == "1" and event.run.run_id == "11"
    assert event.created_at == datetime(2019, 12, 13, 4, 46, 13, 683000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("id",), 42),  # ids arrive as numbers or strings
        (("resource", "run", "id"), "1050"),
        (("resource", "run", "name"), 11),
        (("resource", "run", "result"), ""),  # empty reads as missing
        (("resource", "run", "state"), None),
        (("resource", "run", "pipeline"), None),
        (("resource", "run", "_links"), None),
        (("resource", "run", "requestedFor"), {}),
        (("resource", "pipeline"), None),
        (("message",), None),
        (("resourceContainers", "project"), {"id": "00000000-0000-0000-0000-000000000000"}),
        (("createdDate",), "2026-03-01T10:00:00"),  # no offset: UTC
        (("id",), 2**64 - 1),  # integers within 64 bits are read exactly by either
        (("resource", "run", "name"), -(2**63)),
    ],
)
def test_optional_and_loosely_typed_fields_read_alike(path: tuple[str, ...], value: Any) -> None:
    payload = delivered()
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    event = read_run_state_changed(body(payload))
    assert event is not None
    assert event == general(payload)


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p["resourceContainers"].pop("account"),  # the organization is found by a search of URLs
        lambda p: p.pop("createdDate"),  # the general parser stamps the time of receipt
        lambda p: p["resource"]["run"].update(id=10.0),
        lambda p: p["resource"]["run"].update(state=True),
        lambda p: p["resource"]["run"].update(finishedDate="yesterday"),
        lambda p: p.update(resource=None),
        lambda p: p.update(eventType="ms.vss-pipelines.stage-state-changed-event"),
    ],
)
def test_anything_unusual_is_left_to_the_general_parser(change: Any) -> None:
    payload = delivered()
    change(payload)
    assert read_run_state_changed(body(payload)) is None


@pytest.mark.parametrize(
    ("path", "number"),
    [
        (("id",), str(2**64)),
        (("id",), str(-(2**63) - 1)),
        (("id",), "9" * 100_000),
        (("resourceVersion",), "1" + "0" * 30),
        (("resource", "run", "id"), "1" + "0" * 30),
        (("resource", "run", "name"), str(2**64)),
        (("resource", "run", "pipeline", "id"), str(2**64)),  # read where the run's links name no pipeline
    ],
    ids=["id", "id below", "id of 100k digits", "resourceVersion", "run id", "run name", "pipeline id"],
)
def test_an_integer_past_64_bits_is_left_to_the_general_parser_which_refuses_it(
    path: tuple[str, ...], number: str
) -> None:
    payload = delivered()
    payload["resource"]["run"]["_links"].pop("pipeline")
    payload["resource"]["run"]["_links"].pop("pipeline.web")
    assert read_run_state_changed(body(payload)) is not None  # (so the number is what it is left for)
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "NUMBER"
    raw = body(payload).replace(b'"NUMBER"', number.encode())
    assert read_run_state_changed(raw) is None
    with pytest.raises(PayloadError, match=f"^{'.'.join(path)}: expected a string, or a number within 64 bits$"):
        parse_service_hook(decode_json(raw), ORG)


NESTED = b'{"eventType": "ms.vss-pipelines.run-state-changed-event", "junk": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize(
    "raw", [b"", b"[]", b"{", b'{"eventType": "ms.vss-pipelines.run-state-changed-event"', b"\xff", NESTED]
)
def test_a_body_that_is_not_a_delivery_is_left_to_the_general_parser(raw: bytes) -> None:
    assert read_run_state_changed(raw) is None


@given(st.data())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_wherever_the_typed_read_answers_the_general_parser_answers_the_same(data: st.DataObject) -> None:
    payload = data.draw(mutated([delivered()]))
    if data.draw(st.booleans()):  # and sometimes a field Handoff reads, set to anything at all
        run = payload.get("resource", {}).get("run") if isinstance(payload.get("resource"), dict) else None
        if isinstance(run, dict):
            key = data.draw(st.sampled_from(["id", "name", "state", "result", "createdDate", "pipeline", "_links"]))
            run[key] = data.draw(json_values)
    event = read_run_state_changed(body(payload))
    if event is None:
        return
    try:
        expected = general(copy.deepcopy(payload))
    except PayloadError as exc:
        raise AssertionError(f"the typed read accepted what the general parser refuses: {exc}") from None
    assert event == expected
