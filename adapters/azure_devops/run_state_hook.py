"""The busiest service hook, ``ms.vss-pipelines.run-state-changed-event``, read straight from the body.

Every run sends one as it starts and one as it ends, so most of what ``POST /hooks/azure-devops``
reads is this event. :func:`read_run_state_changed` decodes only the fields Handoff uses, with msgspec,
into typed structs (the rest of the body is skipped, not built), and builds the same
:class:`~bot.events.RunStateChanged` that :func:`~adapters.azure_devops.service_hooks.parse_service_hook`
would. It takes the delivery's usual shape only: for anything else (another event type, a field of an
unexpected type, an integer past 64 bits, no ``baseUrl`` to name the organization, a timestamp that is not
ISO-8601, malformed JSON) it answers None, and the general parser reads the body and words any error. A
property test checks that the two agree wherever this one answers.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from adapters.azure_devops.hook_context import (
    DEFINITION_ID_QUERY,
    PIPELINE_API_URL,
    SOURCE,
    ZERO_GUID,
    email_from_unique_name,
    organization_from_url,
    project_from_url,
)
from adapters.web.payloads import fits_text, is_identifier
from bot.events import Person, PipelineRef, RunStateChanged

EVENT_TYPE = "ms.vss-pipelines.run-state-changed-event"
_MARK = b'"' + EVENT_TYPE.encode() + b'"'


# Ids arrive as numbers or strings; every other field Handoff reads is a string. A value of another type
# fails the decode, and the general parser takes the body.
_Id = int | str | None


class _Link(msgspec.Struct):
    href: str | None = None


class _Links(msgspec.Struct, rename={"pipeline_web": "pipeline.web"}):
    web: _Link | None = None
    pipeline: _Link | None = None
    pipeline_web: _Link | None = None


class _Identity(msgspec.Struct, rename="camel"):
    display_name: str | None = None
    name: str | None = None
    unique_name: str | None = None
    email: str | None = None
    id: str | None = None


class _Pipeline(msgspec.Struct):
    id: _Id = None
    name: str | None = None


class _Repository(msgspec.Struct, rename="camel"):
    ref_name: str | None = None


class _Repositories(msgspec.Struct, rename={"self_": "self"}):
    self_: _Repository | None = None


class _RunResources(msgspec.Struct):
    repositories: _Repositories | None = None


_RUN_NAMES = {"links": "_links", "created": "createdDate", "finished": "finishedDate", "requested_for": "requestedFor"}


class _Run(msgspec.Struct, rename=_RUN_NAMES):
    links: _Links | None = None
    pipeline: _Pipeline | None = None
    id: _Id = None
    name: _Id = None
    state: str | None = None
    result: str | None = None
    created: str | None = None
    finished: str | None = None
    requested_for: _Identity | None = None
    resources: _RunResources | None = None


class _Resource(msgspec.Struct):
    run: _Run | None = None
    pipeline: _Pipeline | None = None


class _Container(msgspec.Struct, rename="camel"):
    base_url: str | None = None
    id: str | None = None


class _Containers(msgspec.Struct):
    account: _Container | None = None
    collection: _Container | None = None
    project: _Container | None = None


class _Message(msgspec.Struct):
    text: str | None = None


class _Hook(msgspec.Struct, rename="camel"):
    id: _Id = None
    event_type: str | None = None
    created_date: str | None = None
    message: _Message | None = None
    resource_version: _Id = None  # not used here, but the general parser refuses a value of another type
    resource_containers: _Containers | None = None
    resource: _Resource | None = None


_DECODER = msgspec.json.Decoder(_Hook)
_NUL_ESCAPE = b"\\u0000"  # how JSON writes a NUL character (never a raw byte)
_NO_LINKS = _Links()
_NO_PIPELINE = _Pipeline()


class _Unusual(Exception):
    """The delivery is not in the usual shape: the general parser reads it."""


def _text(value: int | str | None) -> str | None:
    """What ``Fields.text`` makes of a string or an integer: None for missing or empty; an integer it refuses
    (past 64 bits) is unusual."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if not fits_text(value):
        raise _Unusual
    return str(value)


