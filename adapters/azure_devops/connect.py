"""``handoff connect azure-devops``: create the service hooks Handoff needs, idempotently.

For each configured project (and each project a chat subscription names), one Web Hooks subscription per
event type Handoff's routing uses, pointed at ``<public_url>/hooks/azure-devops`` with the configured
basic-auth or header secret. A second run changes nothing; a changed configuration updates the
subscriptions Handoff created (marked as its own, see :mod:`adapters.azure_devops.hook_plan`); Handoff's
subscriptions nobody needs any more are deleted; everyone else's are never touched. A dry run only plans.

Synchronous, like the SDK: :func:`connect_azure_devops` runs it in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit

from adapters.azure_devops.hook_plan import (
    HOOK_PATH,
    Action,
    Change,
    HookCredentials,
    HookSpec,
    configured_kinds,
    event_types_for,
    plan,
)
from adapters.azure_devops.hooks_gateway import HookCallFailed, HooksGateway
from adapters.azure_devops.pipelines import connection_for
from adapters.worker_pool import in_own_thread
from bot.config import AzureDevOpsSettings, Settings


@dataclass
class ConnectReport:
    """What a connect run found and did: lines to print (no secrets), and the failures among them.

    ``echo`` gets each line as soon as it is known (a command prints it then, not at the end).
    """

    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    echo: Callable[[str], None] | None = None
    # the organization did not answer: the calls left would only wait as long again
    unanswered: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def changes(self) -> list[Action]:
        return [a for a in self.actions if a.change is not Change.KEEP]

    def say(self, line: str) -> None:
        self.lines.append(line)
        if self.echo is not None:
            self.echo(line)

    def fail(self, message: str) -> None:
        self.failures.append(message)
        self.say(f"FAILED  {message}")

    def failed_call(self, failure: HookCallFailed) -> None:
        self.fail(str(failure))
        self.unanswered = self.unanswered or failure.refusal.kind == "unreachable"


class HookConnector:
    """Plans and applies Handoff's service hooks on one organization (synchronous).

    Args:
        gateway: the SDK calls.
        settings: the ``azure_devops`` section (organization, hook credentials).
        public_url: where Azure DevOps reaches Handoff.
    """

    def __init__(self, gateway: HooksGateway, settings: AzureDevOpsSettings, public_url: str) -> None:
        self.gateway = gateway
        self.settings = settings
        self.endpoint = public_url.rstrip("/") + HOOK_PATH
        self.credentials = HookCredentials.from_settings(settings.service_hooks)
        self._digest: str | None = None

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = self.credentials.digest(self.settings.organization_url.lower().rstrip("/"))
        return self._digest

    def wanted(self, projects: Iterable[str], kinds: Iterable[str], report: ConnectReport) -> list[HookSpec] | None:
        """The subscriptions wanted; None (with the failures reported) when a project cannot be resolved."""
        event_types = event_types_for(kinds)
        specs: list[HookSpec] = []
        complete = True
        for project in projects:
            try:
                project_id = self.gateway.project_id(project)
            except HookCallFailed as failure:
                report.failed_call(failure)
                if report.unanswered:
                    return None
                complete = False
                continue
            specs += [HookSpec(project, project_id, t, self.endpoint) for t in event_types]
        return specs if complete else None

    def plan(
        self, projects: Sequence[str], kinds: Iterable[str], report: ConnectReport, *, remove_stale: bool = True
    ) -> list[Action]:
        specs = self.wanted(projects, kinds, report)
        if report.unanswered:
            return []
        try:
            existing = self.gateway.list_hooks()
        except HookCallFailed as failure:
            report.failed_call(failure)
            return []
        if specs is None:  # a project could not be resolved: change nothing rather than guess
            return []
        names = {s.project_id: s.project for s in specs}
        return plan(specs, existing, self.digest, projects=names, remove_stale=remove_stale)

    def apply(self, actions: Sequence[Action], report: ConnectReport) -> None:
        """Create (and replace) first, delete last, so that no event is missed in between; a replacement
        that could not be created leaves the subscription it was to replace in place."""
        not_created: set[int] = set()
        for index, action in enumerate(actions):
            if action.change in (Change.CREATE, Change.UPDATE) and action.spec is not None:
                try:
                    self.gateway.create_hook(action.spec, action.spec.url(self.digest), self.credentials)
                except HookCallFailed as failure:
                    report.failed_call(failure)
                    not_created.add(index)
        for index, action in enumerate(actions):
            replaced = action.change is Change.UPDATE and index not in not_created
            if (action.change is Change.DELETE or replaced) and action.existing is not None:
                try:
                    self.gateway.delete_hook(action.existing)
                except HookCallFailed as failure:
                    report.failed_call(failure)


def hook_projects(settings: AzureDevOpsSettings, chat_filters: Iterable[Mapping[str, object]]) -> list[str]:
    """The configured projects, then those chat subscriptions name (``subscribe <project url>``)."""
    projects = list(dict.fromkeys(settings.projects))
    known = {p.lower() for p in projects}
    for filters in chat_filters:
        named = filters.get("projects")
        for project in [named] if isinstance(named, str) else named if isinstance(named, list) else []:
            name = str(project)
            if name.lower() not in known and not any(c in name for c in "*?["):  # a glob names no one project
                known.add(name.lower())
                projects.append(name)
    return projects


def run_connect(
    settings: Settings,
    *,
    dry_run: bool = False,
    chat_filters: Sequence[Mapping[str, object]] = (),
    gateway: HooksGateway | None = None,
    remove_stale: bool = True,
    deadline: float | None = None,
    echo: Callable[[str], None] | None = None,
) -> ConnectReport:
    """Plan, and unless ``dry_run`` apply, Handoff's service hooks (synchronous).

    ``remove_stale=False`` creates and replaces, but deletes none of Handoff's hooks that nothing needs:
    for when the chat subscriptions, which may need them, are not known. ``deadline``: the seconds each
    call to Azure DevOps may take (each request is then tried once); ``echo`` gets each line of the report
    as soon as it is known.
    """
    report = ConnectReport(echo=echo)
    ado = settings.azure_devops
    public_url = settings.server.public_url
    if ado is None or not ado.enabled:
        report.fail("azure_devops is not configured (or enabled: false)")
        return report
    if not public_url:
        report.fail("server.public_url is not set: Azure DevOps must know where to reach Handoff")
        return report
    if gateway is None:
        gateway = HooksGateway(connection_for(ado, timeout=_request_timeout(deadline)), deadline)
    connector = HookConnector(gateway, ado, public_url)
    projects = hook_projects(ado, chat_filters)
    kinds = configured_kinds(settings, chat_filters)
    report.say(f"Azure DevOps {ado.organization_url}: hooks to {connector.endpoint}")
    report.say(f"  projects: {', '.join(projects)}; kinds: {', '.join(sorted(kinds))}")
    if urlsplit(public_url).scheme != "https" and urlsplit(public_url).hostname not in (
        "127.0.0.1",
        "localhost",
        "::1",
    ):
        report.say("  warning: public_url is not https; Azure DevOps sends basic auth over HTTPS only")
    actions = connector.plan(projects, kinds, report, remove_stale=remove_stale)
    report.actions = actions
    for action in actions:
        report.say(f"  {action.describe()}")
    counts = {c: sum(1 for a in actions if a.change is c) for c in Change}
    summary = (
        f"{counts[Change.CREATE]} to create, {counts[Change.UPDATE]} to update, "
        f"{counts[Change.DELETE]} to delete, {counts[Change.KEEP]} unchanged"
    )
    if dry_run:
        report.say(f"dry run: {summary}; nothing was changed")
        return report
    if not report.changes:
        report.say(f"nothing to do: {counts[Change.KEEP]} hook(s) in place" if report.ok else summary)
        return report
    connector.apply(actions, report)
    done = (
        f"created {counts[Change.CREATE]}, updated {counts[Change.UPDATE]}, deleted {counts[Change.DELETE]}, "
        f"kept {counts[Change.KEEP]}"
    )
    report.say(f"done: {done}" if report.ok else f"incomplete ({len(report.failures)} failed): {summary}")
    return report


def _request_timeout(deadline: float | None) -> float | None:
    """A request's own timeout under a call's ``deadline``: a little longer, so that the deadline, which
    says how long the service was waited for, is what ends the wait."""
    return None if deadline is None else deadline + 1.0


async def connect_azure_devops(
    settings: Settings,
    *,
    dry_run: bool = False,
    chat_filters: Sequence[Mapping[str, object]] = (),
    gateway: HooksGateway | None = None,
    remove_stale: bool = True,
    deadline: float | None = None,
    echo: Callable[[str], None] | None = None,
) -> ConnectReport:
    """:func:`run_connect` in a worker thread of its own (one that never holds the process's exit)."""
    connect = partial(
        run_connect,
        settings,
        dry_run=dry_run,
        chat_filters=chat_filters,
        gateway=gateway,
        remove_stale=remove_stale,
        deadline=deadline,
        echo=echo,
    )
    return await in_own_thread(connect)
