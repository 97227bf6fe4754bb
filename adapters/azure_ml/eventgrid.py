"""Event Grid deliveries → the core's domain events: Azure ML workspace events and data-lake files.

A delivery is one event or an array of them, in the Event Grid schema or in CloudEvents 1.0 (told apart
by ``specversion``; reference/azure-ml.md §1 and §2). :func:`parse_delivery` reads the envelopes with the
``azure-eventgrid`` / ``azure-core`` models (the timestamps of both with the Event Grid model's parser),
setting aside the items of a batch it cannot read;
:class:`EventSelector` says which of them Handoff takes and turns those into domain events, or says
why it does not (:class:`Ignored`).

Azure ML's ``data`` keys are matched case-insensitively (the docs use ``ModelName``, the SDKs
``modelName``) and versions become strings. ``Microsoft.Storage.BlobCreated`` becomes
:class:`~bot.events.DataArrived` only for a committed file (an ADLS Gen2 ``CreateFile`` announces an empty
file; ``FlushWithClose`` commits it) under a configured data-lake path.

Each event links where a person sees what it is about: Azure ML studio's page of it, or for new data the
Azure portal's storage browser (the file's own URL opens only with a key or a token).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, SystemEventNames

from adapters.web.payloads import Fields, PayloadError, without_nul
from bot.config import AzureMLSettings, DataLakePath, EventGridSettings
from bot.events import (
    DataArrived,
    DataDriftDetected,
    DomainEvent,
    ModelDeployed,
    ModelRegistered,
    TrainingRunFinished,
)

__all__ = [
    "MAX_BATCH",
    "SUBSCRIPTION_DELETED_EVENT",
    "VALIDATION_EVENT",
    "Delivery",
    "Envelope",
    "EventSelector",
    "IgnoreReason",
    "Ignored",
    "Malformed",
    "PayloadError",
    "parse_delivery",
    "validation_code",
]

VALIDATION_EVENT = str(SystemEventNames.EventGridSubscriptionValidationEventName.value)
SUBSCRIPTION_DELETED_EVENT = str(SystemEventNames.EventGridSubscriptionDeletedEventName.value)
ML_PREFIX = "microsoft.machinelearningservices."
MAX_BATCH = 5000
"""The most events Event Grid puts in one delivery (a subscription's ``maxEventsPerBatch`` is 1 to 5,000)."""

MODEL_REGISTERED = str(SystemEventNames.MachineLearningServicesModelRegisteredEventName.value)
MODEL_DEPLOYED = str(SystemEventNames.MachineLearningServicesModelDeployedEventName.value)
RUN_COMPLETED = str(SystemEventNames.MachineLearningServicesRunCompletedEventName.value)
RUN_STATUS_CHANGED = str(SystemEventNames.MachineLearningServicesRunStatusChangedEventName.value)
DATASET_DRIFT_DETECTED = str(SystemEventNames.MachineLearningServicesDatasetDriftDetectedEventName.value)
BLOB_CREATED = str(SystemEventNames.StorageBlobCreatedEventName.value)

# Blob operations after which the file is complete. ADLS Gen2 CreateFile makes an empty file that
# FlushWithClose later commits; CopyBlob on such accounts fires when the copy starts, not when it ends.
COMMITTING_APIS = frozenset({"putblob", "putblocklist", "flushwithclose", "sftpcommit"})

_WORKSPACE = re.compile(
    r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.MachineLearningServices"
    r"/workspaces/([^/]+)/?$",
    re.IGNORECASE,
)
_STORAGE_ACCOUNT = re.compile(r"/providers/Microsoft\.Storage/storageAccounts/([^/]+)", re.IGNORECASE)
_STORAGE_ACCOUNT_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Storage/storageAccounts/[^/]+", re.IGNORECASE
)
_BLOB_SUBJECT = re.compile(r"^/?blobServices/default/containers/([^/]+)/blobs/(.+)$", re.IGNORECASE)
_MODEL_SUBJECT = re.compile(r"^/?models/([^:/]+):(.+)$")
_ENDPOINT_SUBJECT = re.compile(r"^/?endpoints/(.+)$")
_RUN_SUBJECT = re.compile(r"/runs/([^/]+)$")
_DRIFT_SUBJECT = re.compile(r"^/?datadrifts?/([^/]+)/runs?/([^/]+)$")


