"""Running on one machine: the emulators, and Handoff wired to them (``handoff demo``, ``handoff emulators``).

It is kept apart from :mod:`bot.app` so that ``handoff emulators`` starts without loading the store,
the ORM or the chat SDKs.

:func:`local_world` is the world the demo and the end-to-end tests use; :func:`local_config` is a
Handoff configuration for a running :class:`EmulatorSuite` (every secret generated, none written to
disk); :func:`connect_emulators` points the emulators' webhooks, Event Grid subscription, Slack
request URL and Teams messaging endpoint at Handoff, as ``handoff connect`` does for real services.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import secrets
import socket
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml
from aiohttp import web

from adapters.azure_devops.hook_plan import KIND_EVENT_TYPES
from adapters.emulators.azure_devops.world import load_default_world as default_azure_devops_world
from adapters.emulators.suite import EmulatorSuite, WorldFileError, load_world
from bot.config import is_loopback_host
from bot.lifecycle import until_signalled

BOT_IDENTITY = "handoff-bot@contoso.com"
HOOK_USER = "handoff"

DATABASE = "handoff.db"
DEMO_MARKER = ".handoff-demo"  # in the demo's folder: the database there is the demo's to replace


def local_world() -> dict[str, Any]:
    """The shipped world, with Handoff's own identity among the production approvers.

    Azure DevOps records the identity of the token as the approver, so the bot's identity must be an
    approver for Handoff to apply decisions made in chat (reference: azure-devops.md §2.1).
    """
    ado = copy.deepcopy(default_azure_devops_world())
    for environment in ado.get("environments", []):
        approval = environment.get("approval")
        if approval and BOT_IDENTITY not in approval.get("approvers", []):
            approval["approvers"] = [*approval["approvers"], BOT_IDENTITY]
    return {"azure_devops": ado}


def _slack_channel(suite: EmulatorSuite, name: str) -> str:
    return str(suite.slack.state.channel(name).id)


def _teams_channel(suite: EmulatorSuite, name: str) -> str:
    return str(suite.teams.state.channel(name).id)


def integration_config(suite: EmulatorSuite) -> tuple[dict[str, Any], dict[str, str]]:
    """The integration sections of a Handoff configuration (raw YAML data) pointed at ``suite``, and the
    environment with their secrets: the emulators' own fake credentials, and hook secrets made now."""
    environ = {
        "LOCAL_SLACK_SIGNING_SECRET": suite.slack.signing_secret,
        "LOCAL_SLACK_BOT_TOKEN": suite.slack.bot_token,
        "LOCAL_AZURE_DEVOPS_PAT": _azure_devops_pat(suite),
        "LOCAL_HOOK_PASSWORD": secrets.token_urlsafe(24),
        "LOCAL_EVENTGRID_SECRET": secrets.token_urlsafe(24),
    }
    aml = suite.aml.world
    config: dict[str, Any] = {
        "slack": {
            "signing_secret": "${LOCAL_SLACK_SIGNING_SECRET}",
            "bot_token": "${LOCAL_SLACK_BOT_TOKEN}",
            "api_base_url": suite.slack.api_url,
        },
        "teams": {
            "app_id": "",
            "allow_unauthenticated": True,
            # the emulator's Graph view: a post whose answer was lost is found, not posted twice
            "graph": {"find_lost_posts": True, "api_url": suite.teams.graph_url, "login_url": suite.teams.login_url},
        },
        "azure_devops": {
            "organization_url": suite.ado.org_url,
            "projects": [suite.ado.world.project],
            "pat": "${LOCAL_AZURE_DEVOPS_PAT}",
            "service_hooks": {"basic": {"username": HOOK_USER, "password": "${LOCAL_HOOK_PASSWORD}"}},
        },
        "azure_ml": {
            "subscription_id": aml.subscription_id,
            "resource_group": aml.resource_group,
            "workspace": aml.workspace,
            "credential": {"kind": "emulator"},
            "endpoint": suite.urls["aml"],
            "studio_url": f"{suite.urls['aml']}/studio",
        },
        "eventgrid": {
            "delivery_secret": "${LOCAL_EVENTGRID_SECRET}",
            # news only from the lake's declared folders, as a real deployment would watch
            "data_lake_paths": [
                {"storage_account": lake.account, "filesystem": lake.filesystem, "path": path}
                for lake in ([aml.lake] if aml.lake is not None else [])
                for path in lake.paths or ("",)
            ],
            "portal_url": f"{suite.urls['aml']}/portal",
        },
    }
    return config, environ


