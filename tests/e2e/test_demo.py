"""`handoff demo` started again in the same data folder begins a new day, as its emulators do."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from adapters.demo import Demo, _tell_if_stopped, play_scenario, start_demo
from adapters.emulators.base import Fault
from bot.logs import REDACTED, configure_logging
from tests.e2e.conftest import eventually


@pytest.fixture
def handoff_log() -> Iterator[io.StringIO]:
    """What Handoff logs at WARNING and above while the test runs, set up as `handoff demo` sets it up."""
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("WARNING", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


async def integrate_once(demo: Demo, day: int) -> None:
    """bob integrates app-y against model-x:7: one Azure DevOps run, one card, one command run."""
    slack, ado = demo.suite.slack, demo.suite.ado
    await slack.send_slash_command("/integrate", "app-y model=model-x:7", channel="app-releases", user="bob")
    (run,) = await eventually(lambda: ado.runs)
    assert run.template_parameters["modelVersion"] == "7"
    title = f"integrate-app-y {run.name}"
    card = await eventually(lambda: [m for m in slack.state.channel("app-releases").messages if m.text.endswith(title)])
    assert len(card) == 1, f"day {day}: {card}"
    runs = await demo.server.store.list_command_runs(None, 10)
    assert [r.command for r in runs] == ["integrate app-y model=model-x:7"]


async def test_a_second_demo_starts_afresh_and_runs_the_same_command_again(tmp_path: Path) -> None:
    for day in (1, 2):
        # the first day's run does not make the second day's command a repeat of it
        demo = await start_demo(0, tmp_path)
        try:
            await integrate_once(demo, day)
        finally:
            await demo.stop()


async def test_a_console_post_whose_body_comes_after_its_headers_is_posted(tmp_path: Path) -> None:
    """A client that sends its headers and then its body (here told to wait: ``Expect: 100-continue``) has its
    message posted: the body the server's edge read first is the one the console reads."""
    demo = await start_demo(0, tmp_path)
    try:
        channel = demo.suite.slack.state.channel("app-releases")
        body = json.dumps({"user": "bob", "text": "a note sent in two parts"}).encode()
        where = urlsplit(demo.console_url)
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        writer.write(
            f"POST {where.path}api/channels/slack/{channel.id}/messages HTTP/1.1\r\nHost: {where.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100 Continue")
        writer.write(body)
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
    finally:
        await demo.stop()
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert [m.text for m in channel.messages] == ["a note sent in two parts"]


async def test_the_demos_own_secrets_never_reach_its_log(tmp_path: Path, handoff_log: io.StringIO) -> None:
    # its passwords and keys are made when it starts, after `handoff demo` set up logging
    demo = await start_demo(0, tmp_path)
    try:
        secrets = [demo.environ["LOCAL_HOOK_PASSWORD"], demo.environ["LOCAL_EVENTGRID_SECRET"]]
        logging.getLogger("handoff.test").warning("told: %s and %s", *secrets)
    finally:
        await demo.stop()
    told = [line for line in handoff_log.getvalue().splitlines() if "told: " in line]
    assert told and all(secret not in told[0] for secret in secrets)
    assert told[0].endswith(f"told: {REDACTED} and {REDACTED}")


async def test_the_scripted_day_plays_to_its_end_in_a_data_folder_named_relative_to_where_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as the README's first command runs it: `handoff demo --scenario`, data in .handoff/demo
    monkeypatch.chdir(tmp_path)
    told: list[str] = []
    demo = await start_demo(0, Path(".handoff/demo"))
    try:
        await asyncio.wait_for(play_scenario(demo, pause=0, say=told.append), timeout=240)
    finally:
        await demo.stop()
    (job,) = demo.suite.aml.state.jobs.values()  # the retrain alice asked for, from the job file
    assert job.status == "Completed" and job.registered_model == ("model-x", "8")
    assert told[-1] == "scenario: the release finished; every card shows its final state"
    assert (tmp_path / ".handoff/demo/handoff.db").is_file()


async def test_a_scripted_day_that_stops_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    async def stalls() -> None:
        raise TimeoutError("the scenario waited too long for a step")

    story = asyncio.ensure_future(stalls())
    story.add_done_callback(_tell_if_stopped)
    with pytest.raises(TimeoutError):
        await story
    await asyncio.sleep(0)  # (done callbacks run on the loop's next turn)
    assert capsys.readouterr().out == (
        "scenario: stopped (TimeoutError: the scenario waited too long for a step); the demo goes on, Ctrl-C stops\n"
    )


async def test_a_demo_stopped_while_the_bot_is_sending_stops_the_bot_before_its_emulators(
    tmp_path: Path, handoff_log: io.StringIO
) -> None:
    """Ctrl-C while cards are on their way: the bot stops sending before the emulators it sends to go away, so
    nothing fails to reach them and nothing says so on stderr."""
    demo = await start_demo(0, tmp_path)
    try:
        slack = demo.suite.slack
        # Slack takes its time with each post: cards are still on their way when the demo stops
        slack.faults.add("POST /api/chat.postMessage", [Fault("stall", stall_seconds=0.5)] * 50)
        for _ in range(4):
            demo.suite.ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
        await eventually(lambda: slack.recorder.matching("POST /api/chat.postMessage"), timeout=30)
    finally:
        await demo.stop()
    said = handoff_log.getvalue()
    assert "failed" not in said and "Connection" not in said and "Retrying" not in said, said
