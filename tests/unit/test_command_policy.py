"""Who may run a command: its `commands:` entry, or the entry of the command whose roles it follows."""

from __future__ import annotations

from typing import Any

from bot.commands import COMMANDS_BY_VERB
from bot.config import parse_settings
from bot.interactions import ChatUser
from bot.policy import Policy
from bot.records import ConversationAddress

CAROL = ChatUser("slack", "U0CAROL", "Carol Diaz", "carol@contoso.com")
DANA = ChatUser("slack", "U0DANA", "Dana", "dana@contoso.com")
MODELS = ConversationAddress("slack", "C0MODELS")
CHANGING_SUBSCRIPTIONS = ("unsubscribe", "mute", "unmute")


def policy(commands: dict[str, Any]) -> Policy:
    return Policy(
        parse_settings(
            {
                "channels": {"app-releases": {"slack": "C0APPS"}, "ml-models": {"slack": "C0MODELS"}},
                "roles": {
                    "release-managers": {"members": ["carol@contoso.com"]},
                    "data-scientists": {"members": ["dana@contoso.com"]},
                },
                "commands": commands,
            },
            {},
        )
    )


def test_unsubscribe_mute_and_unmute_are_for_who_may_subscribe() -> None:
    restricted = policy({"subscribe": {"roles": ["release-managers"]}})
    for verb in CHANGING_SUBSCRIPTIONS:
        spec = COMMANDS_BY_VERB[verb]
        verdict = restricted.may_run(DANA, spec, MODELS)
        assert not verdict.allowed
        assert verdict.reason == f"`{verb}` is for release-managers, as `subscribe` is; you are not in that role."
        assert restricted.may_run(CAROL, spec, MODELS).allowed
    # the subscriptions are listed to anyone
    assert restricted.may_run(DANA, COMMANDS_BY_VERB["subscriptions"], MODELS).allowed
    # nothing said of subscribe: anyone
    for verb in CHANGING_SUBSCRIPTIONS:
        assert policy({}).may_run(DANA, COMMANDS_BY_VERB[verb], MODELS).allowed


def test_a_command_with_an_entry_of_its_own_goes_by_it() -> None:
    own = policy(
        {
            "subscribe": {"roles": ["release-managers"]},
            "mute": {"roles": ["data-scientists"]},
            "unmute": {"roles": []},
        }
    )
    assert own.may_run(DANA, COMMANDS_BY_VERB["mute"], MODELS).allowed
    assert not own.may_run(CAROL, COMMANDS_BY_VERB["mute"], MODELS).allowed
    assert own.may_run(DANA, COMMANDS_BY_VERB["unmute"], MODELS).allowed
    assert not own.may_run(DANA, COMMANDS_BY_VERB["unsubscribe"], MODELS).allowed


def test_only_subscribes_roles_are_followed_not_where_it_may_run() -> None:
    """A subscription made before `subscribe` was kept to one channel may still be removed where it is."""
    kept = policy({"subscribe": {"roles": ["release-managers"], "channels": ["app-releases"]}})
    assert not kept.may_run(CAROL, COMMANDS_BY_VERB["subscribe"], MODELS).allowed
    for verb in CHANGING_SUBSCRIPTIONS:
        assert kept.may_run(CAROL, COMMANDS_BY_VERB[verb], MODELS).allowed
        assert not kept.may_run(DANA, COMMANDS_BY_VERB[verb], MODELS).allowed
