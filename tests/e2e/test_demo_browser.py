"""`handoff demo` in a browser: the real bot, unchanged, behind the console, driven by a person.

Headless Debian Chromium through Playwright opens the console, types `/retrain model-x` as alice,
confirms, watches the job card reach its end, then approves the release gate as carol and sees the
gate's card change on Slack and on Teams. Screenshots go to test-artifacts/demo/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.demo import Demo, start_demo
from tests.browser import open_page, playwright_api
from tests.conftest import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts" / "demo"
pytestmark = pytest.mark.browser


@pytest.fixture
async def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Demo]:
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    running = await start_demo(0, tmp_path)
    assert running.server.handoff is not None and running.server.handoff.runner is not None
    running.server.handoff.runner.poll_interval = 0.5
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with open_page(30_000) as opened:
        yield opened


async def test_retrain_then_approve_the_release_from_the_console(demo: Demo, page: Any) -> None:
    expect = playwright_api.expect
    models = demo.suite.slack.state.channel("ml-models").id
    releases = demo.suite.slack.state.channel("app-releases").id

    await page.goto(f"{demo.console_url}#user=alice&c=slack:{models}")
    await page.fill(".composer-input", "/retrain model-x")
    await page.press(".composer-input", "Enter")
    confirmation = page.locator(".slack-msg.ephemeral", has_text="Confirm")
    await expect(confirmation.locator(".bk-button.primary")).to_have_text("Confirm")
    await page.screenshot(path=str(ARTIFACTS / "1-retrain-confirm.png"))
    await confirmation.locator(".bk-button.primary").click()
    job = page.locator(".slack-msg", has_text="Training run")
    await expect(job).to_contain_text("Succeeded", timeout=90_000)
    await expect(page.locator(".slack-msg", has_text="registered")).to_contain_text("model-x:8", timeout=30_000)
    await page.screenshot(path=str(ARTIFACTS / "2-job-done-model-registered.png"))

    demo.suite.ado.start_run(
        "release-app-y", requested_by="bob@contoso.com", parameters={"modelName": "model-x", "modelVersion": "8"}
    )
    await page.select_option("#user", "carol")
    await page.click(f'.side-item[data-channel="{releases}"]')
    gate = page.locator(".slack-msg", has_text="Release release-app-y to production")
    await expect(gate.locator(".bk-button.primary")).to_have_text("Approve", timeout=60_000)
    await page.screenshot(path=str(ARTIFACTS / "3-gate-pending.png"))
    await gate.locator(".bk-button.primary").click()
    await page.fill("#modal .modal-input", "integration is green")
    await page.locator("#modal .modal-foot .bk-button.primary").click()
    decided = page.locator(".slack-msg", has_text="Release release-app-y to production")
    await expect(decided).to_contain_text("Approved", timeout=60_000)
    await expect(decided.locator(".bk-button")).to_have_count(0)
    await page.screenshot(path=str(ARTIFACTS / "4-gate-approved-slack.png"))

    await page.click('.side-item[data-name="App releases"]')
    teams_gate = page.locator(".post", has_text="Release release-app-y to production")
    await expect(teams_gate).to_contain_text("Approved", timeout=30_000)
    await page.screenshot(path=str(ARTIFACTS / "5-gate-approved-teams.png"))
    patches = demo.suite.ado.recorder.matching("PATCH /contoso/mlops/_apis/pipelines/approvals")
    assert len(patches) == 1
