"""``POST /hooks/azure-devops``: authentication, answers, the approvals look-up, logging."""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path
from typing import Any

import pytest

from adapters.azure_devops.hooks_route import BODY_LIMIT
from adapters.sql import SqlStore
from bot.events import ApprovalPending, Approver, DomainEvent, Person, PipelineRef, RunStateChanged
from bot.ports import RunStatus, ServiceUnavailable
from tests.adapters.ingest.conftest import (
    ENVIRON,
    HOOK_HEADER,
    HOOK_USER,
    RIGHT_BASIC,
    Ingest,
    IngestFactory,
    RecordingSink,
    basic,
    load_sample,
)

RUN_SAMPLE = "ms.vss-pipelines.run-state-changed-event.json"
PENDING_SAMPLE = "ms.vss-pipelinechecks-events.approval-pending.json"


@pytest.fixture
def run_hook(shared_dir: Path) -> Any:
    return load_sample(shared_dir, "ado", RUN_SAMPLE)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({"Authorization": RIGHT_BASIC}, 200, id="right basic auth"),
        pytest.param({HOOK_HEADER: ENVIRON["HOOK_TOKEN"]}, 200, id="right header"),
        pytest.param({"Authorization": "Basic ÿÿ", HOOK_HEADER: ENVIRON["HOOK_TOKEN"]}, 200, id="either is enough"),
        pytest.param({"Authorization": f"basic   {RIGHT_BASIC.split()[1]}"}, 200, id="scheme case and spaces"),
        pytest.param({}, 401, id="missing"),
        pytest.param({"Authorization": basic(HOOK_USER, "wrong")}, 401, id="wrong password"),
        pytest.param({"Authorization": basic("someone", ENVIRON["HOOK_PASSWORD"])}, 401, id="wrong user"),
        pytest.param({"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}, 401, id="no colon"),
        pytest.param({"Authorization": "Basic ÿÿ"}, 401, id="Basic latin-1"),
        pytest.param({"Authorization": "Basic !!!notbase64"}, 401, id="Basic garbage"),
        pytest.param({"Authorization": "Bearer abc"}, 401, id="Bearer garbage"),
        pytest.param({"Authorization": "Basic"}, 401, id="Basic alone"),
        pytest.param({"Authorization": "Basic 8J+SqTrwn5Kp"}, 401, id="non-ASCII credentials"),
        pytest.param({"Authorization": "Basic ключ"}, 401, id="non-ASCII header"),
        pytest.param({HOOK_HEADER: "wrong"}, 401, id="wrong header"),
        pytest.param({HOOK_HEADER: "ключ"}, 401, id="non-ASCII shared header"),
        pytest.param({HOOK_HEADER: ""}, 401, id="empty header"),
    ],
)
async def test_auth_matrix(ingest: Ingest, run_hook: Any, headers: dict[str, str], status: int) -> None:
    reply = await ingest.hook(run_hook, authorization=None, **headers)
    assert reply.status == status, reply.text
    if status == 401:
        assert reply.json()["error"] == "unauthorized"
        assert reply.headers["WWW-Authenticate"].startswith("Basic ")
        assert ingest.sink.events == []


async def test_non_ascii_credentials_configured(make_ingest: IngestFactory, run_hook: Any) -> None:
    auth = {"basic": {"username": "hoök", "password": "${UNICODE_PASSWORD}"}}
    async with make_ingest(hook_auth=auth, environ={"UNICODE_PASSWORD": "pässwörd"}) as ingest:
        token = base64.b64encode("hoök:pässwörd".encode()).decode()
        assert (await ingest.hook(run_hook, authorization=f"Basic {token}")).status == 200
        assert (await ingest.hook(run_hook, authorization=basic("hook", "passwoerd"))).status == 401
        # only basic auth is configured: the shared header is no way in
        reply = await ingest.hook(run_hook, authorization=None, **{HOOK_HEADER: ENVIRON["HOOK_TOKEN"]})
        assert reply.status == 401


