"""The management plane of Event Grid event subscriptions, as azure-mgmt-eventgrid calls it.

Event subscriptions live on a resource's scope, ``{scope}/providers/Microsoft.EventGrid/eventSubscriptions/
{name}``; the emulator knows two scopes, the workspace (Azure ML events) and the lake's storage account
(BlobCreated). A PUT runs the endpoint's validation handshake through the emulator's
:class:`~adapters.emulators.azure_ml.eventgrid.EventGridDispatcher` before it answers, so a created
subscription is a real delivery from then on (``provisioningState`` ``Succeeded``), or its creation fails
the way Event Grid's does (400 ``Url validation``) and it is left ``Failed``.

Served: PUT, PATCH, GET and DELETE of one subscription, POST ``getFullUrl``, GET of a scope's list, and
``GET /subscriptions/{sub}/resources?$filter=…`` (to find a storage account's resource id by name).
Filters: ``includedEventTypes``, ``subjectBeginsWith``/``EndsWith`` (``isSubjectCaseSensitive``) and
the string ``advancedFilters`` (``StringIn``, ``StringNotIn``, ``StringBeginsWith``, ``StringEndsWith``,
``StringContains``). Destinations: ``WebHook`` on a loopback URL, with static delivery headers.
``api-version`` is ignored. A GET never shows the endpoint's query string (secrets live there).
"""

from __future__ import annotations

import ipaddress
import re
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from adapters.emulators.azure_ml.eventgrid import (
    SCHEMAS,
    EventSubscription,
    SubscriptionValidationError,
)
from adapters.emulators.azure_ml.events import EmittedEvent
from adapters.emulators.azure_ml.resources import arm_error, iso

if TYPE_CHECKING:
    from adapters.emulators.azure_ml.emulator import AzureMLEmulator

SCOPE = "/subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{type}/{resource}"
LIST = SCOPE + "/providers/Microsoft.EventGrid/eventSubscriptions"
ONE = LIST + "/{name}"
RESOURCES = "/subscriptions/{sub}/resources"
TYPE = "Microsoft.EventGrid/eventSubscriptions"
STRING_OPERATORS: Mapping[str, Callable[[str, list[str]], bool]] = {
    "StringIn": lambda value, values: value.lower() in [v.lower() for v in values],
    "StringNotIn": lambda value, values: value.lower() not in [v.lower() for v in values],
    "StringBeginsWith": lambda value, values: any(value.lower().startswith(v.lower()) for v in values),
    "StringEndsWith": lambda value, values: any(value.lower().endswith(v.lower()) for v in values),
    "StringContains": lambda value, values: any(v.lower() in value.lower() for v in values),
}
_NAME = re.compile(r"^[A-Za-z0-9-]{3,64}$")
_FILTER_EQ = re.compile(r"(\w+)\s+eq\s+'([^']*)'", re.IGNORECASE)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    """An invalid subscription body; the message is ARM's error message."""


@dataclass(frozen=True)
class AdvancedFilter:
    """One string advanced filter on an event field (``data.api``, ``subject``…)."""

    operator: str
    key: str
    values: tuple[str, ...]

    def matches(self, event: EmittedEvent) -> bool:
        value = _field(event, self.key)
        return value is not None and STRING_OPERATORS[self.operator](str(value), list(self.values))

    def to_json(self) -> dict[str, Any]:
        return {"operatorType": self.operator, "key": self.key, "values": list(self.values)}


def _field(event: EmittedEvent, key: str) -> Any:
    top = {"subject": event.subject, "eventtype": event.event_type, "id": event.id, "topic": event.topic}
    first, _, rest = key.partition(".")
    if first.lower() != "data":
        return top.get(key.lower())
    node: Any = event.data
    for part in rest.split("."):
        if not isinstance(node, dict):
            return None
        node = next((v for k, v in node.items() if k.lower() == part.lower()), None)
    return node


