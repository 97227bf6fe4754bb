"""Reading senders' JSON: missing and null read as empty, a wrong shape names its path, never its value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapters.web.payloads import DEEPEST_VALUE, Fields, PayloadError, decode_json
from bot.events import bounded_key

RUN = {
    "resource": {
        "run": {"id": 42, "state": "completed", "finishedDate": "2026-11-28T10:00:00.1234567Z", "pipeline": None},
        "stages": [{"name": "Build"}, None],
    }
}


def test_missing_and_null_read_as_empty_and_numbers_as_text() -> None:
    run = Fields.of(RUN).obj("resource").obj("run")
    assert run.text("id") == "42" and run.text("missing") is None
    assert not run.obj("pipeline") and run.obj("pipeline").text("name") is None
    assert run.time("finishedDate") == datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
    assert [s.text("name") for s in Fields.of(RUN).obj("resource").objects("stages")] == ["Build"]


def test_nul_characters_are_dropped_from_text_since_postgresql_cannot_store_them() -> None:
    fields = Fields.of({"id": "a\u0000b", "only": "\u0000", "plain": "ab"})
    assert fields.text("id") == "ab" and fields.require_text("id") == "ab"
    assert fields.text("only") is None
    assert fields.text("plain") == "ab"
    assert bounded_key("azure-ml:s:model:a\u0000b") == "azure-ml:s:model:ab"
    assert "\u0000" not in bounded_key("x\u0000" * 400)


def test_a_time_without_an_offset_is_utc_and_one_with_an_offset_keeps_it() -> None:
    fields = Fields.of({"a": "2026-11-28T10:00:00", "b": "2026-11-28T11:00:00+01:00"})
    assert fields.time("a") == datetime(2026, 11, 28, 10, tzinfo=UTC)
    assert fields.time("b") == datetime(2026, 11, 28, 11, tzinfo=timezone(timedelta(hours=1)))


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (lambda f: f.obj("resource").obj("run").obj("state"), "resource.run.state: expected a JSON object"),
        (lambda f: f.obj("resource").obj("run").text("secret"), "resource.run.secret: expected a string"),
        (lambda f: f.obj("resource").obj("run").time("when"), "resource.run.when: not an ISO-8601 timestamp"),
        (lambda f: f.obj("resource").objects("run"), "resource.run: expected a list"),
    ],
)
def test_a_wrong_shape_names_the_field_and_not_its_value(read: object, message: str) -> None:
    body = {"resource": {"run": {"state": "completed", "secret": {"token": "s3cr3t"}, "when": "yesterday"}}}
    with pytest.raises(PayloadError) as raised:
        read(Fields.of(body))  # type: ignore[operator]
    assert str(raised.value) == message
    assert "s3cr3t" not in str(raised.value) and "yesterday" not in str(raised.value)


def test_keys_are_matched_without_case_when_asked() -> None:
    data = Fields.of({"data": {"ModelName": "model-x", "modelVersion": "8"}}, ignore_case=True).obj("data")
    assert (data.text("modelName"), data.text("ModelVersion")) == ("model-x", "8")
    assert Fields.of({"ModelName": "x"}).text("modelName") is None


def test_bodies_decode_as_before_whichever_decoder_reads_them() -> None:
    assert decode_json(b'{"id": "e1", "n": 3, "ok": true}') == {"id": "e1", "n": 3, "ok": True}
    assert decode_json(b'{"n": 123456789012345678901234567890}') is not None  # no crash past 64 bits
    assert decode_json(b'{"x": NaN}')["x"] != 0  # the standard library reads what orjson refuses
    for bad in (b"", b"{", b"\xff\xfe", b"[" * 100_000):
        with pytest.raises(PayloadError, match="not valid JSON"):
            decode_json(bad)


def test_half_a_surrogate_pair_reads_as_the_replacement_character() -> None:
    assert decode_json(b'{"a": "x\\ud800y", "b": ["\\udfff"], "\\udc00": 1}') == {
        "a": "x\ufffdy",
        "b": ["\ufffd"],
        "\ufffd": 1,
    }
    assert decode_json(b'{"a": "\xed\xa0\x80"}') == {"a": "\ufffd"}  # the same, written as raw bytes
    assert decode_json(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}  # a whole pair is one character


def test_an_integer_past_any_use_reads_as_no_number() -> None:
    body = b'{"n": ' + b"9" * 400 + b', "m": -' + b"9" * 5000 + b', "k": 12345678901234567890}'
    data = Fields.of(decode_json(body))
    for key in ("n", "m"):
        with pytest.raises(PayloadError, match="finite number"):
            data.number(key)
        with pytest.raises(PayloadError, match="expected an integer"):
            data.integer(key)
    assert data.integer("k") == 12345678901234567890
    assert Fields.of({"n": 10**400}).obj("x").number("n") is None
    with pytest.raises(PayloadError, match="finite number"):
        Fields.of({"n": 10**400}).number("n")


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": ' + b"9" * 100_000 + b"}",  # past 40 digits: read as infinite
        b'{"id": -' + b"9" * 5_000 + b"}",
        b'{"id": 123456789012345678901234}',  # past 64 bits: orjson keeps a float, its last digits lost
        b'{"id": -9223372036854775809}',  # (which orjson reads as -2**63)
        b'{"id": 123456789012345678901234, "half": "\\ud800"}',  # read by the standard library, exactly
        b'{"id": NaN}',
        b'{"id": -Infinity}',
        b'{"id": 1e300}',
    ],
    ids=["100k digits", "-5k digits", "24 digits", "below -2**63", "24 digits exact", "NaN", "-Infinity", "1e300"],
)
def test_a_number_no_text_holds_exactly_is_no_text_nor_id(body: bytes) -> None:
    data = Fields.of(decode_json(body))
    for read in (data.text, data.require_text, data.require_id, data.time):
        with pytest.raises(PayloadError) as raised:
            read("id")
        assert str(raised.value) == "id: expected a string, or a number within 64 bits"
    with pytest.raises(PayloadError, match=r"^tags: a value holds a number past 64 bits or not finite$"):
        Fields.of({"tags": {"version": data.get("id")}}).strings("tags")


def test_numbers_within_64_bits_are_written_as_sent() -> None:
    body = b'{"a": 18446744073709551615, "b": -9223372036854775808, "c": 42, "d": 2.0, "e": 1.5, "f": 1e18}'
    data = Fields.of(decode_json(body))
    assert [data.text(k) for k in "abcdef"] == [
        "18446744073709551615",
        "-9223372036854775808",
        "42",
        "2",
        "1.5",
        "1000000000000000000",
    ]
    assert data.require_id("a") == "18446744073709551615"
    assert Fields.of({"tags": {"a": 18446744073709551615, "d": 2.0, "l": [1, True]}}).strings("tags") == {
        "a": "18446744073709551615",
        "d": "2.0",
        "l": "[1, true]",
    }
    with pytest.raises(PayloadError, match="tags: a value holds"):
        Fields.of({"tags": {"l": [1, float("inf")]}}).strings("tags")


def test_a_tag_nested_past_the_deepest_value_is_refused_however_deep_python_may_recurse() -> None:
    def nested(depth: int) -> object:
        value: object = "leaf"
        for level in range(depth):
            value = [value] if level % 2 else {"k": value}
        return value

    written = Fields.of({"tags": {"ok": nested(DEEPEST_VALUE)}}).strings("tags")["ok"]
    assert written.count("leaf") == 1 and written.count("[") + written.count("{") == DEEPEST_VALUE
    with pytest.raises(PayloadError, match="nests too deep"):
        Fields.of({"tags": {"deep": nested(DEEPEST_VALUE + 1)}}).strings("tags")
