"""The page and its files: served relative to the console's root, self-contained, locked down."""

from __future__ import annotations

from importlib import resources

import aiohttp
from aiohttp import web

from adapters.console import create_console_app, mount_console
from adapters.console.security import CONTENT_SECURITY_POLICY
from adapters.emulators.base import LocalServer
from adapters.emulators.suite import EmulatorSuite

from .conftest import ConsoleClient

STATIC = resources.files("adapters.console.static")


async def test_the_page_is_served_standalone(console: ConsoleClient) -> None:
    async with console.session.get(f"{console.url}/") as response:
        assert response.status == 200 and response.content_type == "text/html"
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        page = await response.text()
    assert '<base href="/">' in page
    for asset, kind in (("static/console.js", "javascript"), ("static/console.css", "text/css")):
        async with console.session.get(f"{console.url}/{asset}") as response:
            assert response.status == 200 and kind in response.content_type
            assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_mounted_under_console_it_redirects_and_keeps_its_urls_relative(suite: EmulatorSuite) -> None:
    root = web.Application()
    mount_console(root, suite)
    async with LocalServer(root) as server, aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/console", allow_redirects=False) as response:
            assert response.status == 302 and response.headers["Location"] == "/console/"
        async with session.get(f"{server.url}/console/") as response:
            assert '<base href="/console/">' in await response.text()
        async with session.get(f"{server.url}/console/api/state", params={"user": "carol"}) as response:
            assert (await response.json())["user"] == "carol"
        async with session.get(f"{server.url}/console/static/console.js") as response:
            assert response.status == 200


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for name in ("index.html", "console.js", "console.css"):
        text = STATIC.joinpath(name).read_text(encoding="utf-8")
        assert "://" not in text, name
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text and "document.write" not in text, name


def test_the_user_switcher_picks_and_orders_people(suite: EmulatorSuite) -> None:
    app = create_console_app(suite, user_switcher=["carol", "alice"])
    assert isinstance(app, web.Application)
    try:
        create_console_app(suite, user_switcher=["mallory"])
    except ValueError as error:
        assert "mallory" in str(error)
    else:
        raise AssertionError("an unknown person was accepted")


async def test_the_user_switchers_first_person_is_the_default(suite: EmulatorSuite) -> None:
    app = create_console_app(suite, user_switcher=["carol", "bob"])
    async with LocalServer(app) as server, aiohttp.ClientSession() as session:
        state = await (await session.get(f"{server.url}/api/state")).json()
    assert state["user"] == "carol" and [p["key"] for p in state["people"]] == ["carol", "bob"]