@dataclass
class ArmEventSubscription(EventSubscription):
    """An event subscription created through ARM: the dispatcher's, plus ARM's filters."""

    advanced_filters: tuple[AdvancedFilter, ...] = ()
    subject_case_sensitive: bool = False

    def accepts(self, event: EmittedEvent) -> bool:
        if self.event_types is not None and event.event_type.lower() not in [t.lower() for t in self.event_types]:
            return False
        if self.topic is not None and event.topic.lower() != self.topic.lower():
            return False
        subject = event.subject if self.subject_case_sensitive else event.subject.lower()

        def fold(text: str | None) -> str:
            return (text or "") if self.subject_case_sensitive else (text or "").lower()

        if self.subject_begins_with and not subject.startswith(fold(self.subject_begins_with)):
            return False
        if self.subject_ends_with and not subject.endswith(fold(self.subject_ends_with)):
            return False
        return all(f.matches(event) for f in self.advanced_filters)


@dataclass
class Record:
    """A subscription as ARM shows it: its scope, its properties as given, and the dispatcher's object."""

    scope: str
    name: str
    properties: dict[str, Any]
    subscription: ArmEventSubscription
    created: str
    labels: list[str] = field(default_factory=list)


_REGISTRIES: weakref.WeakKeyDictionary[Any, ArmEventSubscriptions] = weakref.WeakKeyDictionary()


