"""Who may cancel a run: the person who asked for it, wherever they ask, or someone who may run its command
where it was asked for."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from bot.commands import COMMANDS_BY_VERB
from bot.config import parse_settings
from bot.interactions import ChatUser
from bot.policy import Policy
from bot.records import CommandRun, CommandRunState

POLICY = Policy(
    parse_settings(
        {
            "channels": {"app-releases": {"slack": "C0APPS"}, "ml-models": {"slack": "C0MODELS"}},
            "roles": {
                "app-developers": {"members": ["bob@contoso.com"]},
                "data-scientists": {"members": ["dana@contoso.com"]},
            },
            "commands": {"integrate": {"roles": ["app-developers"], "channels": ["app-releases"]}},
        },
        {},
    )
)
INTEGRATE = COMMANDS_BY_VERB["integrate"]
BOB = ChatUser("slack", "U0BOB", "Bob Chen", "bob@contoso.com")
DANA = ChatUser("slack", "U0DANA", "Dana", "dana@contoso.com")
RUN = CommandRun(
    idempotency_key="bob@contoso.com:integrate app-y",
    actor="bob@contoso.com",
    platform="slack",
    conversation="C0APPS",
    command="integrate app-y",
    target="app-y",
    state=CommandRunState.STARTED,
    created_at=datetime(2026, 11, 28, 9, 40, tzinfo=UTC),
    id=8,
)


def test_who_asked_for_a_run_may_cancel_it_on_another_platform_though_no_longer_in_its_role() -> None:
    dana_asked = replace(RUN, actor="dana@contoso.com")
    dana_in_teams = ChatUser("teams", "29:dana", "Dana", "Dana@Contoso.com")
    assert POLICY.may_cancel(dana_in_teams, INTEGRATE, dana_asked, "Dana").allowed


def test_someone_who_may_run_its_command_where_it_was_asked_for_may_cancel_anothers_run() -> None:
    assert POLICY.may_cancel(BOB, INTEGRATE, replace(RUN, actor="erin@contoso.com"), "Erin").allowed


def test_anyone_else_is_told_who_may() -> None:
    verdict = POLICY.may_cancel(DANA, INTEGRATE, RUN, "Bob Chen")
    assert not verdict.allowed
    assert verdict.reason == "Only Bob Chen, who asked for it, or people in app-developers may cancel it."


def test_a_run_handoff_started_for_a_model_version_is_canceled_by_who_may_run_its_command() -> None:
    by_handoff = replace(RUN, actor="Handoff", platform="", conversation="")
    assert POLICY.may_cancel(BOB, INTEGRATE, by_handoff, "Handoff").allowed
    named_handoff = ChatUser("slack", "U0H", "Handoff")  # no requester to match by name: Handoff asked for it
    verdict = POLICY.may_cancel(named_handoff, INTEGRATE, by_handoff, "Handoff")
    assert not verdict.allowed
    assert verdict.reason == "Only people in app-developers may cancel it."
