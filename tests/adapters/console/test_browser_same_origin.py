"""In headless Chromium, a page of another origin cannot make the console act: neither a no-cors fetch nor an
auto-submitted ``text/plain`` form (the two requests a page may send anywhere without asking)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from adapters.console import create_console_app
from adapters.emulators.base import LocalServer
from adapters.emulators.suite import EmulatorSuite
from tests.browser import open_page

pytestmark = pytest.mark.browser

# the form's one field is named so that the text/plain body reads as JSON: {"user":"carol",...,"x":"="}
ATTACK = """<!doctype html><html><body>
<form id=f method=POST enctype="text/plain" action="{console}api/world/register-model">
<input name='{{"user":"carol","model":"pwned-model","x":"' value='"}}'></form>
<script>
fetch("{console}api/world/start-release", {{method: "POST", mode: "no-cors",
  headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{user: "bob"}})}})
  .finally(() => document.getElementById("f").submit());
</script></body></html>"""


async def test_another_sites_page_cannot_start_a_release_or_register_a_model() -> None:
    async with EmulatorSuite() as suite, LocalServer(create_console_app(suite)) as console:
        console_url = console.url.rstrip("/") + "/"
        answers: list[tuple[str, int]] = []

        async def attack(request: web.Request) -> web.Response:
            return web.Response(text=ATTACK.format(console=console_url), content_type="text/html")

        evil = web.Application()
        evil.router.add_get("/", attack)
        async with LocalServer(evil) as attacker, open_page(10_000) as page:
            page.on("response", lambda r: answers.append((r.url, r.status)) if r.url.startswith(console_url) else None)
            await page.goto(attacker.url + "/")
            await page.wait_for_url(f"{console_url}api/world/register-model")  # the form was submitted
            await asyncio.sleep(0.2)
        assert sorted(answers) == [
            (f"{console_url}api/world/register-model", 403),
            (f"{console_url}api/world/start-release", 403),
        ]
        assert suite.ado.runs == []
        assert "pwned-model" not in suite.aml.state.models
