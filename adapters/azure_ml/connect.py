"""``handoff connect azure-ml``: create the Event Grid subscriptions Handoff needs, idempotently.

Through azure-mgmt-eventgrid: on the workspace for the five Azure ML event types, and on each configured
data-lake path's storage account for committed new files (see :mod:`adapters.azure_ml.subscription_plan`),
delivering to ``<public_url>/hooks/eventgrid`` with the delivery secret. Creating one makes Event Grid
run its validation handshake against Handoff, which must therefore be running and reachable.

A storage account's resource id comes from ``eventgrid.allowed_topics`` when it lists one, else from a
lookup by name in the workspace's subscription. Synchronous, like the SDK: :func:`connect_azure_ml` runs it
in a worker thread.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from adapters.azure_ml.arm import classify_arm_error, eventgrid_client, find_resource_id
from adapters.azure_ml.subscription_plan import (
    COMMITTED_FILES,
    LABEL,
    SCHEMA,
    FoundSubscription,
    Shape,
    Step,
    WantedSubscription,
    endpoint_url,
    lake_subscription,
    plan,
    workspace_subscription,
)
from adapters.worker_pool import call_within, in_own_thread
from bot.config import Settings

STORAGE_TYPE = "Microsoft.Storage/storageAccounts"
_SCOPE = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/([^/]+)/([^/]+)/([^/]+)$", re.IGNORECASE)


@dataclass
class EventGridReport:
    """What a connect run found and did: lines to print (no secrets), and the failures among them.

    ``echo`` gets each line as soon as it is known (a command prints it then, not at the end).
    """

    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    echo: Callable[[str], None] | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def say(self, line: str) -> None:
        self.lines.append(line)
        if self.echo is not None:
            self.echo(line)

    def fail(self, message: str) -> None:
        self.failures.append(message)
        self.say(f"FAILED  {message}")


class EventGridConnector:
    """Reads, plans and writes Handoff's event subscriptions (synchronous).

    Args:
        client: an ``EventGridManagementClient`` (:func:`adapters.azure_ml.arm.eventgrid_client`).
        deadline: the seconds a lookup may take before it fails as unanswered (none by default). Writes
            have none: Event Grid validates Handoff's endpoint before it answers one.
    """

    def __init__(self, client: Any, deadline: float | None = None) -> None:
        self.client = client
        self.deadline = deadline

    def storage_scope(self, account: str, allowed_topics: list[str]) -> str | None:
        suffix = f"/providers/{STORAGE_TYPE}/{account}".lower()
        listed = next((t for t in allowed_topics if t.lower().rstrip("/").endswith(suffix)), None)
        if listed:
            return listed.rstrip("/")
        return call_within(partial(find_resource_id, self.client, STORAGE_TYPE, account), self.deadline)

    def found(self, scope: str) -> list[FoundSubscription]:
        match = _SCOPE.match(scope)
        if match is None:
            raise ValueError(f"not a resource id: {scope}")
        _, group, namespace, kind, name = match.groups()

        def read() -> list[FoundSubscription]:
            items = self.client.event_subscriptions.list_by_resource(group, namespace, kind, name)
            return [self._found(scope, item) for item in items]

        return call_within(read, self.deadline)

    def _found(self, scope: str, item: Any) -> FoundSubscription:
        labels = tuple(item.labels or ())
        state = str(item.provisioning_state or "")
        ours = FoundSubscription(scope, item.name, labels, state).ours
        shape = self._shape(scope, item) if ours and state == "Succeeded" else None
        return FoundSubscription(scope, str(item.name), labels, state, shape)

    def _shape(self, scope: str, item: Any) -> Shape | None:
        destination = item.destination
        if getattr(destination, "endpoint_type", None) != "WebHook":
            return None
        full = self.client.event_subscriptions.get_full_url(scope, item.name).endpoint_url
        flt = item.filter
        advanced = tuple(
            (str(f.operator_type), str(f.key), tuple(str(v) for v in (getattr(f, "values", None) or ())))
            for f in (flt.advanced_filters or [] if flt else [])
        )
        return Shape(
            str(full or ""),
            tuple(flt.included_event_types or ()) if flt else (),
            str(flt.subject_begins_with or "") if flt else "",
            advanced,
            str(item.event_delivery_schema or ""),
            int(getattr(destination, "max_events_per_batch", 1) or 1),
        )

    def write(self, wanted: WantedSubscription) -> None:
        from azure.mgmt.eventgrid.models import (
            AdvancedFilter,
            EventSubscription,
            EventSubscriptionFilter,
            StringInAdvancedFilter,
            WebHookEventSubscriptionDestination,
        )

        shape = wanted.shape
        advanced: list[AdvancedFilter] = [
            StringInAdvancedFilter(key=key, values=list(values))
            for operator, key, values in shape.advanced_filters
            if operator == COMMITTED_FILES[0]
        ]
        body = EventSubscription(
            destination=WebHookEventSubscriptionDestination(
                endpoint_url=shape.endpoint_url, max_events_per_batch=shape.max_events_per_batch
            ),
            filter=EventSubscriptionFilter(
                included_event_types=list(shape.event_types),
                subject_begins_with=shape.subject_begins_with or None,
                advanced_filters=advanced or None,
            ),
            labels=[LABEL],
            event_delivery_schema=SCHEMA,
        )
        self.client.event_subscriptions.begin_create_or_update(wanted.scope, wanted.name, body).result()

    def delete(self, scope: str, name: str) -> None:
        self.client.event_subscriptions.begin_delete(scope, name).result()


def wanted_subscriptions(
    settings: Settings, connector: EventGridConnector, report: EventGridReport
) -> list[WantedSubscription] | None:
    """Every subscription wanted; None (with the failures reported) when a scope cannot be found."""
    assert settings.azure_ml is not None and settings.eventgrid is not None and settings.server.public_url
    ml, grid = settings.azure_ml, settings.eventgrid
    url = endpoint_url(settings.server.public_url, grid.secret_query_parameter, grid.delivery_secret.reveal())
    workspace_scope = (
        f"/subscriptions/{ml.subscription_id}/resourceGroups/{ml.resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{ml.workspace}"
    )
    wanted = [workspace_subscription(workspace_scope, ml.workspace, url)]
    complete = True
    for lake in grid.data_lake_paths:
        try:
            scope = connector.storage_scope(lake.storage_account, list(grid.allowed_topics))
        except Exception as error:
            report.fail(f"find storage account {lake.storage_account}: {classify_arm_error(error).message}")
            complete = False
            continue
        if scope is None:
            report.fail(
                f"storage account {lake.storage_account} was not found in subscription {ml.subscription_id}: "
                "add its resource id to eventgrid.allowed_topics"
            )
            complete = False
            continue
        wanted.append(lake_subscription(scope, lake.storage_account, lake.filesystem, lake.path, url))
    if grid.allowed_topics:
        allowed = {t.lower().rstrip("/") for t in grid.allowed_topics}
        for scope in dict.fromkeys(w.scope for w in wanted):
            if scope.lower() not in allowed:
                report.say(f"  warning: eventgrid.allowed_topics does not list {scope}: its events are refused")
    return wanted if complete else None


def run_connect(
    settings: Settings,
    *,
    dry_run: bool = False,
    client: Any = None,
    deadline: float | None = None,
    echo: Callable[[str], None] | None = None,
) -> EventGridReport:
    """Plan, and unless ``dry_run`` apply, Handoff's Event Grid subscriptions (synchronous).

    ``deadline``: the seconds each lookup may take (each request is then tried once, and waits that long
    for an answer); ``echo`` gets each line of the report as soon as it is known.
    """
    report = EventGridReport(echo=echo)
    ml, grid, public_url = settings.azure_ml, settings.eventgrid, settings.server.public_url
    if ml is None or not ml.enabled:
        report.fail("azure_ml is not configured (or enabled: false): it names the workspace and the credential")
        return report
    if grid is None or not grid.enabled:
        report.fail("eventgrid is not configured (or enabled: false): it holds the delivery secret")
        return report
    if not public_url:
        report.fail("server.public_url is not set: Event Grid must know where to reach Handoff")
        return report
    if client is None:
        # (a request waits a little longer than the deadline: the deadline says how long the service was waited for)
        client = eventgrid_client(ml, timeout=None if deadline is None else deadline + 1.0)
    connector = EventGridConnector(client, deadline)
    report.say(f"Event Grid: subscriptions to {public_url.rstrip('/')}/hooks/eventgrid")
    wanted = wanted_subscriptions(settings, connector, report)
    if wanted is None:
        return report
    found: list[FoundSubscription] = []
    for scope in dict.fromkeys(w.scope for w in wanted):
        try:
            found += connector.found(scope)
        except Exception as error:
            report.fail(f"list event subscriptions on {scope}: {classify_arm_error(error, scope).message}")
    if not report.ok:
        return report
    steps = plan(wanted, found)
    report.steps = steps
    for step in steps:
        report.say(f"  {step.describe()}")
    for step in steps:
        if step.change == "conflict":
            report.failures.append(f"{step.name} on {step.scope} is not Handoff's")
    counts = {c: sum(1 for s in steps if s.change == c) for c in ("create", "update", "delete", "keep")}
    summary = (
        f"{counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete, "
        f"{counts['keep']} unchanged"
    )
    if dry_run:
        report.say(f"dry run: {summary}; nothing was changed")
        return report
    if not any(s.change in ("create", "update", "delete") for s in steps):
        report.say(f"nothing to do: {counts['keep']} subscription(s) in place")
        return report
    _apply(connector, steps, report)
    done = f"created {counts['create']}, updated {counts['update']}, deleted {counts['delete']}, kept {counts['keep']}"
    report.say(f"done: {done}" if report.ok else f"incomplete ({len(report.failures)} failed): {summary}")
    return report


def _apply(connector: EventGridConnector, steps: list[Step], report: EventGridReport) -> None:
    for step in steps:
        try:
            if step.change in ("create", "update") and step.wanted is not None:
                connector.write(step.wanted)
            elif step.change == "delete":
                connector.delete(step.scope, step.name)
        except Exception as error:
            report.fail(f"{step.change} {step.name}: {classify_arm_error(error, step.scope).message}")


async def connect_azure_ml(
    settings: Settings,
    *,
    dry_run: bool = False,
    client: Any = None,
    deadline: float | None = None,
    echo: Callable[[str], None] | None = None,
) -> EventGridReport:
    """:func:`run_connect` in a worker thread of its own (one that never holds the process's exit)."""
    return await in_own_thread(
        partial(run_connect, settings, dry_run=dry_run, client=client, deadline=deadline, echo=echo)
    )