class ArmEventSubscriptions:
    """The ``Microsoft.EventGrid/eventSubscriptions`` routes of one emulator (one registry per emulator)."""

    def __init__(self, emulator: AzureMLEmulator) -> None:
        self.emulator = emulator
        self.records: dict[tuple[str, str], Record] = {}

    @classmethod
    def of(cls, emulator: AzureMLEmulator) -> ArmEventSubscriptions:
        """The registry of ``emulator`` (created on first use, so it outlives any one app)."""
        found = _REGISTRIES.get(emulator)
        if found is None:
            found = _REGISTRIES[emulator] = cls(emulator)
        return found

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_put(ONE, self._scoped(self.put))
        r.add_patch(ONE, self._scoped(self.patch))
        r.add_get(ONE, self._scoped(self.get))
        r.add_delete(ONE, self._scoped(self.delete))
        r.add_post(ONE + "/getFullUrl", self._scoped(self.full_url))
        r.add_get(LIST, self._scoped(self.list))
        r.add_get(RESOURCES, self.resources)

    # -- scopes ------------------------------------------------------------------------------------------

    def scopes(self) -> list[tuple[str, str, str]]:
        """``(resource id, type, name)`` of the resources that raise events: the workspace, the lake."""
        em = self.emulator
        found = [(em.workspace_topic, "Microsoft.MachineLearningServices/workspaces", em.world.workspace)]
        if em.world.lake is not None and em.storage_topic:
            found.append((em.storage_topic, "Microsoft.Storage/storageAccounts", em.world.lake.account))
        return found

    def _scoped(self, handler: Callable[[web.Request, str], Awaitable[web.StreamResponse]]) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            m = request.match_info
            scope = (
                f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}/providers/{m['ns']}/{m['type']}/{m['resource']}"
            )
            known = next((s for s, _, _ in self.scopes() if s.lower() == scope.lower()), None)
            if known is None:
                return arm_error(
                    404,
                    "ResourceNotFound",
                    f"The Resource '{m['ns']}/{m['type']}/{m['resource']}' "
                    f"under resource group '{m['rg']}' was not found.",
                )
            return await handler(request, known)

        return checked

    # -- handlers ----------------------------------------------------------------------------------------

    async def put(self, request: web.Request, scope: str) -> web.StreamResponse:
        body = await _json(request)
        if body is None:
            return arm_error(400, "InvalidRequestContent", "The request content is not a JSON object.")
        return await self._upsert(scope, request.match_info["name"], body)

    async def patch(self, request: web.Request, scope: str) -> web.StreamResponse:
        name = request.match_info["name"]
        record = self.records.get((scope.lower(), name.lower()))
        if record is None:
            return _not_found(name)
        update = await _json(request)
        if update is None:
            return arm_error(400, "InvalidRequestContent", "The request content is not a JSON object.")
        properties = {**record.properties, **{k: v for k, v in update.items() if v is not None}}
        return await self._upsert(scope, name, {"properties": properties})

    async def get(self, request: web.Request, scope: str) -> web.StreamResponse:
        record = self.records.get((scope.lower(), request.match_info["name"].lower()))
        if record is None:
            return _not_found(request.match_info["name"])
        return web.json_response(self._body(record))

    async def list(self, request: web.Request, scope: str) -> web.StreamResponse:
        mine = [r for (s, _), r in self.records.items() if s == scope.lower()]
        return web.json_response({"value": [self._body(r) for r in mine]})

    async def delete(self, request: web.Request, scope: str) -> web.StreamResponse:
        record = self.records.pop((scope.lower(), request.match_info["name"].lower()), None)
        if record is None:
            return web.Response(status=204)
        self._detach(record.subscription)
        return web.Response(status=200)

    async def full_url(self, request: web.Request, scope: str) -> web.StreamResponse:
        record = self.records.get((scope.lower(), request.match_info["name"].lower()))
        if record is None:
            return _not_found(request.match_info["name"])
        return web.json_response({"endpointUrl": record.subscription.url})

    async def resources(self, request: web.Request) -> web.StreamResponse:
        """``GET /subscriptions/{sub}/resources``: the known resources, narrowed by ``name``/``resourceType``."""
        if request.match_info["sub"].lower() != self.emulator.world.subscription_id.lower():
            return web.json_response({"value": []})
        wanted = {k.lower(): v.lower() for k, v in _FILTER_EQ.findall(request.query.get("$filter", ""))}
        found = []
        for resource_id, kind, name in self.scopes():
            if wanted.get("name", name.lower()) != name.lower():
                continue
            if wanted.get("resourcetype", kind.lower()) != kind.lower():
                continue
            found.append({"id": resource_id, "name": name, "type": kind, "location": self.emulator.world.location})
        return web.json_response({"value": found})

    # -- the work ----------------------------------------------------------------------------------------

    async def _upsert(self, scope: str, name: str, body: Mapping[str, Any]) -> web.StreamResponse:
        if not _NAME.match(name):
            return arm_error(400, "InvalidEventSubscriptionName", f"Event subscription name {name!r} is invalid.")
        key = (scope.lower(), name.lower())
        clash = next((r for k, r in self.records.items() if r.name.lower() == name.lower() and k != key), None)
        if clash is not None or (key not in self.records and name in self.emulator.dispatcher.subscriptions):
            return arm_error(
                409, "Conflict", f"The emulator needs event subscription names unique across scopes: {name}"
            )
        properties = dict(body.get("properties") or {})
        try:
            subscription = self._subscription(scope, name, properties)
        except BadRequest as error:
            return arm_error(400, "InvalidRequest", str(error))
        existing = self.records.get(key)
        if existing is not None:
            self._detach(existing.subscription)
        labels = [str(label) for label in properties.get("labels") or []]
        record = Record(scope, name, properties, subscription, iso(self.emulator.clock.now()), labels)
        if existing is not None:
            record.created = existing.created
        self.records[key] = record
        try:
            await self.emulator.dispatcher.subscribe(subscription)
        except SubscriptionValidationError:
            subscription.state = "Failed"
            return arm_error(
                400,
                "Url validation",
                f"Webhook validation handshake failed for {subscription.safe_url}. Http "
                f"{'OPTIONS' if subscription.schema != 'EventGridSchema' else 'POST'} request failed.",
            )
        return web.json_response(self._body(record), status=201)  # create and update alike, as the service

    def _subscription(self, scope: str, name: str, properties: Mapping[str, Any]) -> ArmEventSubscription:
        destination = properties.get("destination") or {}
        if destination.get("endpointType") != "WebHook":
            raise BadRequest("The emulator supports WebHook destinations only.")
        target = destination.get("properties") or {}
        url = str(target.get("endpointUrl") or "")
        _require_loopback(url)
        schema = str(properties.get("eventDeliverySchema") or "EventGridSchema")
        if schema not in SCHEMAS:
            raise BadRequest(f"Unsupported event delivery schema {schema!r}.")
        filters = properties.get("filter") or {}
        types = filters.get("includedEventTypes")
        secret_header = None
        for mapping in target.get("deliveryAttributeMappings") or []:
            if mapping.get("type") != "Static":
                raise BadRequest("The emulator supports Static delivery attribute mappings only.")
            secret_header = (str(mapping.get("name")), str((mapping.get("properties") or {}).get("value") or ""))
        return ArmEventSubscription(
            name=name,
            url=url,
            schema=schema,  # type: ignore[arg-type]
            event_types=tuple(str(t) for t in types) if types else None,
            secret_header=secret_header,
            max_events_per_batch=int(target.get("maxEventsPerBatch") or 1),
            subject_begins_with=filters.get("subjectBeginsWith") or None,
            subject_ends_with=filters.get("subjectEndsWith") or None,
            topic=scope,
            retry_schedule=self.emulator.world.delivery.retry_schedule,
            advanced_filters=tuple(_advanced(f) for f in filters.get("advancedFilters") or []),
            subject_case_sensitive=bool(filters.get("isSubjectCaseSensitive")),
        )

    def _detach(self, subscription: EventSubscription) -> None:
        """Stop delivering to a subscription (the dispatcher has no removal of its own)."""
        dispatcher = self.emulator.dispatcher
        if dispatcher.subscriptions.get(subscription.name) is subscription:
            del dispatcher.subscriptions[subscription.name]
        worker = dispatcher._workers.pop(subscription.name, None)
        dispatcher._wakeups.pop(subscription.name, None)
        if worker is not None:
            worker.cancel()

    def _body(self, record: Record) -> dict[str, Any]:
        sub = record.subscription
        properties = dict(record.properties)
        destination = dict(properties.get("destination") or {})
        target = dict(destination.get("properties") or {})
        target["endpointUrl"] = None  # never shown; POST getFullUrl returns it
        target["endpointBaseUrl"] = sub.safe_url
        target["deliveryAttributeMappings"] = [
            {**m, "properties": {**(m.get("properties") or {}), "value": None}}
            for m in target.get("deliveryAttributeMappings") or []
        ]
        destination["properties"] = target
        properties.update(
            destination=destination,
            topic=record.scope,
            provisioningState=_STATES.get(sub.state, sub.state),
            eventDeliverySchema=sub.schema,
            labels=record.labels,
        )
        return {
            "id": f"{record.scope}/providers/{TYPE}/{record.name}",
            "name": record.name,
            "type": TYPE,
            "properties": properties,
            "systemData": {"createdAt": record.created, "createdBy": "Handoff Emulator", "createdByType": "User"},
        }


_STATES = {"Succeeded": "Succeeded", "Failed": "Failed", "AwaitingManualAction": "AwaitingManualAction"}


def _advanced(data: Mapping[str, Any]) -> AdvancedFilter:
    operator = str(data.get("operatorType") or "")
    if operator not in STRING_OPERATORS:
        raise BadRequest(f"The emulator does not support the advanced filter operator {operator!r}.")
    values = data.get("values") or []
    return AdvancedFilter(operator, str(data.get("key") or ""), tuple(str(v) for v in values))


def _require_loopback(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"The endpoint URL must be an absolute http(s) URL, not {parts.scheme or 'nothing'}.")
    host = parts.hostname
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise BadRequest(f"The emulator only delivers to loopback addresses, not {host!r}.")


def _not_found(name: str) -> web.Response:
    return arm_error(404, "ResourceNotFound", f"The event subscription '{name}' was not found.")


async def _json(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