def _href(link: _Link | None) -> str | None:
    return (link.href or None) if link is not None else None


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _Unusual from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _organization(containers: _Containers | None) -> str:
    for container in (containers.account, containers.collection, containers.project) if containers else ():
        if container is not None and container.base_url:
            found = organization_from_url(container.base_url, is_base=True)
            if found:
                return found
    raise _Unusual  # naming it takes a search of the resource's URLs: the general parser's work


def _person(identity: _Identity | None) -> Person | None:
    if identity is None:
        return None
    name = identity.display_name or identity.name or ""
    email = email_from_unique_name(identity.unique_name) or email_from_unique_name(identity.email)
    if not (name or email or identity.id):
        return None
    return Person(name=name, email=email, id=identity.id or None)


def _pipeline_id(links: _Links, *pipelines: _Pipeline) -> str:
    if (href := _href(links.pipeline)) and (match := PIPELINE_API_URL.search(href)):
        return match.group(1)
    if (href := _href(links.pipeline_web)) and (match := DEFINITION_ID_QUERY.search(href)):
        return match.group(1)
    for pipeline in pipelines:
        if found := _text(pipeline.id):
            return found
    return ""


def _event(hook: _Hook) -> RunStateChanged:
    resource, run = hook.resource, hook.resource.run if hook.resource else None
    event_id, run_id, occurred_at = _text(hook.id), _text(run.id) if run else None, _time(hook.created_date)
    if resource is None or run is None or event_id is None or run_id is None or occurred_at is None:
        raise _Unusual  # the general parser words the error (or stamps a missing time with now)
    if not is_identifier(run_id):
        raise _Unusual
    _text(hook.resource_version)  # (used for nothing here, but the general parser refuses what _text refuses)
    organization = _organization(hook.resource_containers)
    links = run.links or _NO_LINKS
    web_url = _href(links.web)
    containers = hook.resource_containers
    container_id = containers.project.id if containers and containers.project else None
    project_id = container_id if container_id and container_id != ZERO_GUID else None
    project = project_from_url(web_url, organization) or project_from_url(_href(links.pipeline_web), organization)
    project = project or project_id
    run_pipeline = run.pipeline or _NO_PIPELINE
    pipeline = resource.pipeline or _NO_PIPELINE
    repositories = run.resources.repositories if run.resources else None
    repository = repositories.self_ if repositories else None
    return RunStateChanged(
        source=SOURCE,
        event_id=event_id,
        occurred_at=occurred_at,
        scope=organization,
        project=project,
        project_id=project_id,
        actor=_person(run.requested_for),
        web_url=web_url,
        text=(hook.message.text if hook.message else None) or "",
        run=PipelineRef(
            organization=organization,
            project=project or "",
            pipeline_id=_pipeline_id(links, run_pipeline, pipeline),
            pipeline_name=run_pipeline.name or pipeline.name or "",
            run_id=run_id,
            run_name=_text(run.name) or "",
            branch=(repository.ref_name or None) if repository else None,
        ),
        state=run.state or "unknown",
        result=run.result or None,
        started_at=_time(run.created),
        finished_at=_time(run.finished),
        created_at=occurred_at,
    )


def read_run_state_changed(body: bytes) -> RunStateChanged | None:
    """The event in a run-state-changed delivery of the usual shape; None for any other body."""
    if _MARK not in body or _NUL_ESCAPE in body:  # the general parser drops NUL characters from the text
        return None
    try:
        hook = _DECODER.decode(body)
        if hook.event_type != EVENT_TYPE:
            return None
        return _event(hook)
    except (msgspec.DecodeError, RecursionError, _Unusual):  # (absurd nesting overflows msgspec's recursion)
        return None