async def test_header_only_configuration(make_ingest: IngestFactory, run_hook: Any) -> None:
    auth = {"header": {"name": "X-Other", "value": "${HOOK_TOKEN}"}}
    async with make_ingest(hook_auth=auth) as ingest:
        assert (await ingest.hook(run_hook, authorization=None, **{"x-other": ENVIRON["HOOK_TOKEN"]})).status == 200
        reply = await ingest.hook(run_hook)  # basic auth is not configured, so not accepted
        assert reply.status == 401
        assert "WWW-Authenticate" not in reply.headers


# a run-state-changed delivery nested past any parser's depth
DEEP = 99_999
DEEP_RUN_STATE = b'{"eventType": "ms.vss-pipelines.run-state-changed-event", "x": %s%s}' % (b"[" * DEEP, b"]" * DEEP)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"\xff\xfe{}", b"[1, 2]", b'"text"', b"null", b"[" * 5000, b'{"id": "x"}', DEEP_RUN_STATE],
    ids=["broken", "empty", "not utf-8", "array", "string", "null", "too deep", "no eventType", "deep run state"],
)
async def test_malformed_bodies_are_400(ingest: Ingest, body: bytes) -> None:
    reply = await ingest.hook(body)
    assert reply.status == 400
    assert reply.json()["error"] == "invalid_payload"
    assert ingest.sink.events == []


async def test_missing_required_fields_are_400_not_500(ingest: Ingest, run_hook: Any) -> None:
    del run_hook["resource"]["run"]["id"]
    reply = await ingest.hook(run_hook)
    assert reply.status == 400
    assert reply.json()["message"] == "resource.run.id: missing"

    run_hook["resource"]["run"] = "not an object"
    assert (await ingest.hook(run_hook)).status == 400
    run_hook["resource"] = None  # resourceDetailsToSend: none
    assert "resource details" in (await ingest.hook(run_hook)).json()["message"]


@pytest.mark.parametrize("bad_id", ["7" * 129, "ab cd", "../../_apis/projects", "\u202e42"])
async def test_ids_sent_back_to_azure_devops_must_look_like_ids(
    ingest: Ingest, run_hook: Any, shared_dir: Path, bad_id: str
) -> None:
    # an approval's id and a run's id go into REST paths later (deciding the gate, reading the run)
    pending = load_sample(shared_dir, "ado", PENDING_SAMPLE)
    pending["resource"]["approval"]["id"] = bad_id
    reply = await ingest.hook(pending)
    assert (reply.status, reply.json()["message"]) == (
        400,
        "resource.approval.id: not an id (at most 128 letters, digits and ._:-)",
    )
    run_hook["resource"]["run"]["id"] = bad_id
    reply = await ingest.hook(run_hook)
    assert (reply.status, reply.json()["message"]) == (
        400,
        "resource.run.id: not an id (at most 128 letters, digits and ._:-)",
    )
    assert ingest.sink.events == []
    run_hook["resource"]["run"]["id"] = "7" * 128  # the longest id taken
    assert (await ingest.hook(run_hook)).status == 200


async def test_unknown_event_type_is_200_ignored(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "handoff.ingest")
    payload = {"id": "e-1", "eventType": "workitem.updated", "resource": {"id": 5}}
    reply = await ingest.hook(payload)
    assert (reply.status, reply.json()) == (200, {"accepted": 0, "duplicates": 0, "ignored": 1})
    assert ingest.sink.events == []
    [line] = [r.getMessage() for r in caplog.records if r.name == "handoff.ingest.azure_devops"]
    assert line == "azure devops hook 'workitem.updated' 'e-1': ignored"


JOB_SAMPLE = "ms.vss-pipelines.job-state-changed-event.json"


