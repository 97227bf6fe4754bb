"""All four emulators on one port: Azure DevOps under ``/ado``, Azure ML under ``/aml``, the Bot
Framework connector under ``/botframework`` and Slack under ``/slack``.

The world they start with is one YAML document with a section per emulator (``azure_devops``,
``azure_ml``, ``teams``, ``slack``); a section a world file leaves out keeps the shipped default.

    async with EmulatorSuite() as suite:
        suite.urls["ado"]          # http://127.0.0.1:PORT/ado
        suite.ado.org_url # what Handoff's azure_devops.organization_url should say
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.emulators.azure_devops.emulator import AzureDevOpsEmulator
from adapters.emulators.azure_ml.emulator import AzureMLEmulator
from adapters.emulators.base import LocalServer, mount
from adapters.emulators.botframework.emulator import BotFrameworkEmulator
from adapters.emulators.slack.emulator import SlackEmulator
from bot.clock import Clock, SystemClock
from bot.config_problems import ConfigError
from bot.config_yaml import read_document

SECTIONS = ("azure_devops", "azure_ml", "teams", "slack")
PREFIXES = {"ado": "/ado", "aml": "/aml", "botframework": "/botframework", "slack": "/slack"}


class WorldFileError(ValueError):
    """A world file that cannot be used."""


def load_world(path: str | Path | None = None) -> dict[str, Any]:
    """The sections of a world file (``{}`` for the shipped defaults)."""
    if path is None:
        return {}
    try:  # read as `handoff check` reads a configuration file, to say what is wrong in one line
        data = read_document(Path(path)).content or {}
    except ConfigError as error:
        raise WorldFileError(f"{path}: {'; '.join(p.message for p in error.problems)}") from None
    if not isinstance(data, dict):
        raise WorldFileError(f"{path}: a world file is a mapping with sections {', '.join(SECTIONS)}")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise WorldFileError(f"{path}: unknown section(s) {', '.join(unknown)}; expected {', '.join(SECTIONS)}")
    return data


class EmulatorSuite:
    """The four emulators, served together on ``host:port`` (port 0: a free one)."""

    def __init__(
        self,
        world: dict[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        world = world or {}
        self.clock = clock or SystemClock()

        def section(name: str) -> dict[str, Any] | None:
            return {name: world[name]} if name in world else None

        self.ado = AzureDevOpsEmulator(section("azure_devops"), clock=self.clock)
        self.aml = AzureMLEmulator(section("azure_ml"), clock=self.clock)
        self.teams = BotFrameworkEmulator(section("teams"), clock=self.clock)
        self.slack = SlackEmulator(section("slack"), clock=self.clock)
        self.app = web.Application()
        self._server = LocalServer(self.app, host, port)
        self._url = ""

    def mount_into(self, root: web.Application) -> None:
        """Serve the four emulators under their prefixes of ``root`` (their own or another server's)."""
        mount(root, PREFIXES["ado"], self.ado.create_app())
        mount(root, PREFIXES["aml"], self.aml.create_app())
        mount(root, PREFIXES["botframework"], self.teams.create_app())
        mount(root, PREFIXES["slack"], self.slack.create_app())

    def served_at(self, url: str) -> None:
        """Tell the emulators the root URL they are served at, once it is known."""
        self._url = url.rstrip("/")
        urls = self.urls
        self.ado.base_url = urls["ado"]
        self.aml.base_url = urls["aml"]
        self.teams.base_url = urls["botframework"]
        self.slack.base_url = urls["slack"]

    @property
    def url(self) -> str:
        return self._url

    @property
    def bound_to(self) -> str:
        """The address and port its own server binds (``0.0.0.0:PORT`` when on every interface)."""
        host = self._server.host
        return f"[{host}]:{self._server.port}" if ":" in host else f"{host}:{self._server.port}"

    @property
    def listens_everywhere(self) -> bool:
        """Whether its own server listens on every interface; its URLs then name the loopback address."""
        return self._server.listens_everywhere

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"{self.url}{prefix}" for name, prefix in PREFIXES.items()}

    async def start(self) -> EmulatorSuite:
        """Serve the emulators on a server of their own."""
        self.mount_into(self.app)
        await self._server.start()
        self.served_at(self._server.url)
        return self

    async def stop(self) -> None:
        await self._server.stop()

    async def __aenter__(self) -> EmulatorSuite:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
