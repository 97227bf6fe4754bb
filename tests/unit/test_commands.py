"""The command grammar: quoting, options, flags, helpful errors, help from the table; never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import COMMANDS, UsageError, closest_option, help_text, parse, run_number


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
    limited = help_text(lambda spec: "`retrain` is for data-scientists." if spec.starts_work else "")
    assert "retrain" not in limited and "status" in limited
    detail = help_text(verb="retrain")
    assert "Usage: `retrain <model> [data=…] [compute=…] [dry-run]`" in detail
    assert "`retrain model-x dry-run`" in detail
    assert "not a command." in help_text(verb="retrian") and "Did you mean `retrain`?" in help_text(verb="retrian")
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


def test_an_option_given_twice_is_refused_and_a_list_given_twice_adds_up() -> None:
    with pytest.raises(UsageError, match=r"`model` is given twice \(`model=model-x:8` and `model=model-x:7`\)"):
        parse("integrate app-y model=model-x:8 model=model-x:7")
    with pytest.raises(UsageError, match=r"`tags.stage` is given twice"):
        parse("subscribe tags.stage=prod tags.stage=dev")
    with pytest.raises(UsageError, match=r"`text_exclude` is given twice"):
        parse("subscribe text_exclude=a text_exclude=b")
    command = parse("subscribe events=run pipelines=integrate-* pipelines=release-*")
    assert command.options == {"events": "run", "pipelines": "integrate-*,release-*"}
    assert "A list given twice adds up (`events=a events=b` is `events=a,b`)" in help_text(verb="subscribe")


@pytest.mark.parametrize(
    "text",
    ["subscribe events=run,  approval", "subscribe events=run ,approval", "subscribe events=run, approval dry-run"],
)
def test_a_space_beside_a_lists_comma_is_forgiven(text: str) -> None:
    command = parse(text)
    assert command.options == {"events": "run,approval"} and command.targets == ()
    assert command.flags == ({"dry-run"} if "dry-run" in text else set())


def test_a_run_number_may_be_written_with_a_hash() -> None:
    assert [run_number(text) for text in ("1", "#12", " #3 ")] == [1, 12, 3]
    assert [run_number(text) for text in ("abc", "#", "", None, "#-1", "\uff11", "1.5")] == [None] * 7


def test_help_for_a_command_someone_may_not_run_shows_it_and_says_who_may() -> None:
    refused = help_text(lambda spec: "`retrain` is for data-scientists." if spec.starts_work else "", verb="retrain")
    assert "Usage: `retrain <model> [data=…] [compute=…] [dry-run]`" in refused
    assert refused.endswith("You can't run it here: `retrain` is for data-scientists.")
    assert "can't run" not in help_text(verb="retrain")


@pytest.mark.parametrize(
    ("typed", "option", "suggested"),
    [
        ("subscribe branch=main", "branch", " Did you mean `branches`?"),
        ("subscribe tag=prod", "tag", " Did you mean `tags.<key>`?"),  # the filter it is short for
        ("subscribe tag.stage=prod", "tag.stage", " Did you mean `tags.<key>`?"),  # a key: only a family has one
        ("subscribe mute=1h", "mute", " Did you mean the command `mute`, such as `mute 3 for=4h`?"),
        ("subscribe actor=me", "actor", " Did you mean `actors_include` or `actors_exclude`?"),
        ("subscribe evnets=run", "evnets", " Did you mean `events`?"),
        ("subscribe compact=on", "compact", ""),  # no filter is like it (`outcomes` and `projects` are not)
        ("subscribe colour=red", "colour", ""),  # nothing comes close: no guess
        ("subscribe branches=", "branches", " Did you mean `branches`?"),
    ],
)
def test_an_option_mistake_names_its_option_and_the_closest_known_one(typed: str, option: str, suggested: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse(typed)
    assert raised.value.option == option
    assert raised.value.spec is not None and closest_option(raised.value.spec, option) == suggested


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("subscribe text_exclude=\u201cdry run\u201d", "dry run"),  # as a phone or a Mac types "dry run"
        ("subscribe text_exclude=\u2018dry run\u2019", "dry run"),
        ("subscribe text_exclude=bob\u2019s", "bob\u2019s"),  # an apostrophe, not a quote
    ],
)
def test_typographic_quotes_are_quotes(text: str, value: str) -> None:
    command = parse(text)
    assert command.options == {"text_exclude": value} and command.targets == ()
