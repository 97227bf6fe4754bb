"""The ``handoff`` command line (``python -m bot`` is the same)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot import __version__

if TYPE_CHECKING:
    from bot.config import Settings

DEFAULT_CONFIG = "handoff.yaml"
DEFAULT_TEAMS_PACKAGE = "handoff-teams.zip"
HIGHEST_PORT = 65535
CHECK_DEADLINE = 20.0  # seconds `doctor` and `connect` wait for a service's answer to one call

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_USAGE = 2  # as argparse exits on a command line it cannot use
EXIT_UNAVAILABLE = 3
EXIT_FAILED = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"the configuration file (default: {DEFAULT_CONFIG})",
    )


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (0 asks for a free one), as ``server.port`` allows."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, not {text!r}") from None
    if not 0 <= port <= HIGHEST_PORT:
        raise argparse.ArgumentTypeError(f"a port is 0 to {HIGHEST_PORT} (0: a free one), not {port}")
    return port


def seconds(text: str) -> float:
    """An argparse type: a number of seconds, more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected more than 0 seconds, not {text}")
    return value


def _timeout_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=CHECK_DEADLINE,
        metavar="SECONDS",
        help=f"how long {what} waits for a service before it fails as unanswered (default: %(default)g)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handoff",
        description="Handoff: MLOps team coordination on Microsoft Teams and Slack.",
    )
    parser.add_argument("--version", action="version", version=f"handoff {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run Handoff",
        description="Migrate the store, then serve Slack, Teams, Azure DevOps and Event Grid requests "
        "until SIGTERM or Ctrl-C. Refuses to start while the configuration has problems.",
    )
    _config_argument(serve)
    serve.add_argument("--host", help="address to bind (overrides server.host)")
    serve.add_argument("--port", type=port_number, help="port to bind, 0 for a free one (overrides server.port)")

    check = commands.add_parser(
        "check",
        help="validate a configuration file without starting anything",
        description="List every problem in the configuration, each with its key path. "
        "Exits 0 when the file is usable, 1 otherwise.",
    )
    _config_argument(check)

    demo = commands.add_parser(
        "demo",
        help="the whole loop on this machine: bot, emulators and a console in your browser",
        description="Run Handoff unchanged against local emulators of Azure DevOps, Azure ML, Teams and Slack, "
        "with SQLite, and show the channels in a web console. No cloud account needed; nothing leaves "
        "this machine. Ctrl-C stops it; each start begins a new day, as the emulators start empty.",
    )
    demo.add_argument(
        "--port", type=port_number, default=3978, help="port for everything (default: %(default)s; 0: a free one)"
    )
    demo.add_argument("--no-browser", action="store_true", help="don't open the console in a browser")
    demo.add_argument(
        "--data-dir",
        default=".handoff/demo",
        metavar="DIR",
        help="where the demo's SQLite database lives (default: %(default)s)",
    )
    demo.add_argument("--scenario", action="store_true", help="play a scripted day instead of waiting for you")

    emulators = commands.add_parser(
        "emulators",
        help="serve local Azure DevOps, Azure ML, Teams connector and Slack emulators",
        description="Serve the four emulators on one port (under /ado, /aml, /botframework and /slack) "
        "with a seeded world, print their URLs and the handoff.yaml sections and environment that point "
        "Handoff at them, and run until Ctrl-C. Nothing leaves this machine.",
    )
    emulators.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    emulators.add_argument("--port", type=port_number, default=0, help="port to bind (default: a free one)")
    emulators.add_argument("--world", metavar="FILE", help="a world file replacing the shipped default's sections")

    package = commands.add_parser(
        "teams-package",
        help="build the Teams app package (manifest and icons) for your bot",
        description="Fill the Teams manifest with teams.app_id (the registered bot's Microsoft App ID) and "
        "server.public_url (an https URL; the app's website, privacy and terms links are Handoff's /about, "
        "/privacy and /terms pages there), and write the zip to upload in Teams (Apps → Manage your apps → "
        "Upload an app). Exits 1, writing nothing, when the configuration or --out cannot be used.",
    )
    _config_argument(package)
    package.add_argument(
        "--out",
        default=DEFAULT_TEAMS_PACKAGE,
        metavar="ZIP",
        help=f"where to write the package (default: {DEFAULT_TEAMS_PACKAGE}); a folder (one that exists, or a "
        f"path ending in /) gets {DEFAULT_TEAMS_PACKAGE} inside it",
    )

    manifest = commands.add_parser(
        "slack-manifest",
        help="print the Slack app manifest for your public URL",
        description="Print the Slack app manifest (YAML) with every request URL on server.public_url; paste it "
        "at api.slack.com/apps → Create New App → From a manifest.",
    )
    _config_argument(manifest)
    manifest.add_argument("--public-url", help="overrides server.public_url")

    audit = commands.add_parser(
        "audit",
        help="export the audit log (decisions, refusals, commands)",
        description="Print the audit log, oldest first: who did what, where, when, with which comment and outcome.",
    )
    _config_argument(audit)
    audit.add_argument("--since", metavar="DURATION", help="only this far back, e.g. 7d or 12h (default: all)")
    audit.add_argument("--format", choices=("csv", "json"), default="csv", help="csv (default) or json lines")

    connect = commands.add_parser(
        "connect",
        help="create the service hooks or Event Grid subscriptions Handoff needs",
        description="Make a real Azure DevOps organization or Azure ML workspace deliver its events to "
        "server.public_url, idempotently: a second run changes nothing. Handoff must be running there "
        "for Event Grid's validation handshake.",
    )
    targets = connect.add_subparsers(dest="connect_target", metavar="SERVICE", required=True)
    for target, summary in (
        ("azure-devops", "service hooks in each project, for the event types Handoff's routing uses"),
        ("azure-ml", "Event Grid subscriptions on the workspace and the data-lake storage accounts"),
    ):
        sub = targets.add_parser(target, help=summary, description=f"Create or update {summary}.")
        _config_argument(sub)
        sub.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
        _timeout_argument(sub, "each lookup or change")

    doctor = commands.add_parser(
        "doctor",
        help="check each configured integration for real",
        description="Check the store, Azure DevOps (rights, service hooks), Azure ML (credential, workspace, "
        "Event Grid), Slack, Teams, and that server.public_url reaches Handoff. One line per check as it "
        "ends, with a fix hint; exits 4 when any check fails. Ctrl-C stops it.",
    )
    _config_argument(doctor)
    _timeout_argument(doctor, "each check")

    db = commands.add_parser("db", help="database maintenance", description="Database maintenance.")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_commands.add_parser(
        "upgrade",
        help="migrate the store to the latest schema",
        description="Apply every pending migration to the configured store (serve does this on start).",
    )
    _config_argument(upgrade)
    return parser


