"""Configuration: the example validates, and every kind of problem is named with its key path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import ConfigError, Secret, configured_secrets, load_settings, parse_settings
from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "handoff.example.yaml"


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def problems(raw: Any, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, environ or {})
    return [str(p) for p in caught.value.problems]


def test_example_is_valid_without_any_secret() -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert settings.server.port == 3978
    assert settings.store.dedupe_retention == timedelta(hours=72)
    assert settings.gates["default"].expire_after == timedelta(hours=72)
    assert settings.slack is not None and not settings.slack.enabled


def test_unknown_key_wrong_type_and_unset_secret_are_all_named() -> None:
    raw = example()
    raw["server"]["prot"] = 8080
    raw["store"]["dedupe_retention"] = "three days"
    raw["slack"]["enabled"] = True
    found = problems(raw)
    assert "server.prot: unknown key (did you mean 'port'?)" in found
    assert any(p.startswith("store.dedupe_retention: expected a duration") for p in found)
    assert "slack.signing_secret: environment variable SLACK_SIGNING_SECRET is not set" in found
    assert "slack.bot_token: environment variable SLACK_BOT_TOKEN is not set" in found


def test_retention_is_long_enough_for_redeliveries() -> None:
    settings = parse_settings({}, {})
    assert settings.store.dedupe_retention == timedelta(hours=72)
    assert settings.store.delivery_retention == timedelta(days=14)
    assert settings.store.card_retention == timedelta(days=90)
    assert settings.store.audit_retention is None  # kept for good
    short = {"dedupe_retention": "24h", "delivery_retention": "10m", "card_retention": "2d", "audit_retention": "7d"}
    assert problems({"store": short}) == [
        "store.dedupe_retention: must be at least 72h, so that a sender's late redelivery is still recognised",
        "store.delivery_retention: must be at least 1h",
        "store.card_retention: must be at least 7d, so that a run's card outlives the run and the reruns of its stages",
        "store.audit_retention: must be at least 30d, so that a month of decisions and commands can be looked back on",
    ]
    assert parse_settings({"store": {"audit_retention": "400d"}}, {}).store.audit_retention == timedelta(days=400)
    longer = parse_settings({"store": {"dedupe_retention": "7d", "delivery_retention": "2h"}}, {}).store
    assert (longer.dedupe_retention, longer.delivery_retention) == (timedelta(days=7), timedelta(hours=2))


def test_unknown_section_gets_did_you_mean() -> None:
    assert problems({"chanels": {}}) == ["chanels: unknown key (did you mean 'channels'?)"]


def test_secret_values_are_refused_in_the_file() -> None:
    raw = {"eventgrid": {"delivery_secret": "hunter2-literal"}}
    (problem,) = problems(raw)
    assert problem.startswith("eventgrid.delivery_secret: secrets are read from the environment")
    assert "hunter2" not in problem


def test_secrets_come_from_the_environment_and_never_print() -> None:
    raw = example()
    raw["slack"]["enabled"] = True
    settings = parse_settings(raw, {"SLACK_SIGNING_SECRET": "sign-123456", "SLACK_BOT_TOKEN": "xoxb-1-abc"})
    assert settings.slack is not None
    secret = settings.slack.signing_secret
    assert isinstance(secret, Secret) and secret.reveal() == "sign-123456"
    assert "sign-123456" not in repr(settings) and "sign-123456" not in str(secret)
    assert sorted(configured_secrets(settings)) == ["sign-123456", "xoxb-1-abc"]


def test_interpolation_in_plain_values() -> None:
    raw = {
        "store": {"url": "postgresql://handoff:${PGPASSWORD}@db/handoff"},
        "server": {"host": "${HOST:-0.0.0.0}"},
    }
    settings = parse_settings(raw, {"PGPASSWORD": "pw"})
    assert settings.store.url == "postgresql://handoff:pw@db/handoff"
    assert settings.server.host == "0.0.0.0"
    assert problems({"server": {"public_url": "${PUBLIC_URL}"}}) == [
        "server.public_url: environment variable PUBLIC_URL is not set"
    ]


def test_cross_references_must_resolve() -> None:
    raw = {
        "channels": {"ml-models": {"slack": "C1"}},
        "subscriptions": [{"channel": "ml-model"}],
        "gates": {"default": {"approver_roles": ["release-managers"]}},
    }
    found = problems(raw)
    assert "subscriptions[0].channel: unknown channel 'ml-model' (did you mean 'ml-models'?)" in found
    assert "gates.default: unknown role 'release-managers'" in found


def test_integration_rules_fail_closed() -> None:
    found = problems({"teams": {"app_id": ""}})
    assert any("allow_unauthenticated" in p for p in found)
    found = problems({"azure_devops": {"organization_url": "https://dev.azure.com/c", "projects": ["p"]}})
    assert any(p.startswith("azure_devops.service_hooks") for p in found)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_settings(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("server:\n  port: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_settings(scalar)


def test_postgres_parameters_are_checked_before_connecting() -> None:
    url = "postgresql://handoff@db/handoff"
    assert problems({"store": {"url": f"{url}?sslmode=sometimes"}}) == [
        "store.url: sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full, not 'sometimes'"
    ]
    assert problems({"store": {"url": f"{url}?connect_timeout=soon"}}) == [
        "store.url: connect_timeout must be a number of seconds, not 'soon'"
    ]
    good = f"{url}?sslmode=verify-full&sslrootcert=/etc/ssl/azure.pem&connect_timeout=10&application_name=handoff"
    assert parse_settings({"store": {"url": good}}, {}).store.url == good


def test_finding_lost_teams_posts_is_off_by_default_and_checked_when_on() -> None:
    teams = {"app_id": "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "app_password": "${P}"}
    settings = parse_settings({"teams": teams}, {"P": "x"})
    assert settings.teams is not None and not settings.teams.graph.find_lost_posts
    assert settings.teams.graph.api_url == "https://graph.microsoft.com/v1.0"

    on = parse_settings(
        {"teams": {**teams, "graph": {"find_lost_posts": True, "api_url": "https://g/v1.0/"}}}, {"P": "x"}
    )
    assert on.teams is not None and on.teams.graph.find_lost_posts and on.teams.graph.api_url == "https://g/v1.0"

    msi = {
        "app_id": teams["app_id"],
        "app_type": "UserAssignedMSI",
        "tenant_id": "t",
        "graph": {"find_lost_posts": True},
    }
    (problem,) = problems({"teams": msi})
    assert "find_lost_posts needs the bot's app_password" in problem
    (problem,) = problems({"teams": {**teams, "graph": {"login_url": "login.microsoftonline.com"}}}, {"P": "x"})
    assert problem.startswith("teams.graph.login_url: ")


def test_graph_urls_are_https_except_for_an_emulator_on_this_machine() -> None:
    teams = {"app_id": "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "app_password": "${P}"}
    local = {"api_url": "http://127.0.0.1:8000/graph/v1.0", "login_url": "http://localhost:8000/login"}
    settings = parse_settings({"teams": {**teams, "graph": local}}, {"P": "x"})
    assert settings.teams is not None and settings.teams.graph.login_url == "http://localhost:8000/login"

    (problem,) = problems({"teams": {**teams, "graph": {"login_url": "http://login.contoso.com"}}}, {"P": "x"})
    assert problem == "teams.graph.login_url: must be https (plain http only for an emulator on 127.0.0.1)"