@dataclass(frozen=True)
class Envelope:
    """One event of a delivery, whichever schema it came in."""

    id: str
    type: str
    source: str  # the Event Grid ``topic`` or the CloudEvents ``source``: the resource that raised it
    subject: str
    time: datetime | None
    data: Any
    cloud_event: bool

    def fields(self) -> Fields:
        """``data`` as an object whose keys are looked up case-insensitively."""
        return Fields.of(self.data, "data", ignore_case=True)


def _utc(value: Any) -> datetime | None:
    """The models' timestamps, in plain UTC (msrest hands out isodate's own tzinfo classes)."""
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _topic(value: str) -> str:
    """A topic as Handoff keys it: without a trailing ``/`` (Event Grid ids name the same resource either
    way, and cards, dedupe keys and the topic filter must agree)."""
    return value.rstrip("/") or value


def _why_unreadable(item: Mapping[str, Any], exc: Exception) -> str:
    """Why the Event Grid model refused an event, naming the field when it is the timestamp and never a value
    (the model's messages quote the input)."""
    if item.get("eventTime") is not None:
        try:
            _envelope_time(item["eventTime"], "eventTime")
        except PayloadError as bad_time:
            return str(bad_time)
    return f"not readable ({type(exc).__name__})"


def _envelope_time(value: Any, key: str) -> datetime | None:
    """An envelope's timestamp (``eventTime``, or CloudEvents' ``time``) in UTC, read by the Event Grid model's
    parser in either schema: azure-core's CloudEvent reads offsets other than ``Z`` wrong (``+02:00`` dropped,
    ``+10:30`` taken for ``+01:30``), which would put the event at another instant.

    Raises:
        PayloadError: not a date-time, or not one that is an instant in UTC (``0001-01-01T00:00:00+01:00``).
    """
    try:
        return _utc(EventGridEvent.from_dict({"eventTime": value}).event_time)
    except Exception:  # msrest's DeserializationError (which holds the OverflowError of a far offset), and more
        raise PayloadError(f"{key}: not a date-time") from None


def _cloud_event(item: Mapping[str, Any]) -> Envelope:
    fields = Fields.of(item)
    # CloudEvent.from_dict invents an id when there is none: that would defeat dedupe
    event_id = fields.require_text("id")
    event_type, source = fields.require_text("type"), fields.require_text("source")
    try:
        # an empty time is none, as CloudEvent.from_dict took it
        time = _envelope_time(item["time"], "time") if item.get("time") not in (None, "") else None
        # the time is read above: the model's reading of it is not used
        event: CloudEvent[Any] = CloudEvent.from_dict({k: v for k, v in item.items() if k != "time"})
    except PayloadError as exc:
        raise PayloadError(f"not a CloudEvent: {exc}") from None
    except Exception as exc:  # the model raises assorted types on bad input
        raise PayloadError(f"not a CloudEvent: not readable ({type(exc).__name__})") from None
    subject = fields.text("subject") or ""
    return Envelope(event_id, event_type, _topic(source), subject, time, event.data, True)


def _data_key(item: Mapping[str, Any]) -> str | None:
    """The key the Event Grid model reads ``data`` from: the first whose lower case is ``data``."""
    if "data" in item and next(iter(item)) == "data":  # (the usual case, and the cheapest)
        return "data"
    return next((key for key in item if isinstance(key, str) and key.lower() == "data"), None)


def _eventgrid_event(item: Mapping[str, Any]) -> Envelope:
    fields = Fields.of(item)
    event_id, event_type = fields.require_text("id"), fields.require_text("eventType")
    topic, subject = fields.text("topic") or "", fields.text("subject") or ""
    # The model reads the envelope; ``data`` is taken as sent. The model would copy it value by value (an
    # eval for each number): a 1 MB event of small numbers cost seconds of the event loop, for the same data.
    data_key = _data_key(item)
    try:
        event = EventGridEvent.from_dict({k: v for k, v in item.items() if k != data_key})
        time = _utc(event.event_time)
    except Exception as exc:  # msrest's DeserializationError, and worse on odd shapes
        raise PayloadError(f"not an Event Grid event: {_why_unreadable(item, exc)}") from None
    data = item[data_key] if data_key is not None else None
    return Envelope(event_id, event_type, _topic(topic), subject, time, data, False)