def _load(config: str, *, require_secrets: bool = True) -> object:
    """The settings, or None after printing the configuration's problems. ``require_secrets=False`` for a
    command that uses no secret: the operator may not have them yet (``slack-manifest`` makes the Slack app
    its token comes from)."""
    from bot.config import ConfigError, load_settings

    try:
        return load_settings(Path(config), require_secrets=require_secrets)
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return None


def _check(config: str) -> int:
    from bot.config import Settings
    from bot.config_warnings import configuration_warnings

    settings = _load(config)
    if not isinstance(settings, Settings):
        return EXIT_CONFIG
    warnings = configuration_warnings(settings)
    if not warnings:
        print(f"{config}: OK")
        return EXIT_OK
    # (serve starts with them: they are warnings, not problems)
    print(f"{config}: OK, with {len(warnings)} warning(s)")
    print("\n".join(f"  - warning: {warning}" for warning in warnings))
    return EXIT_OK


def _serve(config: str, host: str | None, port: int | None) -> int:
    from bot.config import Settings, configured_secrets, unauthenticated_teams_problem
    from bot.logs import configure_logging

    settings = _load(config)
    if not isinstance(settings, Settings):
        print("handoff serve: not starting until the configuration is fixed", file=sys.stderr)
        return EXIT_CONFIG
    if host is not None and (problem := unauthenticated_teams_problem(settings, host)):
        print(f"handoff serve: --host {host}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.server.log_level, settings.server.log_format, configured_secrets(settings))
    from adapters.sql.problems import StoreNotUsable, StoreUrlUnreadable
    from bot.app import serve_until_stopped
    from bot.lifecycle import run_server

    try:
        serving = serve_until_stopped(settings, host, port, Path(config).resolve().parent)
        return run_server(serving, settings.server.shutdown_timeout.total_seconds())
    except StoreUrlUnreadable as error:
        print(f"handoff serve: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as error:
        said = str(error)
        if error.errno == errno.EADDRINUSE:
            where = _address(host or settings.server.host, settings.server.port if port is None else port)
            said = (
                f"{where} is already in use: stop what listens there, or choose another port "
                "(--port, or server.port in the configuration)"
            )
        print(f"handoff serve: cannot start: {said}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except StoreNotUsable as error:
        print(f"handoff serve: cannot start: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def _address(host: str, port: int) -> str:
    """``host:port`` as a person types it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _db_upgrade(config: str) -> int:
    from bot.config import Settings

    settings = _load(config, require_secrets=False)
    if not isinstance(settings, Settings):
        return EXIT_CONFIG
    from adapters.sql.problems import StoreNotUsable, StoreUrlUnreadable
    from adapters.sql.store import StoreUnavailable
    from bot.app import upgrade_store

    try:
        revision = asyncio.run(upgrade_store(settings))
    except StoreUrlUnreadable as error:
        print(f"handoff db upgrade: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreNotUsable as error:  # it answered: not a matter of reaching it
        print(f"handoff db upgrade: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except OSError as error:
        # a server that answered with a refusal (no such database or role, a wrong password) was reached
        trouble = (
            "the store refused" if isinstance(error, StoreUnavailable) and error.refused else "cannot reach the store"
        )
        print(f"handoff db upgrade: {trouble}: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"store is at revision {revision}")
    return EXIT_OK


def _demo(port: int, data_dir: str, no_browser: bool, scenario: bool) -> int:
    from bot.logs import configure_logging

    configure_logging("WARNING")
    from adapters.demo import NotTheDemosFolder, run_demo

    try:
        return asyncio.run(run_demo(port, Path(data_dir), not no_browser, scenario))
    except NotTheDemosFolder as refused:
        print(f"handoff demo: cannot start: {refused}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        said = str(error)
        if error.errno == errno.EADDRINUSE:  # (the demo serves on this machine only)
            said = (
                f"{_address('127.0.0.1', port)} is already in use (a demo already running?): "
                "--port 0 picks a free port, or stop what listens there"
            )
        print(f"handoff demo: cannot start: {said}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def _emulators(host: str, port: int, world: str | None) -> int:
    from adapters.demo import serve_emulators

    try:
        return asyncio.run(serve_emulators(host, port, world))
    except ValueError as error:
        print(f"handoff emulators: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as error:
        print(f"handoff emulators: cannot start: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def _teams_package(config: str, out: str) -> int:
    from bot.config import Settings

    settings = _load(config, require_secrets=False)
    if not isinstance(settings, Settings):
        return EXIT_CONFIG
    if settings.teams is None:
        print("handoff teams-package: the configuration has no teams section", file=sys.stderr)
        return EXIT_CONFIG
    from bot.app import teams_package

    try:
        path = teams_package(settings, _package_path(out))
    except ValueError as error:
        print(f"handoff teams-package: {error}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"wrote {path}")
    return EXIT_OK


def _package_path(out: str) -> Path:
    """``--out`` as a file: a folder named there gets the default package name inside it."""
    path = Path(out)
    if out.endswith(("/", os.sep)) or path.is_dir():
        return path / DEFAULT_TEAMS_PACKAGE
    return path


def _slack_manifest(config: str, public_url: str | None) -> int:
    from bot.config import Settings

    settings = _load(config, require_secrets=False)
    if not isinstance(settings, Settings):
        return EXIT_CONFIG
    url = public_url if public_url is not None else settings.server.public_url
    if not url:
        print("handoff slack-manifest: set server.public_url or pass --public-url", file=sys.stderr)
        return EXIT_CONFIG
    from bot.app import slack_manifest

    try:
        manifest = slack_manifest(url)
    except ValueError as error:
        source = "--public-url" if public_url is not None else "server.public_url"
        print(f"handoff slack-manifest: {source} {error}", file=sys.stderr)
        return EXIT_CONFIG
    print(manifest, end="")
    return EXIT_OK


def _audit(config: str, since: str | None, output_format: str) -> int:
    from bot.config import Settings, parse_duration

    settings = _load(config, require_secrets=False)
    if not isinstance(settings, Settings):
        return EXIT_CONFIG
    try:
        window = parse_duration(since) if since else None
    except ValueError as error:
        print(f"handoff audit: --since: {error}", file=sys.stderr)
        return EXIT_CONFIG
    from adapters.sql.problems import StoreNotUsable, StoreUrlUnreadable
    from bot.app import read_audit
    from bot.audit import to_csv, to_json_lines

    try:
        entries = asyncio.run(read_audit(settings, window))
    except StoreUrlUnreadable as error:
        print(f"handoff audit: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except (OSError, StoreNotUsable) as error:
        print(f"handoff audit: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(to_csv(entries) if output_format == "csv" else to_json_lines(entries), end="")
    return EXIT_OK


def _settings_for(config: str) -> Settings | None:
    from bot.config import Settings, configured_secrets
    from bot.logs import configure_logging

    settings = _load(config)
    if not isinstance(settings, Settings):
        return None
    configure_logging("WARNING", secrets=configured_secrets(settings))
    # the command's report says what did not answer; urllib3's line per retry on the way would only repeat it,
    # and so would the Azure SDK's warnings (DefaultAzureCredential's 14 lines on every credential it tried)
    for sdk in ("urllib3.connectionpool", "azure.identity", "azure.core"):
        logging.getLogger(sdk).setLevel(logging.ERROR)
    return settings


def _say(line: str) -> None:
    print(line, flush=True)


def _interrupted(command: str, after: str = "") -> Callable[[signal.Signals], None]:
    def say(signum: signal.Signals) -> None:
        print(f"handoff {command}: interrupted ({signum.name}){after}", file=sys.stderr, flush=True)

    return say


def _connect(target: str, config: str, dry_run: bool, deadline: float) -> int:
    settings = _settings_for(config)
    if settings is None:
        return EXIT_CONFIG
    from bot.lifecycle import run_command

    after = "" if dry_run else "; what was done stays done, and running it again does the rest"
    return run_command(_connecting(settings, target, dry_run, deadline), _interrupted(f"connect {target}", after))


async def _connecting(settings: Settings, target: str, dry_run: bool, deadline: float) -> int:
    from adapters.sql.problems import StoreNotUsable, StoreUrlUnreadable
    from adapters.sql.store import StoreUnavailable
    from bot.app import connect_azure_devops, connect_azure_ml

    connect = connect_azure_devops if target == "azure-devops" else connect_azure_ml
    try:
        report = await connect(settings, dry_run, deadline=deadline, echo=_say)
    except (StoreUrlUnreadable, StoreUnavailable, StoreNotUsable) as error:  # read before anything is planned
        why = "the store holds the chat subscriptions, whose projects need hooks too; nothing was changed"
        print(f"handoff connect {target}: {error} ({why})", file=sys.stderr)
        return EXIT_CONFIG if isinstance(error, StoreUrlUnreadable) else EXIT_UNAVAILABLE
    return EXIT_OK if report.ok else EXIT_FAILED


def _doctor(config: str, deadline: float) -> int:
    settings = _settings_for(config)
    if settings is None:
        return EXIT_CONFIG
    from adapters.sql.problems import StoreUrlUnreadable, read_url
    from bot.lifecycle import run_command

    try:
        read_url(settings.store.url)
    except StoreUrlUnreadable as error:
        print(f"handoff doctor: {error}", file=sys.stderr)
        return EXIT_CONFIG
    return run_command(_doctoring(settings, deadline), _interrupted("doctor", " before every check ended"))


async def _doctoring(settings: Settings, deadline: float) -> int:
    from bot.app import run_doctor

    report = await run_doctor(settings, deadline=deadline, echo=_say)
    return EXIT_OK if report.ok else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``handoff`` command; returns the exit status (130 for a Ctrl-C before its handlers were in
    place, as a shell reports one: no traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(parser, args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args.config, args.host, args.port)
    if args.command == "demo":
        return _demo(args.port, args.data_dir, args.no_browser, args.scenario)
    if args.command == "emulators":
        return _emulators(args.host, args.port, args.world)
    if args.command == "teams-package":
        return _teams_package(args.config, args.out)
    if args.command == "slack-manifest":
        return _slack_manifest(args.config, args.public_url)
    if args.command == "audit":
        return _audit(args.config, args.since, args.format)
    if args.command == "check":
        return _check(args.config)
    if args.command == "connect":
        return _connect(args.connect_target, args.config, args.dry_run, args.timeout)
    if args.command == "doctor":
        return _doctor(args.config, args.timeout)
    if args.command == "db" and args.db_command == "upgrade":
        return _db_upgrade(args.config)
    parser.print_help(sys.stderr)  # no command: nothing was done, as for `handoff connect` alone
    return EXIT_USAGE
