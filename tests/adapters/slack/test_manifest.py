"""manifest/slack/manifest.yaml, rendered for a public URL, against Slack's manifest schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from adapters.slack.commands import MAIN_COMMAND, SHORT_COMMANDS
from adapters.slack.manifest import PLACEHOLDER_URL, TEMPLATE, manifest_data, render_manifest, slash_commands
from adapters.slack.membership import BACK, GONE
from bot.commands import COMMANDS_BY_VERB
from bot.config import Secret, SlackOAuthSettings


@pytest.fixture(scope="module")
def schema(shared_dir: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((shared_dir / "schemas/slack-app-manifest.schema.1.0.0.json").read_text())
    return data


@pytest.mark.parametrize(
    "public_url", [PLACEHOLDER_URL, "https://handoff.contoso.com/", "http://127.0.0.1:3978/bots/handoff"]
)
def test_rendered_manifest_is_valid(schema: dict[str, object], public_url: str) -> None:
    data = yaml.safe_load(render_manifest(public_url))
    jsonschema.validate(data, schema)


def test_every_request_url_is_the_events_endpoint() -> None:
    base = "https://handoff.contoso.com"
    data = manifest_data(base + "/")
    events = f"{base}/slack/events"
    assert data["settings"]["event_subscriptions"]["request_url"] == events
    assert data["settings"]["interactivity"] == {"is_enabled": True, "request_url": events}
    assert {c["url"] for c in data["features"]["slash_commands"]} == {events}
    assert data["oauth_config"]["redirect_urls"] == [f"{base}/slack/oauth_redirect"]
    assert PLACEHOLDER_URL not in render_manifest(base)


def test_manifest_matches_what_the_app_handles() -> None:
    data = manifest_data(PLACEHOLDER_URL)
    assert slash_commands() == [MAIN_COMMAND, *SHORT_COMMANDS]
    assert set(data["settings"]["event_subscriptions"]["bot_events"]) == {
        "app_mention",
        "app_uninstalled",
        "tokens_revoked",
        *GONE,
        *BACK,
        "member_joined_channel",
        "member_left_channel",
        "message.im",  # commands typed in someone's own chat with Handoff
    }
    # that chat is the app's Messages tab, which takes what people type
    assert data["features"]["app_home"]["messages_tab_enabled"] is True
    assert data["features"]["app_home"]["messages_tab_read_only_enabled"] is False
    scopes = set(data["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "app_mentions:read", "users:read", "users:read.email"} <= scopes
    assert {"channels:read", "groups:read"} <= scopes  # what the membership events need
    assert "im:history" in scopes  # what message.im needs
    default_install_scopes = SlackOAuthSettings(client_id="1", client_secret=Secret("S", "x")).scopes
    assert set(default_install_scopes) <= scopes


def test_the_template_itself_is_a_valid_manifest(schema: dict[str, object]) -> None:
    jsonschema.validate(yaml.safe_load(TEMPLATE.read_text()), schema)


@pytest.mark.parametrize("bad", ["handoff.contoso.com", "ftp://x", "https://", "https://a b", "https://h/?q=1", ""])
def test_bad_public_urls_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="absolute http"):
        render_manifest(bad)


@pytest.mark.parametrize("url", ["http://handoff.contoso.com", "foo", "https://h/?q=1"])
def test_an_app_slack_serves_needs_an_https_url(url: str) -> None:
    with pytest.raises(ValueError, match=r"^must be an https URL .*not '"):
        render_manifest(url, https_only=True)
    assert "https://handoff.contoso.com/slack/events" in render_manifest("https://handoff.contoso.com", https_only=True)


def test_an_app_slack_serves_is_not_the_examples_placeholder_host() -> None:
    with pytest.raises(ValueError, match=r"placeholder host handoff\.example\.com"):
        render_manifest("https://handoff.example.com/", https_only=True)


def test_the_command_hints_name_the_options_the_commands_take_and_the_runs_card_is_told_truly() -> None:
    data = manifest_data(PLACEHOLDER_URL)
    hints = {c["command"]: c["usage_hint"] for c in data["features"]["slash_commands"]}
    for verb in ("retrain", "integrate"):
        hint = hints[f"/{verb}"]
        assert "key=value" not in hint, hint
        assert all(f"{option}=" in hint for option in COMMANDS_BY_VERB[verb].options), hint
    # a run's card is a post of its own in the channel, not in the command's thread
    about = data["display_information"]["long_description"]
    assert "in the thread" not in about and "a card of its own in the channel" in about