def _azure_devops_pat(suite: EmulatorSuite) -> str:
    """The PAT of Handoff's own identity in the world (of its first identity with one, for a world without it)."""
    bot = suite.ado.world.identity(BOT_IDENTITY)
    if bot is not None and bot.pat:
        return bot.pat
    return next((i.pat for i in suite.ado.world.identities if i.pat), "")


def local_config(suite: EmulatorSuite, public_url: str, data_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """A Handoff configuration (raw YAML data) for ``suite``, and the environment with its secrets."""
    integrations, environ = integration_config(suite)
    job_file = suite.aml.write_job_yaml("train-model-x", data_dir)
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "public_url": public_url},
        "store": {"url": f"sqlite:///{data_dir / DATABASE}"},
        **integrations,
        "channels": {
            "ml-models": {
                "slack": _slack_channel(suite, "ml-models"),
                "teams": _teams_channel(suite, "ML models"),
                "description": "Data scientists",
            },
            "app-releases": {
                "slack": _slack_channel(suite, "app-releases"),
                "teams": _teams_channel(suite, "App releases"),
                "description": "App developers",
            },
            "ops": {"slack": _slack_channel(suite, "ops")},
        },
        "ops_channel": "ops",
        "subscriptions": [
            {
                "channel": "ml-models",
                "events": ["model_registered", "model_deployed", "training_run", "data_drift", "data_arrived"],
            },
            {"channel": "app-releases", "events": ["run", "approval"], "pipelines": ["integrate-*", "release-*"]},
        ],
        "models": {
            "model-x": {
                "retrain": {"azure_ml_job": {"job_file": str(job_file)}},
                "consumers": ["app-y"],
                "channels": ["ml-models"],
                # a new version opens a gate; its approval releases app-y with that version
                "promotion_gate": {
                    "release": {"project": suite.ado.world.project, "pipeline": "release-app-y"},
                    "policy": "model-promotion",
                },
            }
        },
        "apps": {
            "app-y": {
                "integration": {"project": suite.ado.world.project, "pipeline": "integrate-app-y"},
                "model": "model-x",
                "channels": ["app-releases"],
                # the app developer, called on when app-y's integration with a new version fails
                "owners": [suite.slack.world.user("bob").email],
            }
        },
        "roles": {
            "data-scientists": {"members": ["alice@contoso.com"]},
            "release-managers": {"members": ["carol@contoso.com"]},
        },
        "gates": {
            "default": {"approver_roles": ["release-managers"], "expire_after": "1h", "remind_every": "30m"},
            "model-promotion": {
                "approver_roles": ["release-managers"],
                "override_roles": ["release-managers"],
                "expire_after": "24h",
            },
        },
        "commands": {"retrain": {"roles": ["data-scientists"], "confirm": True}},
    }
    return config, environ


async def connect_emulators(suite: EmulatorSuite, public_url: str, environ: dict[str, str]) -> None:
    """Point every emulator at Handoff and install the bot in the Teams team (Handoff must be listening)."""
    # the event types ``handoff connect`` subscribes a real organization to (no build.complete, for one)
    hooked = sorted({event_type for types in KIND_EVENT_TYPES.values() for event_type in types})
    hook_url = f"{public_url}/hooks/azure-devops"
    suite.ado.add_webhook(hook_url, hooked, basic=(HOOK_USER, environ["LOCAL_HOOK_PASSWORD"]))
    await suite.aml.add_event_subscription(
        f"{public_url}/hooks/eventgrid",
        schema="CloudEventSchemaV1_0",
        secret_query=("code", environ["LOCAL_EVENTGRID_SECRET"]),
    )
    suite.slack.events_url = f"{public_url}/slack/events"
    suite.teams.bot_endpoint = f"{public_url}/api/messages"
    await suite.teams.install_app()