@dataclass(frozen=True)
class Malformed:
    """An item of a delivery that is not an event Handoff can read."""

    index: int  # its place in the delivery (0 for a single-event body)
    event_id: str | None  # its id, when it has a usable one
    reason: str  # names fields, never their values


@dataclass(frozen=True)
class Delivery:
    """The events of one delivery, and the items of it that are not events."""

    envelopes: tuple[Envelope, ...]
    malformed: tuple[Malformed, ...] = ()

    def __len__(self) -> int:
        return len(self.envelopes) + len(self.malformed)


def _malformed(index: int, item: Any, reason: str) -> Malformed:
    event_id = None
    # an id of another JSON type: the item is named by its place alone
    with contextlib.suppress(PayloadError):
        event_id = Fields.of(item).text("id") if isinstance(item, Mapping) else None
    return Malformed(index, event_id, reason)


def parse_delivery(document: Any) -> Delivery:
    """The events of one delivery: a single event or an array, in either schema.

    An item of an array that is not an event (not an object; without an id, a type or a source; with a
    timestamp that is not one) is set aside in :attr:`Delivery.malformed`, so that one bad event does not
    cost the others: Event Grid drops or dead-letters a delivery answered 400, whole.

    Raises:
        PayloadError: the document is not a delivery: not an object or an array of objects, an array of more
            items than Event Grid puts in a batch (:data:`MAX_BATCH`), or no item of it is an event.
    """
    if not isinstance(document, list | Mapping):
        raise PayloadError("the body: expected an event object or an array of them")
    if isinstance(document, list) and len(document) > MAX_BATCH:  # refused before any item is read
        raise PayloadError(
            f"the body: {len(document)} items, more than the {MAX_BATCH} events an Event Grid delivery holds"
        )
    items = document if isinstance(document, list) else [document]
    envelopes: list[Envelope] = []
    malformed: list[Malformed] = []
    for i, item in enumerate(items):
        try:
            if not isinstance(item, Mapping):
                raise PayloadError("expected an event object")
            envelopes.append(_cloud_event(item) if "specversion" in item else _eventgrid_event(item))
        except PayloadError as exc:
            malformed.append(_malformed(i, item, str(exc)))
    if malformed and not envelopes:
        first = malformed[0]
        where = f"[{first.index}]" if isinstance(document, list) else "the body"
        more = f" (and {len(malformed) - 1} more item(s) that are not events)" if len(malformed) > 1 else ""
        raise PayloadError(f"{where}: {first.reason}{more}")
    return Delivery(tuple(envelopes), tuple(malformed))


def is_validation(envelope: Envelope) -> bool:
    """Whether the envelope is Event Grid's subscription validation handshake."""
    return envelope.type.casefold() == VALIDATION_EVENT.casefold()


def validation_code(envelopes: Sequence[Envelope]) -> str | None:
    """The code to echo when the delivery holds Event Grid's subscription validation handshake."""
    for envelope in envelopes:
        if is_validation(envelope):
            return envelope.fields().require_text("validationCode")
    return None


# --- Azure ML -----------------------------------------------------------------------------------------


def _base(envelope: Envelope, source: str, text: str) -> dict[str, Any]:
    return {
        "source": source,
        "event_id": envelope.id,
        "occurred_at": envelope.time or datetime.now(UTC),
        "scope": envelope.source,
        "text": text,
    }


def _match(pattern: re.Pattern[str], text: str, group: int = 1) -> str | None:
    match = pattern.search(text)
    return unquote(match.group(group)) if match else None


def _model_registered(envelope: Envelope, data: Fields) -> DomainEvent:
    name = data.text("modelName") or _match(_MODEL_SUBJECT, envelope.subject)
    version = data.text("modelVersion") or _match(_MODEL_SUBJECT, envelope.subject, 2)
    if not name or not version:
        raise PayloadError("data.modelName, data.modelVersion: missing")
    return ModelRegistered(
        **_base(envelope, "azure-ml", f"Model {name} version {version} registered"),
        model_name=name,
        model_version=version,
        model_tags=data.strings("modelTags"),
        model_properties=data.strings("modelProperties"),
    )


