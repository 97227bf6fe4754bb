"""The composition root: builds Handoff's aiohttp application from validated settings.

This is the one module of the core that knows the adapters. Everything else in ``bot/`` talks to
them through the ports. Integrations are imported only when their section is enabled, so that a
start-up without Azure ML never pays for ``azure.ai.ml``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.sql import SqlStore
from adapters.sql.engine import shown_url
from adapters.sql.problems import NoDatabase
from adapters.sql.store import STORE_ERRORS, StoreUnavailable
from adapters.web import limits as web_limits
from adapters.web.draining import DRAINING, Draining
from adapters.web.edge import edge_middleware
from adapters.web.health import METRICS, STORE, add_health_routes
from adapters.web.limits import BODY_LIMITS, alias_trailing_slash
from adapters.web.pages import add_app_pages
from adapters.web.server_log import quiet_client_errors
from bot.chat_handler import ChatHandler
from bot.clock import Clock, SystemClock
from bot.config import MAX_REPEAT_LIMIT, Settings
from bot.consumers import Consumers
from bot.gates import Gatekeeper
from bot.ingest import Ingest
from bot.lifecycle import until_signalled
from bot.metrics import Metrics
from bot.model_commands import ModelCommands
from bot.model_handoff import ModelHandoff
from bot.outbox import SEND_HISTORY, OutboxWorker
from bot.pipeline_runs import ModelPipelines, organization_name
from bot.policy import Policy
from bot.ports import ChatChannel, HookProvisioner, MLService, PipelineService, Store
from bot.records import AuditEntry, ConversationAddress, Platform
from bot.routing import channel_addresses, configured_subscriptions
from bot.runner import CommandRunner
from bot.trouble import FailureStreak

log = logging.getLogger("handoff")

# The largest body any route accepts; each route has its own, smaller or equal, cap.
APP_BODY_LIMIT = 3 * 1024 * 1024
# How long a stopping Handoff answers 503 on the connections already open before it closes them, at most
# (a kept-alive sender's next delivery is then told to retry, not cut off), and how often it looks whether
# they have all closed.
SHUTDOWN_DRAIN_SECONDS = 2.0
DRAIN_POLL_SECONDS = 0.05


@dataclass
class Handoff:
    """Everything one Handoff process runs, wired together."""

    settings: Settings
    store: Store
    clock: Clock
    ingest: Ingest
    gatekeeper: Gatekeeper
    chat: ChatHandler
    outbox: OutboxWorker
    channels: dict[Platform, ChatChannel] = field(default_factory=dict)
    pipelines: PipelineService | None = None
    ml: MLService | None = None
    runner: CommandRunner | None = None
    model_handoff: ModelHandoff | None = None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    background: bool = True

    async def close(self) -> None:
        """Stop the work Handoff started and close its clients: :attr:`closers`, last first, each in turn even if
        one fails (logged). Call it before closing the store."""
        for close in reversed(self.closers):
            try:
                await close()
            except Exception:
                log.exception("closing %s failed", getattr(close, "__qualname__", close))

    async def run_background(self, stop: asyncio.Event) -> None:
        """The command runs an earlier process left, the outbox worker, and every minute: gate expiry,
        command runs cut off while starting, reminders; and forgetting old event ids, repeat marks and
        finished deliveries."""
        if self.runner is not None:
            try:
                await self.runner.resume()
            except Exception:
                log.exception("could not take up the command runs an earlier process left")
        tasks = [asyncio.create_task(self.outbox.run(stop), name="outbox")]
        tasks.append(asyncio.create_task(self._housekeeping(stop), name="housekeeping"))
        tasks.append(asyncio.create_task(self._retention(stop), name="retention"))
        await asyncio.gather(*tasks)

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        streak = FailureStreak(log, "housekeeping", self.clock)  # (its minute is longer than any backoff)
        while not stop.is_set():
            try:
                await self.gatekeeper.sweep()
                if self.runner is not None:
                    await self.runner.sweep()
                if self.model_handoff is not None:
                    await self.model_handoff.sweep()
                await self.gatekeeper.remind()
            except Exception as error:
                streak.failed(error)
            else:
                streak.succeeded()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 60)

    async def _retention(self, stop: asyncio.Event) -> None:
        # beside the housekeeping, not in it: a first pass over a long backlog takes a while
        streak = FailureStreak(log, "forgetting old rows", self.clock)
        while not stop.is_set():
            try:
                forgotten = await self.forget_old_rows()
                if any(forgotten.values()):
                    log.info("forgot %s", ", ".join(f"{count} {what}" for what, count in forgotten.items() if count))
            except Exception as error:
                streak.failed(error)
            else:
                streak.succeeded()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 60)

    async def forget_old_rows(self) -> dict[str, int]:
        """Forget what the store keeps no longer (``store.dedupe_retention``, ``store.delivery_retention``,
        ``store.card_retention``, ``store.audit_retention`` when set, and sends older than the platforms'
        longest rate-limit window); how many of each kind. The background runs it every minute."""
        now, retention = self.clock.now(), self.settings.store
        return {
            "event ids": await self.store.forget_events_before(now - retention.dedupe_retention),
            # a mark older than the longest repeat limit can no longer fold anything
            "repeat marks": await self.store.forget_repeat_marks_before(now - MAX_REPEAT_LIMIT),
            "finished deliveries": await self.store.forget_deliveries_before(now - retention.delivery_retention),
            "send times": await self.store.forget_sends_before(now - SEND_HISTORY),
            "cards": await self.store.forget_cards_before(now - retention.card_retention),
            "decided gates": await self.store.forget_gates_decided_before(now - retention.card_retention),
            "audit entries": (
                await self.store.forget_audit_before(now - retention.audit_retention)
                if retention.audit_retention is not None
                else 0
            ),
        }


HANDOFF = web.AppKey("handoff", Handoff)


def _ops_targets(settings: Settings) -> tuple[ConversationAddress, ...]:
    return channel_addresses(settings, settings.ops_channel) if settings.ops_channel else ()


def _names(settings: Settings) -> dict[ConversationAddress, str]:
    """The configured name of each configured conversation."""
    return {address: name for name in settings.channels for address in channel_addresses(settings, name)}


def build_handoff(
    settings: Settings,
    store: Store,
    clock: Clock | None = None,
    *,
    pipelines: PipelineService | None = None,
    ml: MLService | None = None,
    hooks: HookProvisioner | None = None,
    poll_interval: float = 5.0,
    base_dir: Path | None = None,
) -> Handoff:
    """The core, wired to the store and the services (chat channels are added by the integrations).

    ``hooks`` lets ``subscribe <Azure DevOps URL>`` set up the project's service hooks; ``base_dir`` is
    where relative paths in the settings (apps' contract files, job files) are found.
    """
    clock = clock or SystemClock()
    policy = Policy(settings)
    outbox = OutboxWorker(store, {}, clock, ops_channel=_ops_targets(settings), conversation_names=_names(settings))
    ingest = Ingest(store, configured_subscriptions(settings), clock, on_enqueued=outbox.wake)
    gatekeeper = Gatekeeper(
        store,
        policy,
        ingest,
        clock,
        pipelines,
        ml=ml,
        organization=organization_name(settings),
        ops_channel=_ops_targets(settings),
    )
    ingest.observers.append(gatekeeper.observe)
    ingest.on_unrouted_approval = gatekeeper.unrouted
    consumers = Consumers(settings, ml, base_dir)
    model_handoff = ModelHandoff(
        settings, store, ingest, gatekeeper, clock, consumers, pipelines=pipelines, poll_interval=poll_interval
    )
    ingest.observers.append(model_handoff.observe)
    projects = settings.azure_devops.projects if settings.azure_devops is not None else None
    chat = ChatHandler(store, policy, gatekeeper, ingest, clock, hooks=hooks, projects=projects)
    runner = CommandRunner(
        settings,
        store,
        ingest,
        clock,
        ml=ml,
        pipelines=pipelines,
        poll_interval=poll_interval,
        base_dir=base_dir,
        policy=policy,
        cancel_release=gatekeeper.cancel_unstarted_release,
    )
    runner.register(chat)
    ingest.observers.append(runner.observe)
    ModelCommands(settings, store, consumers).register(chat)
    handoff = Handoff(
        settings, store, clock, ingest, gatekeeper, chat, outbox, pipelines=pipelines, ml=ml, runner=runner
    )
    handoff.model_handoff = model_handoff
    # (closers run last first: the services outlive their users, the ingest the work that hands it events)
    handoff.closers.append(ingest.close)
    handoff.closers.append(runner.close)
    handoff.closers.append(model_handoff.close)
    for service in (pipelines, ml, hooks):
        if service is not None:
            handoff.closers.insert(0, service.close)
    return handoff


def build_services(settings: Settings, base_dir: Path | None = None) -> dict[str, Any]:
    """The Azure DevOps and Azure ML clients for the enabled sections (nothing is contacted yet)."""
    services: dict[str, Any] = {}
    if settings.azure_devops and settings.azure_devops.enabled:
        from adapters.azure_devops.pipelines import AzureDevOpsPipelines

        services["pipelines"] = AzureDevOpsPipelines.from_settings(settings.azure_devops)
        if settings.server.public_url:
            from adapters.azure_devops.provisioner import AzureDevOpsHookProvisioner

            services["hooks"] = AzureDevOpsHookProvisioner(settings)
    if settings.azure_ml and settings.azure_ml.enabled:
        from adapters.azure_ml.service import AzureMLService

        services["ml"] = AzureMLService(settings.azure_ml, base_dir=base_dir)
    return services


def add_channel(handoff: Handoff, platform: Platform, channel: ChatChannel) -> None:
    handoff.channels[platform] = channel
    handoff.outbox.channels[platform] = channel


def _mount_integrations(app: web.Application, handoff: Handoff) -> None:
    settings = handoff.settings
    if settings.slack and settings.slack.enabled:
        from adapters.slack.mount import mount_slack

        engine = getattr(handoff.store, "engine", None)
        slack = mount_slack(
            app,
            settings.slack,
            handoff.chat,
            engine,
            clock=handoff.clock,
            conversations=handoff.store,
            events=handoff.store,
        )
        add_channel(handoff, "slack", slack.channel)
        handoff.closers.append(slack.close)
    if settings.teams and settings.teams.enabled:
        from adapters.teams.mount import mount_teams

        teams = mount_teams(app, settings.teams, handoff.chat, handoff.store, clock=handoff.clock, events=handoff.store)
        add_channel(handoff, "teams", teams.channel)
        handoff.closers.append(teams.close)
    if settings.azure_devops and settings.azure_devops.enabled:
        from adapters.azure_devops.hooks_route import add_azure_devops_hooks

        pipelines = handoff.pipelines
        details = pipelines.approval_details if pipelines else None
        run_details = pipelines.run_status if pipelines else None
        identities = pipelines.approver_identities if pipelines else None
        me = pipelines.own_identity if pipelines else None
        project_id = pipelines.project_id if pipelines else None
        add_azure_devops_hooks(
            app,
            settings.azure_devops,
            handoff.ingest,
            details,
            run_details,
            identities,
            own_identity=me,
            depends_on_actor=handoff.ingest.depends_on_actor,
            depends_on_run_facts=handoff.ingest.depends_on_run_facts,
            model_pipelines=ModelPipelines.of(settings),
            project_id=project_id,
            hook_timeout=settings.server.hook_timeout.total_seconds(),
        )
    if settings.eventgrid and settings.eventgrid.enabled:
        from adapters.azure_ml.eventgrid_route import PATH as EVENTGRID_PATH
        from adapters.azure_ml.eventgrid_route import add_eventgrid_route

        workspace = settings.azure_ml if settings.azure_ml and settings.azure_ml.enabled else None
        hook_timeout = settings.server.hook_timeout.total_seconds()
        add_eventgrid_route(app, settings.eventgrid, handoff.ingest, workspace, hook_timeout)
        alias_trailing_slash(app, EVENTGRID_PATH)


def create_app(
    settings: Settings,
    store: Store,
    metrics: Metrics | None = None,
    handoff: Handoff | None = None,
) -> web.Application:
    """Handoff's web application on an already opened store.

    With ``handoff`` given (see :func:`build_handoff`), the ingest routes of the enabled integrations
    are mounted and the background work (outbox, housekeeping) runs while the application runs.
    """
    limits: dict[str, int] = {}
    quiet_client_errors()
    app = web.Application(
        middlewares=[edge_middleware],
        client_max_size=APP_BODY_LIMIT,
        handler_args=web_limits.SERVER_SETTINGS,  # bodies decoded by the edge, not by aiohttp
    )
    app[BODY_LIMITS] = limits
    app[DRAINING] = Draining()
    app[STORE] = store
    app[METRICS] = metrics or Metrics()
    add_health_routes(app, handoff.clock if handoff is not None else None)
    add_app_pages(app)  # the Teams package links its about, privacy and terms pages here
    if handoff is not None:
        app[HANDOFF] = handoff
        handoff.outbox.observer = app[METRICS].outbox
        _mount_integrations(app, handoff)
        if handoff.background:
            app[BACKGROUND] = BackgroundWork(handoff)
            app.cleanup_ctx.append(_background)
    return app


class BackgroundWork:
    """Handoff's background work while its application runs (outbox, command runs, housekeeping), and the
    closing of its clients: stopped once, whichever asks first (the application's cleanup, or :meth:`RunningServer.
    stop_work` while it still serves)."""

    def __init__(self, handoff: Handoff) -> None:
        self.handoff = handoff
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped: asyncio.Future[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.handoff.run_background(self._stop), name="handoff-background")

    async def stop(self) -> None:
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop_once())
        await asyncio.shield(self._stopped)

    async def _stop_once(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=5)
            except TimeoutError:
                self._task.cancel()
        await self.handoff.close()


BACKGROUND = web.AppKey("handoff_background", BackgroundWork)


async def _background(app: web.Application) -> AsyncIterator[None]:
    work = app[BACKGROUND]
    work.start()
    yield
    await work.stop()


async def upgrade_store(settings: Settings) -> str:
    """Migrate the configured store to the latest schema; returns the revision reached.

    Creates a SQLite file, and a PostgreSQL ``?schema=``, that do not exist yet. Raises ``StoreUrlUnreadable``,
    ``StoreUnavailable`` (an ``OSError``) or a ``StoreNotUsable`` saying what to do.
    """
    store = await SqlStore.open(settings.store.url, migrate=False)
    try:
        return await store.migrate()
    finally:
        await store.close()


async def read_audit(settings: Settings, since: timedelta | None = None) -> list[AuditEntry]:
    """The audit log of the configured store, oldest first (``since``: only that far back).

    Creates nothing: raises what is wrong with the store (see :meth:`SqlStore.check_revision`), or
    ``NoDatabase`` for a SQLite file that is not there.
    """
    store = await SqlStore.open(settings.store.url, migrate=False, create=False)
    try:
        await store.check_revision()
        cutoff = datetime.now(UTC) - since if since is not None else None
        return await store.list_audit(cutoff)
    finally:
        await store.close()


@dataclass
class RunningServer:
    """A started Handoff: its address, and how to stop it gracefully."""

    app: web.Application
    runner: web.AppRunner
    host: str
    port: int
    store: Store
    handoff: Handoff | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop_work(self) -> None:
        """Stop Handoff's background work (the outbox, command runs, housekeeping) and close its clients, while it
        still answers requests: what it serves itself (the demo's emulators) is still there for the work's last
        calls. :meth:`stop` does it too, after it stopped accepting."""
        if BACKGROUND in self.app:
            await self.app[BACKGROUND].stop()

    async def stop(self, drain: float = 0.0) -> None:
        """Stop accepting, let in-flight requests finish (up to the shutdown timeout), close the store.

        With ``drain``, for up to that many seconds after it stops listening (less once every connection has
        closed), requests arriving on connections already open are answered 503 with ``Connection: close``
        instead of being cut off with their connection (see :mod:`adapters.web.draining`)."""
        if drain > 0:
            for site in list(self.runner.sites):
                await site.stop()
            self.app[DRAINING].active = True
            server = self.runner.server
            deadline = asyncio.get_running_loop().time() + drain
            # (aiohttp tells nothing when a connection closes: look a few times)
            while server is not None and server.connections and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(DRAIN_POLL_SECONDS)
        await self.runner.cleanup()
        await self.store.close()


async def start_server(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    *,
    clock: Clock | None = None,
    services: dict[str, Any] | None = None,
    base_dir: Path | None = None,
) -> RunningServer:
    """Open and migrate the store, then serve Handoff on ``host:port`` (port 0 picks a free one).

    ``services`` replaces the Azure clients built from the settings (``pipelines``, ``ml``);
    ``base_dir`` is where relative paths in the settings (job files) are found.
    """
    store = await SqlStore.open(settings.store.url)
    runner: web.AppRunner | None = None
    try:
        chosen = build_services(settings, base_dir) if services is None else services
        handoff = build_handoff(settings, store, clock, base_dir=base_dir, **chosen)
        app = create_app(settings, store, handoff=handoff)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=settings.server.shutdown_timeout.total_seconds(),
            keepalive_timeout=web_limits.IDLE_TIMEOUT,  # also what an idle or half-sent request has
        )
        await runner.setup()
        bind_host = host or settings.server.host
        site = web.TCPSite(runner, bind_host, settings.server.port if port is None else port)
        await site.start()
    except BaseException:
        if runner is not None:  # its start-up opened the integrations' HTTP sessions and background work
            with contextlib.suppress(Exception):  # the error that stopped the start is the one to report
                await runner.cleanup()
        await store.close()
        raise
    bound = runner.addresses[0]
    return RunningServer(app, runner, bind_host, int(bound[1]), store, handoff)


async def serve_until_stopped(
    settings: Settings, host: str | None = None, port: int | None = None, base_dir: Path | None = None
) -> int:
    """Run until SIGTERM or SIGINT, then shut down gracefully; returns the exit status. ``base_dir``: where
    relative job and contract files are found (the configuration's folder, as ``handoff check`` looks)."""
    server = await start_server(settings, host, port, base_dir=base_dir)
    # what start-up built (modules, SDK clients, the app) lives as long as the process: leaving it out
    # of the collector's full passes keeps those short while events arrive
    gc.freeze()
    log.info("Handoff is listening on %s", server.url)
    try:
        await until_signalled()
        log.info("stopping: finishing in-flight work")
    finally:
        await server.stop(drain=min(SHUTDOWN_DRAIN_SECONDS, settings.server.shutdown_timeout.total_seconds()))
    log.info("stopped")
    return 0


def teams_package(settings: Settings, out: Path) -> Path:
    """Write the Teams app package for these settings (raises ValueError saying what to fix)."""
    from adapters.teams.package import PackageError, build_teams_package

    assert settings.teams is not None
    try:
        return build_teams_package(settings.teams, settings.server.public_url, out)
    except PackageError as error:
        raise ValueError(str(error)) from None


def slack_manifest(public_url: str) -> str:
    """The Slack app manifest with every request URL on ``public_url``, an https URL (raises ValueError
    whose message reads after the URL's name, "… must be an https URL …")."""
    from adapters.slack.manifest import render_manifest

    return render_manifest(public_url, https_only=True)


# --- connecting to the real services, and checking them -------------------------------------------------


@dataclass(frozen=True)
class CommandReport:
    """What ``handoff connect`` or ``handoff doctor`` found: lines to print (no secrets), and whether all went well."""

    lines: list[str]
    ok: bool


@dataclass(frozen=True)
class ChatFilters:
    """The filters of the subscriptions made from chat, as the store holds them."""

    filters: list[dict[str, Any]]
    # why the store holds no Handoff data yet (then there are no filters); None when it was read
    unused_store: str | None = None


async def read_chat_filters(settings: Settings) -> ChatFilters:
    """The filters of the subscriptions made from chat, for planning service hooks. Creates nothing (not even
    a SQLite file: ``connect`` only reads the store, and its dry run must change nothing).

    Raises ``StoreUrlUnreadable``, ``StoreUnavailable`` (an ``OSError``: the store does not answer) or a
    ``StoreNotUsable`` (a schema older or newer than this Handoff's): service hooks must not be planned
    without the chat subscriptions, or the hooks only they need would be deleted.

    A store with no Handoff data yet (no SQLite file there, or a database never migrated) holds no chat
    subscriptions, so hooks can be planned from the configuration alone. But a mistyped ``store.url``, or a
    relative SQLite path run from another folder, looks just the same: the caller then deletes no hook.
    """
    url = settings.store.url
    try:
        store = await SqlStore.open(url, migrate=False, create=False)
    except NoDatabase as error:
        return ChatFilters([], f"no database at {error.path}")
    try:
        if await store.read_revision() is None:
            return ChatFilters([], f"{shown_url(url)} is not migrated")
        await store.check_revision()
        try:
            subscriptions = await store.list_subscriptions()
        except STORE_ERRORS as error:  # (the revision was just read: a connection lost meanwhile)
            raise StoreUnavailable(f"{shown_url(url)}: {type(error).__name__}") from error
        return ChatFilters([dict(s.filters) for s in subscriptions])
    finally:
        await store.close()


async def connect_azure_devops(
    settings: Settings,
    dry_run: bool = False,
    *,
    deadline: float | None = None,
    echo: Callable[[str], None] | None = None,
) -> CommandReport:
    """``handoff connect azure-devops``: plan (and unless ``dry_run`` apply) Handoff's service hooks.

    ``deadline``: the seconds each call to Azure DevOps may take (none by default); ``echo`` gets each line
    of the report as soon as it is known. Raises what is wrong with the store before anything is planned
    (see :func:`read_chat_filters`).
    """
    from adapters.azure_devops.connect import connect_azure_devops as connect

    chat = await read_chat_filters(settings)
    notes = []
    if chat.unused_store is not None:
        notes.append(
            f"store: {chat.unused_store}, so no chat subscriptions yet: no service hook is deleted "
            "(check store.url if Handoff already runs on it)"
        )
    if echo is not None:
        for note in notes:
            echo(note)
    report = await connect(
        settings,
        dry_run=dry_run,
        chat_filters=chat.filters,
        remove_stale=chat.unused_store is None,
        deadline=deadline,
        echo=echo,
    )
    return CommandReport(notes + report.lines, report.ok)


async def connect_azure_ml(
    settings: Settings,
    dry_run: bool = False,
    *,
    deadline: float | None = None,
    echo: Callable[[str], None] | None = None,
) -> CommandReport:
    """``handoff connect azure-ml``: plan (and unless ``dry_run`` apply) Handoff's Event Grid subscriptions.

    ``deadline``: the seconds each lookup in Azure may take (none by default); ``echo`` gets each line of
    the report as soon as it is known.
    """
    from adapters.azure_ml.connect import connect_azure_ml as connect

    report = await connect(settings, dry_run=dry_run, deadline=deadline, echo=echo)
    return CommandReport(report.lines, report.ok)


async def run_doctor(
    settings: Settings,
    *,
    teams_http_client: Any = None,
    deadline: float | None = None,
    echo: Callable[[str], None] | None = None,
) -> CommandReport:
    """``handoff doctor``: check each configured integration for real, one line per check.

    ``deadline``: the seconds a check waits for a service (20 by default); ``echo`` gets each line as soon
    as it is known.
    """
    from adapters.doctor import DEADLINE, Check, Status, run_checks

    def line(check: Check) -> None:
        if echo is not None:
            echo(check.line())

    checks = await run_checks(
        settings, teams_http_client=teams_http_client, deadline=DEADLINE if deadline is None else deadline, echo=line
    )
    failed = sum(1 for c in checks if c.status is Status.FAIL)
    warned = sum(1 for c in checks if c.status is Status.WARN)
    summary = f"{len(checks)} checks: {failed} failed, {warned} warning(s)"
    if echo is not None:
        echo(summary)
    return CommandReport([c.line() for c in checks] + [summary], failed == 0)