@pytest.mark.parametrize("event_type", ["ms.vss-pipelines.job-state-changed-event", "workitem.created", "tfvc.checkin"])
@pytest.mark.parametrize(
    "change",
    [
        lambda hook: hook.pop("resource"),  # resourceDetailsToSend: none
        lambda hook: hook.update(resource=None),
        lambda hook: hook.update(resource="x"),
        lambda hook: hook.update(resource={"job": "x", "stage": [], "run": {"id": {"a": 1}}}),
        lambda hook: hook.update(resourceContainers={"project": "x"}),
        lambda hook: hook.update(resourceContainers=[1]),
        lambda hook: hook.update(createdDate="yesterday"),
        lambda hook: hook.update(createdDate={"a": 1}),
        lambda hook: hook.update(message="x", resourceVersion=[]),
        lambda hook: hook.pop("id"),  # nothing of it is stored: no id is needed to dedupe it
    ],
    ids=[
        "no resource",
        "resource null",
        "resource a string",
        "resource malformed",
        "resourceContainers malformed",
        "resourceContainers a list",
        "createdDate not a time",
        "createdDate an object",
        "message and resourceVersion malformed",
        "no id",
    ],
)
async def test_an_event_type_handoff_does_not_use_is_ignored_whatever_its_body(
    storing: tuple[Ingest, SqlStore],
    shared_dir: Path,
    caplog: pytest.LogCaptureFixture,
    event_type: str,
    change: Any,
) -> None:
    """A 400 would put the subscription on probation, for an event Handoff throws away anyway."""
    ingest, store = storing
    caplog.set_level(logging.INFO, "handoff.ingest")
    hook = load_sample(shared_dir, "ado", JOB_SAMPLE) | {"eventType": event_type, "id": "job-1"}
    change(hook)
    reply = await ingest.hook(hook)
    assert (reply.status, reply.json()) == (200, {"accepted": 0, "duplicates": 0, "ignored": 1}), reply.text
    assert await store.recent_events(10) == []
    [line] = [r.getMessage() for r in caplog.records if r.name == "handoff.ingest.azure_devops"]
    assert line == f"azure devops hook {event_type!r} {hook.get('id')!r}: ignored"


@pytest.mark.parametrize("body", [{"id": "e-2"}, {"eventType": None, "id": "e-2"}, {"eventType": {"a": 1}}, [{}]])
async def test_a_body_naming_no_event_type_is_400(ingest: Ingest, body: Any) -> None:
    reply = await ingest.hook(body)
    assert reply.status == 400 and reply.json()["error"] == "invalid_payload", reply.text
    assert ingest.sink.events == []


async def test_redelivery_is_a_duplicate(ingest: Ingest, run_hook: Any) -> None:
    assert (await ingest.hook(run_hook)).json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    # another subscription delivers the same event: same id, other subscription and notification
    run_hook.update(subscriptionId="another", notificationId=7)
    assert (await ingest.hook(run_hook)).json() == {"accepted": 0, "duplicates": 1, "ignored": 0}
    first, second = ingest.sink.events
    assert first.dedupe_key == second.dedupe_key


