"""The total signature check in front of Bolt: known answers, the window, and no input that raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from adapters.emulators.slack import sign
from adapters.slack.verification import RequestVerifier
from bot.clock import FakeClock

VECTOR_TIME = 1531420618


def clock_at(epoch: int) -> FakeClock:
    return FakeClock(datetime.fromtimestamp(epoch, UTC))


def headers(timestamp: str, signature: str) -> CIMultiDict[str]:
    return CIMultiDict({"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature})


@pytest.fixture
def vectors(shared_dir: Path) -> list[tuple[bytes, str, str, str]]:
    folder = shared_dir / "samples/chat/slack"
    data = json.loads((folder / "signature.test_vectors.json").read_text())
    return [
        (
            (folder / case["body_file"]).read_bytes(),
            data["signing_secret"],
            data["timestamp"],
            case["x_slack_signature"],
        )
        for case in data["cases"]
    ]


def test_shared_vectors_verify_with_a_pinned_clock(vectors: list[tuple[bytes, str, str, str]]) -> None:
    for body, secret, timestamp, signature in vectors:
        verifier = RequestVerifier(secret, clock_at(VECTOR_TIME))
        verdict = verifier.verify(body, headers(timestamp, signature))
        assert verdict.ok, verdict
        assert verdict.text == body.decode()


def test_shared_vectors_are_rejected_outside_the_window(vectors: list[tuple[bytes, str, str, str]]) -> None:
    body, secret, timestamp, signature = vectors[0]
    for offset, ok in [(300, True), (-300, True), (301, False), (-301, False)]:
        verdict = RequestVerifier(secret, clock_at(VECTOR_TIME + offset)).verify(body, headers(timestamp, signature))
        assert verdict.ok is ok, offset
    late = RequestVerifier(secret, clock_at(VECTOR_TIME + 301)).verify(body, headers(timestamp, signature))
    assert (late.status, late.reason) == (401, "timestamp outside the 5-minute window")


def test_the_documented_slack_vector() -> None:
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    verifier = RequestVerifier("8f742231b10e8888abcd99yyyzzz85a5", clock_at(VECTOR_TIME))
    assert verifier.verify(body, headers(str(VECTOR_TIME), signature)).ok


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "status"),
    [
        ("abc", None, b"{}", 401),
        ("1531420618.5", None, b"{}", 401),
        ("9" * 400, None, b"{}", 401),
        ("-1531420618", None, b"{}", 401),
        ("".join(chr(0xFF10 + int(d)) for d in "1531420618"), None, b"{}", 401),  # full-width digits
        (None, "v0=ÿ" + "a" * 63, b"{}", 401),
        (None, "v0=" + "A" * 64, b"{}", 401),
        (None, "v1=" + "a" * 64, b"{}", 401),
        (None, "", b"{}", 401),
        (None, None, b"\xff\xfe{}", 400),  # signed, but not UTF-8
        (None, "v0=" + "a" * 64, b"\xff\xfe{}", 401),  # not UTF-8, and not signed: the signature decides
        (None, "v0=" + "a" * 64, b"command=\xff", 401),
    ],
)
def test_malformed_input_is_refused_not_raised(
    timestamp: str | None, signature: str | None, body: bytes, status: int
) -> None:
    secret = "s3cret-value"
    ts = timestamp if timestamp is not None else str(VECTOR_TIME)
    sig = signature if signature is not None else sign(secret, ts, body)
    verdict = RequestVerifier(secret, clock_at(VECTOR_TIME)).verify(body, headers(ts, sig))
    assert verdict.status == status


def test_missing_and_repeated_headers() -> None:
    verifier = RequestVerifier("s3cret-value", clock_at(VECTOR_TIME))
    good = sign("s3cret-value", VECTOR_TIME, b"{}")
    assert verifier.verify(b"{}", CIMultiDict()).status == 401
    assert verifier.verify(b"{}", CIMultiDict({"X-Slack-Signature": good})).status == 401
    repeated = CIMultiDict(
        [("X-Slack-Request-Timestamp", str(VECTOR_TIME)), ("X-Slack-Signature", good), ("X-Slack-Signature", good)]
    )
    assert verifier.verify(b"{}", repeated).status == 401
    assert verifier.verify(b"{}", {"x-slack-request-timestamp": str(VECTOR_TIME), "x-slack-signature": good}).ok


@settings(max_examples=1000, deadline=None)
@given(body=st.binary(min_size=1, max_size=300), data=st.data())
def test_any_change_to_body_timestamp_or_signature_fails(body: bytes, data: st.DataObject) -> None:
    secret = "s3cret-value"
    verifier = RequestVerifier(secret, clock_at(VECTOR_TIME + 1000))
    ts = str(VECTOR_TIME + 1000)
    sig = sign(secret, ts, body)
    which = data.draw(st.sampled_from(["body", "timestamp", "signature"]))
    if which == "body":
        i = data.draw(st.integers(0, len(body) - 1))
        changed = body[:i] + bytes([(body[i] + data.draw(st.integers(1, 255))) % 256]) + body[i + 1 :]
        changed = data.draw(st.sampled_from([changed, body + b"x", body[:-1]]))
        verdict = verifier.verify(changed, headers(ts, sig))
    elif which == "timestamp":
        other = data.draw(st.integers(VECTOR_TIME + 700, VECTOR_TIME + 1300).filter(lambda t: str(t) != ts))
        verdict = verifier.verify(body, headers(str(other), sig))
    else:
        i = data.draw(st.integers(3, len(sig) - 1))
        replacement = data.draw(st.characters(codec="latin-1").filter(lambda c: c != sig[i]))
        verdict = verifier.verify(body, headers(ts, sig[:i] + replacement + sig[i + 1 :]))
    assert not verdict.ok


@settings(max_examples=500, deadline=None)
@given(
    body=st.binary(max_size=200),
    timestamp=st.text(max_size=40),
    signature=st.text(max_size=80),
)
def test_verify_is_total(body: bytes, timestamp: str, signature: str) -> None:
    verdict = RequestVerifier("s3cret-value", clock_at(VECTOR_TIME)).verify(body, headers(timestamp, signature))
    assert verdict.status in (400, 401)


@pytest.mark.parametrize("secret", ["", "   "])
def test_an_empty_signing_secret_is_refused_at_once(secret: str) -> None:
    with pytest.raises(ValueError, match="signing secret is empty"):
        RequestVerifier(secret)
