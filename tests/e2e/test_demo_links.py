"""In `handoff demo`, the Open link of each Azure ML and data-lake card opens a page on the emulators."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from adapters.demo import Demo, start_demo
from tests.e2e.conftest import eventually

_OPEN = re.compile(r"<([^|>]+)\|Open>")


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    running = await start_demo(0, tmp_path)
    try:
        yield running
    finally:
        await running.stop()


def cards(demo: Demo) -> list[str]:
    """The ml-models channel's messages as Slack shows them (blocks and fallback text)."""
    messages = demo.suite.slack.state.channel("ml-models").messages
    return [json.dumps(m.blocks or []) + m.text for m in messages if not m.deleted]


async def card_titled(demo: Demo, title: str) -> str:
    return str(await eventually(lambda: next((c for c in cards(demo) if title in c), None)))


def open_link(card: str) -> str:
    [url] = _OPEN.findall(card)
    return html.unescape(url)


async def page(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_the_drift_cards_link_opens_the_monitors_drift_run(demo: Demo) -> None:
    demo.suite.aml.detect_drift()  # the console's "Detect data drift"

    url = open_link(await card_titled(demo, "Data drift detected by customers-drift"))

    assert f"{demo.suite.urls['aml']}/studio/runs/" in url
    status, text = await page(url)
    assert status == 200, text
    assert "customers-drift" in text and "0.830" in text and "lake-data:6" in text


async def test_the_deployment_cards_link_opens_the_endpoint_with_its_model(demo: Demo) -> None:
    demo.suite.aml.deploy_model("model-x-prod", "model-x:7")  # a version registered before Handoff watched

    url = open_link(await card_titled(demo, "Model model-x:7 deployed"))

    studio = f"{demo.suite.urls['aml']}/studio"
    assert url.startswith(f"{studio}/endpoints/realtime/model-x-prod/detail?wsid=/subscriptions/")
    status, text = await page(url)
    assert status == 200, text
    assert "model-x:7" in text and "AKS" in text


async def test_new_data_links_the_storage_browser_and_only_the_lakes_declared_folder_is_news(demo: Demo) -> None:
    aml = demo.suite.aml
    aml.land_blob("other/x.csv", data=b"a\n1\n", content_type="text/csv")
    aml.land_blob("raw/customers/2025-12/batch-0001.csv", data=b"a\n1\n", content_type="text/csv")

    card = await card_titled(demo, "New data in lake/raw/customers/2025-12/batch-0001.csv")
    url = open_link(card)

    assert "dfs." not in url  # the file's own URL needs a key or a token: nobody could open it from chat
    assert url.startswith(f"{demo.suite.urls['aml']}/portal/#view/Microsoft_Azure_Storage/ContainerMenuBlade/")
    assert url.endswith("%2Fproviders%2FMicrosoft.Storage%2FstorageAccounts%2Fstmlopslake/path/lake")
    status, text = await page(url)
    assert status == 200, text
    assert "stmlopslake/lake/raw/customers/2025-12/batch-0001.csv" in text
    await aml.drain_events()
    assert not [c for c in cards(demo) if "other/x.csv" in c]