async def test_sink_failure_is_503_with_retry_after(
    make_ingest: IngestFactory, run_hook: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sink = RecordingSink(fail_with=RuntimeError("database is locked"))
    async with make_ingest(sink=sink) as ingest:
        reply = await ingest.hook(run_hook)
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "5"
    assert reply.json()["error"] == "temporarily_unavailable"
    assert "locked" not in reply.text
    assert any("asked to retry" in r.getMessage() for r in caplog.records)


async def test_oversized_body_is_413(ingest: Ingest) -> None:
    reply = await ingest.hook(b"{" + b" " * BODY_LIMIT + b"}")
    assert reply.status == 413
    just_under = b'{"eventType": "x", "id": "1", "pad": "' + b"x" * (BODY_LIMIT - 60) + b'"}'
    assert len(just_under) <= BODY_LIMIT
    assert (await ingest.hook(just_under)).status == 200


async def test_never_404_or_410(ingest: Ingest, shared_dir: Path) -> None:
    """Azure DevOps disables a hook on 410 and puts it on probation on 404: neither may come back."""
    bodies: list[Any] = [load_sample(shared_dir, "ado", p.name) for p in (shared_dir / "samples" / "ado").iterdir()]
    bodies += [b"", b"{}", {"eventType": "nope", "id": "1"}]
    for body in bodies:
        for authorization in (RIGHT_BASIC, None, "Bearer x"):
            assert (await ingest.hook(body, authorization=authorization)).status not in (404, 410)


async def test_secrets_are_never_logged(ingest: Ingest, run_hook: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await ingest.hook(run_hook)
    await ingest.hook(run_hook, authorization=basic(HOOK_USER, "a-wrong-guess"))
    await ingest.hook(run_hook, authorization=None, **{HOOK_HEADER: ENVIRON["HOOK_TOKEN"]})
    text = "\n".join(r.getMessage() for r in caplog.records)
    token = RIGHT_BASIC.split()[1]
    for secret in (ENVIRON["HOOK_PASSWORD"], ENVIRON["HOOK_TOKEN"], token, "a-wrong-guess"):
        assert secret not in text
    lines = [r.getMessage() for r in caplog.records if r.name == "handoff.ingest.azure_devops"]
    hook = "azure devops hook 'ms.vss-pipelines.run-state-changed-event' '62e4351f-1c24-40f9-8510-7af03692ab45'"
    assert lines == [
        f"{hook}: accepted",
        "azure devops hook from 127.0.0.1: unauthorized",
        f"{hook}: duplicate",
    ]


# --- filling a pending approval from the approvals API -------------------------------------------------

APPROVAL = {
    "id": "0f027b05-0942-4a35-9218-26fa07d8760a",
    "status": "pending",
    "steps": [{"assignedApprover": {"id": "a1", "displayName": "Ana"}, "status": "pending"}],
    "pipeline": {
        "id": "7",
        "name": "model-x-release",
        "owner": {
            "id": 128,
            "name": "20260825.2",
            "_links": {"web": {"href": "https://dev.azure.com/contoso/Fabrikam/_build/results?buildId=128"}},
        },
    },
}


async def test_null_run_is_filled_from_the_approvals_api(make_ingest: IngestFactory, shared_dir: Path) -> None:
    calls: list[tuple[str, str]] = []

    async def details(project: str, approval_id: str) -> dict[str, Any] | None:
        calls.append((project, approval_id))
        return APPROVAL

    async with make_ingest(approval_details=details) as ingest:
        assert (await ingest.hook(load_sample(shared_dir, "ado", PENDING_SAMPLE))).status == 200
    assert calls == [("be9b3917-87e6-42a4-a549-2bc06a7a878f", "0f027b05-0942-4a35-9218-26fa07d8760a")]
    [event] = ingest.sink.events
    assert isinstance(event, ApprovalPending)
    assert event.run == PipelineRef(
        organization="contoso",
        project="be9b3917-87e6-42a4-a549-2bc06a7a878f",
        pipeline_id="7",
        pipeline_name="model-x-release",
        run_id="128",
        run_name="20260825.2",
    )
    assert event.web_url == "https://dev.azure.com/contoso/Fabrikam/_build/results?buildId=128"
    assert event.approvers[0].person.id == "743f73b7-cdeb-4de7-80b7-00cee17476b8"  # the hook's steps stay


async def hangs(*asked: Any) -> Any:
    """A REST lookup (approval details, identities, a run's status) that never answers."""
    await asyncio.sleep(3600)
    raise AssertionError("never answered")


async def raises(*asked: Any) -> Any:
    """A REST lookup whose service is down."""
    raise ConnectionError("emulator down")


async def returns_none(project: str, approval_id: str) -> dict[str, Any] | None:
    return None


async def returns_garbage(project: str, approval_id: str) -> dict[str, Any] | None:
    return {"pipeline": "not an object"}


@pytest.mark.parametrize("details", [raises, returns_none, returns_garbage, hangs])
async def test_approvals_api_trouble_keeps_the_event(
    make_ingest: IngestFactory, shared_dir: Path, details: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("adapters.azure_devops.hooks_route.APPROVAL_DETAILS_TIMEOUT", 0.2)
    async with make_ingest(approval_details=details) as ingest:
        reply = await ingest.hook(load_sample(shared_dir, "ado", PENDING_SAMPLE))
    assert reply.status == 200
    [event] = ingest.sink.events
    assert isinstance(event, ApprovalPending) and event.run is None


# --- approvers named by id alone, or a group: the people behind them -----------------------------------


async def test_approvers_are_completed_with_the_people_behind_them(
    make_ingest: IngestFactory, shared_dir: Path
) -> None:
    asked: list[tuple[Approver, ...]] = []
    carol = Person(name="Carol", email="carol@contoso.com", id="c4r01")

    async def identities(approvers: tuple[Approver, ...]) -> tuple[Approver, ...]:
        asked.append(approvers)
        return tuple(Approver(person=a.person, group=True, members=(carol,)) for a in approvers)

    async with make_ingest(approver_identities=identities) as ingest:
        assert (await ingest.hook(load_sample(shared_dir, "ado", PENDING_SAMPLE))).status == 200
    [[step]] = asked  # the sample's step names its approver by id alone
    assert step.person.id == "743f73b7-cdeb-4de7-80b7-00cee17476b8" and step.person.email is None
    [event] = ingest.sink.events
    assert isinstance(event, ApprovalPending)
    assert [(a.group, a.members) for a in event.approvers] == [(True, (carol,))]


async def test_approvers_with_emails_are_not_looked_up(make_ingest: IngestFactory, shared_dir: Path) -> None:
    asked: list[tuple[Approver, ...]] = []

    async def identities(approvers: tuple[Approver, ...]) -> tuple[Approver, ...]:
        asked.append(approvers)
        return approvers

    hook = load_sample(shared_dir, "ado", PENDING_SAMPLE)
    step = hook["resource"]["approval"]["steps"][0]
    step["assignedApprover"] = {"id": step["assignedApprover"]["id"], "uniqueName": "bob@contoso.com"}
    async with make_ingest(approver_identities=identities) as ingest:
        assert (await ingest.hook(hook)).status == 200
    assert asked == []
    [event] = ingest.sink.events
    assert isinstance(event, ApprovalPending) and event.approvers[0].person.email == "bob@contoso.com"


@pytest.mark.parametrize("trouble", [raises, hangs])
@pytest.mark.parametrize("lookup", ["approval_details", "approver_identities", "run_details"])
async def test_lookup_trouble_keeps_the_event_as_its_hook_told_it(
    make_ingest: IngestFactory,
    shared_dir: Path,
    run_hook: Any,
    lookup: str,
    trouble: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("adapters.azure_devops.hooks_route.APPROVAL_DETAILS_TIMEOUT", 0.2)
    hook = failed(run_hook) if lookup == "run_details" else load_sample(shared_dir, "ado", PENDING_SAMPLE)
    async with make_ingest() as ingest:
        assert (await ingest.hook(hook)).status == 200
    [as_told] = ingest.sink.events
    async with make_ingest(**{lookup: trouble}) as ingest:
        assert (await ingest.hook(hook)).status == 200
    assert ingest.sink.events == [as_told]


async def test_both_lookups_share_one_time_budget(
    make_ingest: IngestFactory, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("adapters.azure_devops.hooks_route.APPROVAL_DETAILS_TIMEOUT", 0.2)
    asked: list[tuple[Approver, ...]] = []

    async def identities(approvers: tuple[Approver, ...]) -> tuple[Approver, ...]:
        asked.append(approvers)
        return approvers

    async with make_ingest(approval_details=hangs, approver_identities=identities) as ingest:
        assert (await ingest.hook(load_sample(shared_dir, "ado", PENDING_SAMPLE))).status == 200
    assert asked == []  # the approval's details took the whole budget: the hook is answered without more
    [event] = ingest.sink.events
    assert isinstance(event, ApprovalPending) and event.run is None


# --- a failed run: its hook does not say where it failed ----------------------------------------------


def failed(run_hook: Any) -> Any:
    run_hook["resource"]["run"]["result"] = "failed"
    return run_hook


async def test_a_failed_run_is_told_its_failing_stage_and_requester_from_the_api(
    make_ingest: IngestFactory, run_hook: Any
) -> None:
    calls: list[tuple[str, str]] = []
    bob = Person(name="Bob", email="bob@contoso.com", id="b0b")

    async def run_details(project: str, run_id: str) -> RunStatus:
        calls.append((project, run_id))
        return RunStatus(run_id, "completed", "failed", failing_step="Integration tests", requested_by=bob)

    async with make_ingest(run_details=run_details) as ingest:
        assert (await ingest.hook(run_hook)).status == 200  # a run that succeeded asks nothing
        assert (await ingest.hook({**failed(run_hook), "id": "a-second-delivery-id"})).status == 200
    [(project, run_id)] = calls
    assert run_id == "11" and project
    succeeded, failure = ingest.sink.events
    assert isinstance(failure, RunStateChanged) and failure.failing_stage == "Integration tests"
    assert failure.actor == bob
    assert isinstance(succeeded, RunStateChanged) and succeeded.failing_stage is None and succeeded.actor is None


async def test_a_run_is_asked_who_started_it_only_where_that_decides_where_its_events_go(
    make_ingest: IngestFactory, run_hook: Any
) -> None:
    calls: list[str] = []
    bob = Person(name="Bob", email="bob@contoso.com", id="b0b")
    decides = False

    async def run_details(project: str, run_id: str) -> RunStatus:
        calls.append(run_id)
        return RunStatus(run_id, "running", requested_by=bob)

    async def depends_on_actor(event: DomainEvent) -> bool:
        return decides

    run_hook["resource"]["run"].update(state="inProgress", result=None)
    async with make_ingest(run_details=run_details, depends_on_actor=depends_on_actor) as ingest:
        assert (await ingest.hook(run_hook)).status == 200  # no subscription filters on actors: nothing asked
        decides = True
        assert (await ingest.hook({**run_hook, "id": "started-again"})).status == 200
        run_hook["resource"]["run"].update(state="completed", result="succeeded")
        assert (await ingest.hook({**run_hook, "id": "completed"})).status == 200
    assert calls == ["11"]  # once for the run, kept for its later events
    assert [e.actor for e in ingest.sink.events] == [None, bob, bob]


async def test_a_run_azure_devops_does_not_say_the_requester_of_goes_as_before(
    make_ingest: IngestFactory, run_hook: Any
) -> None:
    async def run_details(project: str, run_id: str) -> RunStatus:
        raise ServiceUnavailable("Azure DevOps is unreachable")

    async def depends_on_actor(event: DomainEvent) -> bool:
        return True

    run_hook["resource"]["run"].update(state="inProgress", result=None)
    async with make_ingest(run_details=run_details, depends_on_actor=depends_on_actor) as ingest:
        assert (await ingest.hook(run_hook)).status == 200
    [event] = ingest.sink.events
    assert event.actor is None


# --- a pending approval: its hook does not say who asked for the run ------------------------------------


def pending_on_run(shared_dir: Path, branch: str | None) -> Any:
    """A pending approval whose hook names its run (and the branch it built, when ``branch`` is given)."""
    hook = load_sample(shared_dir, "ado", PENDING_SAMPLE)
    run: dict[str, Any] = {"id": 128, "name": "20260825.2"}
    if branch is not None:
        run["resources"] = {"repositories": {"self": {"refName": branch}}}
    hook["resource"].update(pipeline={"id": 7, "name": "model-x-release"}, run=run)
    return hook


async def test_a_pending_approval_goes_as_the_person_who_asked_for_its_run(
    make_ingest: IngestFactory, shared_dir: Path
) -> None:
    calls: list[str] = []
    bob = Person(name="Bob", email="bob@contoso.com", id="b0b")

    async def run_details(project: str, run_id: str) -> RunStatus:
        calls.append(run_id)
        return RunStatus(run_id, "running", requested_by=bob, branch="refs/heads/main")

    async with make_ingest(run_details=run_details) as ingest:
        # the run is read for the branch it built anyway: the approval is then bob's
        assert (await ingest.hook(pending_on_run(shared_dir, branch=None))).status == 200
    [event] = ingest.sink.events
    assert isinstance(event, ApprovalPending) and event.run is not None
    assert event.run.branch == "refs/heads/main"
    assert event.actor == bob
    assert calls == ["128"]


async def test_a_pending_approval_is_asked_who_started_its_run_only_where_that_decides_where_it_goes(
    make_ingest: IngestFactory, shared_dir: Path
) -> None:
    calls: list[str] = []
    bob = Person(name="Bob", email="bob@contoso.com", id="b0b")
    decides = False

    async def run_details(project: str, run_id: str) -> RunStatus:
        calls.append(run_id)
        return RunStatus(run_id, "running", requested_by=bob, branch="refs/heads/main")

    async def depends_on_actor(event: DomainEvent) -> bool:
        return decides

    hook = pending_on_run(shared_dir, branch="refs/heads/main")
    async with make_ingest(run_details=run_details, depends_on_actor=depends_on_actor) as ingest:
        assert (await ingest.hook(hook)).status == 200  # no subscription filters on actors: nothing asked
        decides = True
        assert (await ingest.hook({**hook, "id": "pending-again"})).status == 200
    assert calls == ["128"]
    assert [e.actor for e in ingest.sink.events] == [None, bob]


async def test_a_pending_approval_is_asked_why_its_run_started_only_where_that_decides_where_it_goes(
    make_ingest: IngestFactory, shared_dir: Path
) -> None:
    """Its hook names the branch its run built, but not why the run started: a ``reasons`` filter needs the Build
    API's answer, once per run."""
    calls: list[str] = []
    decides = False

    async def run_details(project: str, run_id: str) -> RunStatus:
        calls.append(run_id)
        return RunStatus(run_id, "running", branch="refs/heads/main", reason="pullRequest")

    async def depends_on_run_facts(event: DomainEvent) -> bool:
        return decides

    hook = pending_on_run(shared_dir, branch="refs/heads/main")
    async with make_ingest(run_details=run_details, depends_on_run_facts=depends_on_run_facts) as ingest:
        assert (await ingest.hook(hook)).status == 200  # no subscription filters on reasons: nothing asked
        decides = True
        assert (await ingest.hook({**hook, "id": "pending-again"})).status == 200
        assert (await ingest.hook({**hook, "id": "pending-once-more"})).status == 200
    assert calls == ["128"]
    assert [e.run_reason for e in ingest.sink.events] == [None, "pullRequest", "pullRequest"]


async def test_metrics_count_each_delivery_by_outcome(ingest: Ingest, run_hook: Any) -> None:
    assert (await ingest.hook(run_hook)).status == 200
    assert (await ingest.hook(run_hook)).status == 200  # a redelivery
    assert (await ingest.hook({**run_hook, "eventType": "workitem.created"})).status == 200  # not used
    assert (await ingest.hook({"id": "x"})).status == 400  # not a hook: not an event either
    async with ingest.session.get(f"{ingest.url}/metrics") as resp:
        text = await resp.text()
    assert 'handoff_hook_events_total{outcome="accepted",source="azure-devops"} 1.0' in text
    assert 'handoff_hook_events_total{outcome="duplicate",source="azure-devops"} 1.0' in text
    assert 'handoff_hook_events_total{outcome="ignored",source="azure-devops"} 1.0' in text