async def serve_emulators(host: str, port: int, world_file: str | None) -> int:
    """Serve the four emulators until SIGTERM or SIGINT, printing first their URLs and the configuration
    (and environment) that points Handoff at them.

    Raises:
        WorldFileError: the world file cannot be read, or a section of it does not fit its emulator.
    """
    suite = emulator_suite(load_world(world_file), world_file, host, port)
    await suite.start()
    signalled = asyncio.create_task(until_signalled())
    try:
        await asyncio.sleep(0)  # its handlers are in place before "Ctrl-C stops them." invites a Ctrl-C
        if suite.listens_everywhere:
            print(
                f"Listening on all interfaces ({suite.bound_to}); the URLs below reach them from this machine, "
                "where Handoff's configuration allows plain http.",
                flush=True,
            )
        elif not is_loopback_host(urlsplit(suite.url).hostname or ""):
            print(
                f"Listening on {suite.bound_to} only: Handoff's configuration allows plain http only to this "
                "machine (127.0.0.1, ::1, localhost), so `handoff check` refuses the URLs below; "
                "bind 127.0.0.1 or 0.0.0.0 to run Handoff against them.",
                flush=True,
            )
        print(f"Azure DevOps   {suite.ado.org_url}   (project {suite.ado.world.project})", flush=True)
        print(f"Azure ML       {suite.urls['aml']}", flush=True)
        print(f"Bot Framework  {suite.teams.service_url}", flush=True)
        print(f"Slack Web API  {suite.slack.api_url}", flush=True)
        print(configuration_for(suite), flush=True)
        print("Ctrl-C stops them.", flush=True)
        await signalled
    finally:
        signalled.cancel()
        await suite.stop()
    return 0


def emulator_suite(world: dict[str, Any], world_file: str | None, host: str, port: int) -> EmulatorSuite:
    """The emulators for ``world`` (read from ``world_file``); a section that does not fit its emulator is
    named in a :class:`WorldFileError`, never a traceback."""
    try:
        return EmulatorSuite(world, host=host, port=port)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        section = next((name for name in world if not _section_fits(name, world[name])), None)
        where = f"the {section} section" if section else "a section"
        raise WorldFileError(
            f"{world_file}: {where} does not fit its emulator ({type(error).__name__}: {error}); "
            "the shipped default_world.yaml of each emulator under adapters/emulators/ shows the shape"
        ) from None


def _section_fits(name: str, section: Any) -> bool:
    try:
        EmulatorSuite({name: section})
    except (TypeError, ValueError, KeyError, AttributeError):
        return False
    return True


def configuration_for(suite: EmulatorSuite) -> str:
    """What to put in handoff.yaml, and in the environment, to run Handoff against ``suite``."""
    config, environ = integration_config(suite)
    exports = "\n".join(f"export {name}={value}" for name, value in environ.items())
    return (
        "\n# handoff.yaml sections for these emulators (add server, channels and subscriptions):\n"
        f"{yaml.safe_dump(config, sort_keys=False)}"
        f"{_channel_ids(suite)}"
        "\n# The environment they read. The Slack and Azure DevOps values are the emulators' own fake "
        "credentials,\n# the hook secrets were made now: none of them is a real secret.\n"
        f"{exports}\n"
    )


def _channel_ids(suite: EmulatorSuite) -> str:
    """The channels the emulated Slack workspace and Teams teams have, by the ids a ``channels`` section takes."""
    lines = ["\n# Their channels, by the ids the channels section takes (slack: <id>, teams: <id>):"]
    slack = suite.slack.world
    lines += [f"#   Slack #{c.name}: {c.id}" for c in slack.channels]
    lines += [f"#   Teams {t.name} / {c.name}: {c.id}" for t in suite.teams.world.teams for c in t.channels]
    return "\n".join(lines) + "\n"


if TYPE_CHECKING:
    from bot.app import RunningServer


@dataclass
class Demo:
    """Handoff, the four emulators and the console, served together on one port."""

    suite: EmulatorSuite
    server: RunningServer
    environ: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def console_url(self) -> str:
        return f"{self.server.url}/console/"

    async def stop(self) -> None:
        """Stop the bot first (its outbox, command runs and clients), then the server and the emulators with it:
        the bot's last calls still find the emulators it calls."""
        await self.server.stop_work()
        await self.server.stop()