def _model_ids(data: Fields) -> tuple[str, ...]:
    value = data.get("modelIds")
    if isinstance(value, list):
        ids = (without_nul(str(item)).strip() for item in value if isinstance(item, str | int))
        return tuple(model_id for model_id in ids if model_id)
    text = data.text("modelIds") or ""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _model_deployed(envelope: Envelope, data: Fields) -> DomainEvent:
    service = data.text("serviceName") or _match(_ENDPOINT_SUBJECT, envelope.subject)
    if not service:
        raise PayloadError("data.serviceName: missing")
    models = _model_ids(data)
    return ModelDeployed(
        **_base(envelope, "azure-ml", f"Deployed {', '.join(models) or 'models'} to {service}"),
        service_name=service,
        compute_type=data.text("serviceComputeType") or "",
        model_ids=models,
        service_tags=data.strings("serviceTags"),
    )


def _run_status(envelope: Envelope, data: Fields) -> str:
    if envelope.type.casefold() == RUN_COMPLETED.casefold():
        return "Completed"
    status = (data.text("runStatus") or "Unknown").strip()
    return status[:1].upper() + status[1:]  # "failed" and "Failed" both occur


def _training_run(envelope: Envelope, data: Fields) -> DomainEvent:
    run_id = data.text("runId") or _match(_RUN_SUBJECT, envelope.subject)
    if not run_id:
        raise PayloadError("data.runId: missing")
    experiment = data.text("experimentName") or ""
    status = _run_status(envelope, data)
    return TrainingRunFinished(
        **_base(envelope, "azure-ml", f"Run {run_id} of {experiment or 'an experiment'}: {status}"),
        run_id=run_id,
        experiment_name=experiment,
        run_type=data.text("runType") or "",
        status=status,
        run_tags=data.strings("runTags"),
    )


def _dataset_drift(envelope: Envelope, data: Fields) -> DomainEvent:
    monitor = data.text("dataDriftId") or _match(_DRIFT_SUBJECT, envelope.subject)
    run_id = data.text("runId") or _match(_DRIFT_SUBJECT, envelope.subject, 2)
    coefficient = data.number("driftCoefficient")
    if not monitor or not run_id or coefficient is None:
        raise PayloadError("data.dataDriftId, data.runId, data.driftCoefficient: missing")
    name = data.text("dataDriftName") or ""
    return DataDriftDetected(
        **_base(envelope, "azure-ml", f"Data drift {coefficient:.2f} detected by {name or monitor}"),
        monitor_id=monitor,
        monitor_name=name,
        run_id=run_id,
        drift_coefficient=coefficient,
        base_dataset_id=data.text("baseDatasetId") or "",
        target_dataset_id=data.text("targetDatasetId") or "",
        window_start=_optional_time(data, "startTime"),
        window_end=_optional_time(data, "endTime"),
    )


def _optional_time(data: Fields, key: str) -> datetime | None:
    """A timestamp the card may show, in UTC; one that is not ISO-8601, or is no instant in UTC (an offset
    that takes it past year 1 or 9999), is left out rather than losing the event."""
    try:
        value = data.time(key)
        return value.astimezone(UTC) if value is not None else None
    except (PayloadError, OverflowError):
        return None


# --- the data lake ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobLocation:
    account: str
    container: str
    path: str


def _blob_location(envelope: Envelope, data: Fields) -> BlobLocation:
    """Where a blob is: the account from the topic, container and path from the subject (the URL as a
    fallback for each; in the docs samples they do not always agree, and the topic and subject are the
    documented source of truth)."""
    try:
        url = urlsplit(data.text("url") or "")
        host = url.hostname or ""
    except ValueError:  # an unparsable URL: rely on the topic and subject
        url, host = urlsplit(""), ""
    url_segments = [unquote(s) for s in url.path.split("/") if s]
    account = _match(_STORAGE_ACCOUNT, envelope.source) or host.split(".", 1)[0]
    container = _match(_BLOB_SUBJECT, envelope.subject) or (url_segments[0] if url_segments else "")
    path = _match(_BLOB_SUBJECT, envelope.subject, 2) or "/".join(url_segments[1:])
    if not (account and container and path):
        raise PayloadError("subject, data.url: no storage account, container and path")
    return BlobLocation(account, container, path)


