"""The command grammar: quoting, options, flags, helpful errors, help from the table; never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import COMMANDS, UsageError, help_text, parse


def test_retrain_with_options_and_flag() -> None:
    command = parse("retrain model-x data=lake-data:8 compute='gpu cluster' dry-run")
    assert command.verb == "retrain" and command.target == "model-x"
    assert command.options == {"data": "lake-data:8", "compute": "gpu cluster"}
    assert command.flags == {"dry-run"}
    assert command.canonical == "retrain model-x 'compute=gpu cluster' data=lake-data:8 dry-run"


def test_slash_and_case_are_forgiven() -> None:
    assert parse("/Integrate app-y model=model-x:8").options == {"model": "model-x:8"}


def test_diff_takes_two_versions() -> None:
    assert parse("diff model-x:7 model-x:8").targets == ("model-x:7", "model-x:8")
    with pytest.raises(UsageError, match=r"`diff` needs two model versions, for example `diff model-x:7 model-x:8`\."):
        parse("diff model-x:7")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("retrian model-x", "Did you mean `retrain`?"),
        ("retrain", "`retrain` needs the name of a model, for example `retrain model-x`."),
        ("unsubscribe", "`unsubscribe` needs a subscription id, for example `unsubscribe 3` (`subscriptions` lists"),
        ("retrain model-x gpu=1", "`retrain` has no option `gpu`."),
        ("retrain model-x datta=x", "Did you mean `data`?"),
        ("retrain model-x data=", "`data=` needs a value."),
        ("retrain model-x model-y", "Unexpected `model-y`."),
        ('retrain "model-x', "A quote is not closed."),
        ("", "Type a command"),
        ("x" * 3000, "too long"),
    ],
)
def test_errors_say_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse(text)


def test_help_lists_only_what_the_person_may_run() -> None:
    everything = help_text()
    assert all(spec.verb in everything for spec in COMMANDS)
    limited = help_text(lambda spec: not spec.starts_work)
    assert "retrain" not in limited and "status" in limited
    detail = help_text(verb="retrain")
    assert "Usage: `retrain <model> [data=…] [compute=…] [dry-run]`" in detail
    assert "`retrain model-x dry-run`" in detail
    assert "not a command you can run" in help_text(lambda spec: not spec.starts_work, verb="retrain")
    assert detail.startswith("**retrain**: ")  # bold as the core writes it; each adapter renders it


def test_every_command_without_its_target_says_what_it_needs_with_an_example() -> None:
    for spec in COMMANDS:
        if spec.target_required:
            with pytest.raises(UsageError) as raised:
                parse(spec.verb)
            assert raised.value.message.startswith(f"`{spec.verb}` needs {spec.needs}, for example `{spec.verb} ")


def test_aliases_are_other_words_for_a_command() -> None:
    assert parse("sub events=run").canonical == parse("subscribe events=run").canonical
    assert [parse(text).verb for text in ("unsub 3", "SUBS", "pending", "?", "/sub")] == [
        "unsubscribe",
        "subscriptions",
        "approvals",
        "help",
        "subscribe",
    ]
    assert "Also: `sub`" in help_text(verb="sub") and help_text(verb="sub") == help_text(verb="subscribe")
    words = [word for spec in COMMANDS for word in (spec.verb, *spec.aliases)]
    assert len(words) == len(set(words))  # no word names two commands


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_explains(text: str) -> None:
    try:
        command = parse(text)
    except UsageError as error:
        assert error.message
    else:
        assert command.spec in COMMANDS
