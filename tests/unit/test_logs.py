"""Log redaction: no secret ever appears in a log line, in text or JSON format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import REDACTED, Redactor, configure_logging

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJib3QifQ.c2lnbmF0dXJlLXBhcnQ"
SECRETS = {
    "configured": "sign-abcdef-123456",
    "slack bot token": "xoxb-1234-5678-abcdefghijkl",
    "slack app token": "xapp-1-A111-222-abcdef",
    "jwt": JWT,
    "bearer": "Bearer abcdefghijklmnop",
    "basic": "Basic aGFuZG9mZjpodW50ZXIy",
    "pair": "password=hunter22x",
    "query": "https://bot/hooks/eventgrid?code=s3cr3t-query",
    "short name": "pat: abcd-pat-value",
    "camel case": "clientSecret: camel-s3cr3t",
}


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_reaches_the_stream(log_format: str, restore_root_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", log_format, secrets=[SECRETS["configured"]], stream=stream)
    log = logging.getLogger("handoff.test")
    for name, value in SECRETS.items():
        log.info("sending %s: %s", name, value)
    log.warning("header", extra={"authorization": SECRETS["bearer"]})
    try:
        raise ValueError(f"bad token {SECRETS['slack bot token']}")
    except ValueError:
        log.exception("failed with %s", SECRETS["jwt"])
    output = stream.getvalue()
    for name, value in SECRETS.items():
        secret_part = value.split(" ")[-1].split("=")[-1]
        assert secret_part not in output, name
    assert output.count(REDACTED) >= len(SECRETS)
    if log_format == "json":
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert lines[0]["logger"] == "handoff.test"
        assert any("exception" in line for line in lines)


def test_ordinary_text_is_left_alone() -> None:
    redact = Redactor(["abc"])  # too short to redact safely
    text = "run 42 of pipeline integrate-app-y finished: exit code 1 after 3s"
    assert redact(text) == text
    # a name that only ends in a short secret-like word says why a request was refused
    why = "event grid delivery: rejected (data.validationCode: missing)"
    assert redact(why) == why


@pytest.mark.parametrize(
    "token",
    [
        "xoxb-1234-5678-abcdefghijkl",
        "xoxp-1234-5678-abcdefghijkl",
        "xoxe-1-My0xLTIxMjM0NTY3ODkw",  # a refresh token (token rotation)
        "xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4",  # a rotating user token
        "xoxe.xoxb-1-MS0yLTk4NzY1NDMy",  # a rotating bot token
        "xapp-1-A111-222-abcdef",
    ],
)
def test_slack_tokens_are_redacted_by_their_shape_alone(token: str) -> None:
    """Not only after ``token=``: in a row of values, say, where nothing names them."""
    line = f"saved ('T9WORKSPACE', '{token}', 'U9INSTALLER')"
    assert Redactor()(line) == f"saved ('T9WORKSPACE', '{REDACTED}', 'U9INSTALLER')"