def storage_browser_link(portal_url: str, topic: str, container: str) -> str | None:
    """Where a person opens new data: the Azure portal's page of its container (the storage browser, where
    the folders of the path on the card are a click away), by the storage account's resource id, which
    Event Grid names as the topic; None when the topic is not one.

    Not the file's own URL (``https://{account}.dfs.core.windows.net/{container}/{path}``): storage answers
    it only to requests signed with a key, a SAS or a token, so a person who clicks it is refused.
    """
    if not (account_id := _STORAGE_ACCOUNT_ID.match(topic.strip())):
        return None
    blade = "#view/Microsoft_Azure_Storage/ContainerMenuBlade/~/overview"
    return (
        f"{portal_url.rstrip('/')}/{blade}/storageAccountId/{quote(account_id.group(0), safe='')}"
        f"/path/{quote(container, safe='')}"
    )


def _under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or inside it, segment by segment (``raw`` does not hold ``rawdata``)."""
    prefix = prefix.strip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


# --- selection ----------------------------------------------------------------------------------------


class IgnoreReason(StrEnum):
    """Why Handoff does not take an event, as its log line says it."""

    TOPIC_NOT_ALLOWED = "topic not allowed"
    OTHER_WORKSPACE = "from another workspace"
    NOT_COMMITTED = "blob api does not commit the file"
    NOT_WATCHED = "path outside the watched data-lake paths"
    SUBSCRIPTION_DELETED = "event subscription deleted"
    UNKNOWN_TYPE = "event type not taken"


@dataclass(frozen=True)
class Ignored:
    """An event Handoff does not take: why, and what that concerns (the blob api, the path), if anything."""

    reason: IgnoreReason
    detail: str | None = None


Mapper = Callable[[Envelope, Fields], DomainEvent]

_ML_MAPPERS: dict[str, Mapper] = {
    MODEL_REGISTERED.casefold(): _model_registered,
    MODEL_DEPLOYED.casefold(): _model_deployed,
    RUN_COMPLETED.casefold(): _training_run,
    RUN_STATUS_CHANGED.casefold(): _training_run,
    DATASET_DRIFT_DETECTED.casefold(): _dataset_drift,
}


def studio_link(studio_url: str, workspace_id: str, event: DomainEvent) -> str | None:
    """Where Azure ML studio shows what an Azure ML event is about; None for what studio has no page of.

    A model version's page (``model/{name}:{version}/details``); a training run's (``runs/{id}``); for drift,
    the page of the run that measured it (``runs/{id}``: a dataset monitor measures drift in Azure ML runs
    of its own, and the event names that run, not a job Handoff started); for a deployment, the real-time
    endpoint's page (``endpoints/realtime/{name}/detail``), where studio lists the services ModelDeployed
    names as well as online endpoints.
    """
    if isinstance(event, ModelRegistered):
        page = f"model/{quote(event.model_name, safe='')}:{quote(event.model_version, safe='')}/details"
    elif isinstance(event, TrainingRunFinished | DataDriftDetected):
        page = f"runs/{quote(event.run_id, safe='')}"
    elif isinstance(event, ModelDeployed):
        page = f"endpoints/realtime/{quote(event.service_name, safe='')}/detail"
    else:
        return None
    return f"{studio_url.rstrip('/')}/{page}?wsid={quote(workspace_id.strip(), safe='/')}"


def _workspace_key(resource_id: str) -> tuple[str, str, str] | None:
    if not (match := _WORKSPACE.match(resource_id.strip())):
        return None
    subscription, group, workspace = match.groups()
    return subscription.casefold(), group.casefold(), workspace.casefold()


@dataclass(frozen=True)
class EventSelector:
    """Which events Handoff takes, and what they become.

    Args:
        allowed_topics: topics (resource ids) accepted; empty accepts every topic.
        workspace: ``(subscription, resource group, workspace)`` whose Azure ML events are accepted;
            None accepts every workspace.
        data_lake_paths: where a committed file is news; empty watches every committed blob.
        studio_url: Azure ML studio, where Azure ML events link (:func:`studio_link`).
        portal_url: the Azure portal, where new data links (:func:`storage_browser_link`).
    """

    allowed_topics: frozenset[str] = frozenset()
    workspace: tuple[str, str, str] | None = None
    data_lake_paths: tuple[DataLakePath, ...] = ()
    studio_url: str = "https://ml.azure.com"
    portal_url: str = "https://portal.azure.com"

    @classmethod
    def from_settings(cls, settings: EventGridSettings, workspace: AzureMLSettings | None = None) -> EventSelector:
        return cls(
            allowed_topics=frozenset(t.strip().rstrip("/").casefold() for t in settings.allowed_topics),
            workspace=(
                _workspace_key(
                    f"/subscriptions/{workspace.subscription_id}/resourceGroups/{workspace.resource_group}"
                    f"/providers/Microsoft.MachineLearningServices/workspaces/{workspace.workspace}"
                )
                if workspace is not None
                else None
            ),
            data_lake_paths=tuple(settings.data_lake_paths),
            studio_url=workspace.studio_url if workspace is not None else cls.studio_url,
            portal_url=settings.portal_url,
        )

    def admits(self, envelope: Envelope) -> bool:
        """Whether the event comes from an allowed topic and, for Azure ML, the configured workspace."""
        return self._refusal(envelope) is None

    def _refusal(self, envelope: Envelope) -> IgnoreReason | None:
        topic = envelope.source.strip().rstrip("/").casefold()
        if self.allowed_topics and topic not in self.allowed_topics:
            return IgnoreReason.TOPIC_NOT_ALLOWED
        if self.workspace is not None and envelope.type.casefold().startswith(ML_PREFIX):
            return None if _workspace_key(envelope.source) == self.workspace else IgnoreReason.OTHER_WORKSPACE
        return None

    def watches(self, location: BlobLocation) -> bool:
        if not self.data_lake_paths:
            return True
        return any(
            watched.storage_account.casefold() == location.account.casefold()
            and watched.filesystem.casefold() == location.container.casefold()
            and _under(location.path, watched.path)
            for watched in self.data_lake_paths
        )

    def domain_event(self, envelope: Envelope) -> DomainEvent | Ignored:
        """The domain event for an envelope, or why Handoff does not take it.

        Raises:
            PayloadError: a known event whose ``data`` lacks what the event needs.
        """
        kind = envelope.type.casefold()
        if kind == SUBSCRIPTION_DELETED_EVENT.casefold():  # whatever its topic: deliveries to Handoff stop
            return Ignored(IgnoreReason.SUBSCRIPTION_DELETED, _subscription_id(envelope))
        if (refusal := self._refusal(envelope)) is not None:
            return Ignored(refusal)
        if (mapper := _ML_MAPPERS.get(kind)) is not None:
            event = mapper(envelope, envelope.fields())
            link = None if event.web_url else studio_link(self.studio_url, envelope.source, event)
            return replace(event, web_url=link) if link else event
        if kind == BLOB_CREATED.casefold():
            return self._data_arrived(envelope, envelope.fields())
        return Ignored(IgnoreReason.UNKNOWN_TYPE)

    def _data_arrived(self, envelope: Envelope, data: Fields) -> DomainEvent | Ignored:
        if (api := data.text("api") or "").casefold() not in COMMITTING_APIS:
            return Ignored(IgnoreReason.NOT_COMMITTED, api or None)
        location = _blob_location(envelope, data)
        if not self.watches(location):
            return Ignored(IgnoreReason.NOT_WATCHED, f"{location.account}/{location.container}/{location.path}")
        size = data.integer("contentLength") or 0
        return DataArrived(
            **_base(envelope, "storage", f"New file {location.container}/{location.path} ({size} bytes)"),
            storage_account=location.account,
            container=location.container,
            path=location.path,
            size=size,
            url=data.text("url") or "",
            sequencer=data.text("sequencer") or "",
            web_url=storage_browser_link(self.portal_url, envelope.source, location.container),
        )


def _subscription_id(envelope: Envelope) -> str | None:
    """The deleted subscription's resource id, as ``SubscriptionDeletedEvent`` data gives it."""
    try:
        return envelope.fields().text("eventSubscriptionId")
    except PayloadError:  # data that is not an object, or an id that is not text: the topic must do
        return None