class NotTheDemosFolder(Exception):
    """``--data-dir`` holds a database the demo did not make (a real Handoff's, say): it is left alone."""


def _fresh_database(data_dir: Path) -> Path:
    """Remove the previous demo's database: the emulators start empty, and a history that names their
    old messages, runs and commands would only confuse the new demo (cards that cannot be updated, a
    retrain taken for the one asked for last time). Only a folder the demo made is emptied (its marker, or
    the default ``.handoff/demo`` of demos before the marker): a database there of anything else raises
    :class:`NotTheDemosFolder`. Returns the folder's absolute path."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    marker = data_dir / DEMO_MARKER
    ours = marker.exists() or (data_dir.name, data_dir.parent.name) == ("demo", ".handoff")
    if (data_dir / DATABASE).exists() and not ours:
        raise NotTheDemosFolder(
            f"{data_dir} holds a {DATABASE} the demo did not make, and the demo starts from an empty one: "
            "point --data-dir at a folder of its own"
        )
    marker.write_text("The folder of `handoff demo`: its database is replaced each time the demo starts.\n")
    for name in (DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm"):
        (data_dir / name).unlink(missing_ok=True)
    return data_dir


async def start_demo(port: int, data_dir: Path, host: str = "127.0.0.1") -> Demo:
    """Start everything in this process: a new SQLite database under ``data_dir``, the emulators, the bot
    and the console."""
    # imported here so that `handoff emulators` starts without the store, the ORM or the chat SDKs
    from adapters.console import mount_console
    from adapters.sql import SqlStore
    from bot.app import RunningServer, build_handoff, build_services, create_app
    from bot.config import configured_secrets, parse_settings
    from bot.logs import redact_also

    # absolute: the configuration names the job file under it, and the services read files from it
    data_dir = await asyncio.to_thread(_fresh_database, data_dir)
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind((host, port))
    public_url = f"http://{host}:{listening.getsockname()[1]}"
    suite = EmulatorSuite(local_world())
    suite.served_at(public_url)
    config, environ = local_config(suite, public_url, data_dir)
    settings = parse_settings(config, environ, source="handoff demo")
    redact_also(configured_secrets(settings))
    store = await SqlStore.open(settings.store.url)
    try:
        handoff = build_handoff(settings, store, **build_services(settings, data_dir))
        app = create_app(settings, store, handoff=handoff)
        suite.mount_into(app)
        mount_console(app, suite, user_switcher=["alice", "bob", "carol"])

        async def home(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound("/console/")

        app.router.add_get("/", home)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2)
        await runner.setup()
        await web.SockSite(runner, listening).start()
    except BaseException:
        listening.close()
        await store.close()
        raise
    server = RunningServer(app, runner, host, int(listening.getsockname()[1]), store, handoff)
    await connect_emulators(suite, public_url, environ)
    return Demo(suite, server, environ)


async def run_demo(port: int, data_dir: Path, open_browser: bool, scenario: bool) -> int:
    """``handoff demo``: serve until Ctrl-C, optionally playing the scripted day."""
    demo = await start_demo(port, data_dir)
    signalled = asyncio.create_task(until_signalled())
    story: asyncio.Task[None] | None = None
    try:
        await asyncio.sleep(0)  # its handlers are in place before "Ctrl-C stops" invites a Ctrl-C
        print(f"Handoff demo: open {demo.console_url}", flush=True)
        print(f"(bot, emulators and console on {demo.url}; data in {data_dir}; Ctrl-C stops)", flush=True)
        if open_browser:
            with contextlib.suppress(Exception):
                webbrowser.open(demo.console_url)
        story = asyncio.create_task(play_scenario(demo)) if scenario else None
        if story is not None:
            story.add_done_callback(_tell_if_stopped)
        await signalled
    finally:
        signalled.cancel()
        if story is not None:
            story.cancel()
        await demo.stop()
    return 0


def _tell_if_stopped(story: asyncio.Task[None]) -> None:
    """Say why the scripted day stopped before its end (the demo goes on serving for the console)."""
    if story.cancelled() or story.exception() is None:
        return
    error = story.exception()
    print(f"scenario: stopped ({type(error).__name__}: {error}); the demo goes on, Ctrl-C stops", flush=True)


async def play_scenario(demo: Demo, pause: float = 2.0, say: Callable[[str], None] = print) -> None:
    """A scripted day: data lands, a retrain registers model-x:8, app-y's integration fails then passes,
    and the release gate is approved from chat. Every step shows in the console as it happens."""
    suite = demo.suite
    slack = suite.slack
    lake = suite.aml.world.lake
    folder = lake.paths[0] if lake is not None and lake.paths else "raw/"
    path = f"{folder}customers-{datetime.now(UTC):%Y%m%d}.parquet"

    async def step(text: str) -> None:
        say(f"scenario: {text}")
        await asyncio.sleep(pause)

    await step("new customer data lands in the lake")
    suite.aml.land_blob(path, 48_000_000)
    await step("alice asks for a retrain in #ml-models")
    await slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="alice")
    confirm = await _wait_for(lambda: _ephemeral_button(slack, "alice", "confirm"))
    await step("alice confirms")
    await slack.click_button(confirm[0], "confirm", user="alice", value=confirm[1])
    await _wait_for(lambda: _registered_version(suite), timeout=120)
    version = _registered_version(suite)
    await step(f"model-x:{version} is registered; bob integrates it into app-y, and the run fails")
    suite.ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    await slack.send_slash_command("/integrate", f"app-y model=model-x:{version}", channel="app-releases", user="bob")
    await _wait_for(lambda: _last_run_done(suite, "integrate-app-y", 1), timeout=120)
    await step("the fix is in; bob runs the integration again and it passes")
    await slack.send_slash_command(
        "/integrate", f"app-y model=model-x:{version} branch=fix/age-dtype", channel="app-releases", user="bob"
    )
    await _wait_for(lambda: _last_run_done(suite, "integrate-app-y", 2), timeout=120)
    await step("bob starts the release; the production gate asks for approval in Slack and Teams")
    suite.ado.start_run(
        "release-app-y",
        requested_by="bob@contoso.com",
        parameters={"modelName": "model-x", "modelVersion": str(version)},
    )
    gate = await _wait_for(lambda: _gate_message(slack, "app-releases"), timeout=120)
    await step("carol, a release manager, approves the gate from Slack")
    opened = set(slack.state.views)
    await slack.click_button(gate.ts, "approve", user="carol")
    view = await _wait_for(lambda: next(iter(set(slack.state.views) - opened), None))
    await slack.submit_view(view, {"comment": {"comment": "Integration is green on model-x:" + str(version)}})
    await _wait_for(lambda: _last_run_done(suite, "release-app-y", 1), timeout=120)
    say("scenario: the release finished; every card shows its final state")


def _gate_message(slack: Any, channel: str) -> Any:
    for message in reversed(slack.state.channel(channel).messages):
        if any(
            element.get("action_id") == "approve"
            for block in message.blocks or []
            for element in block.get("elements", [])
        ):
            return message
    return None


def _ephemeral_button(slack: Any, user: str, action_id: str) -> tuple[str, str] | None:
    for message in reversed(slack.state.ephemeral_for(user)):
        for block in message.blocks or []:
            for element in block.get("elements", []):
                if element.get("action_id") == action_id:
                    return message.ts, str(element.get("value", ""))
    return None


def _registered_version(suite: EmulatorSuite) -> str | None:
    versions = suite.aml.state.model_versions("model-x")
    newest = max((int(v.version) for v in versions), default=0)
    return str(newest) if newest > 7 else None


def _last_run_done(suite: EmulatorSuite, pipeline: str, count: int) -> bool:
    runs = [r for r in suite.ado.runs if r.pipeline.name == pipeline]
    return len(runs) >= count and runs[count - 1].state == "completed"


async def _wait_for(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while (result := check()) is None or result is False:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the scenario waited too long for a step")
        await asyncio.sleep(0.2)
    return result
