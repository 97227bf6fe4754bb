"""Configuration: the example validates, and every kind of problem is named with its key path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from bot.config import (
    ConfigError,
    GatePolicySettings,
    Secret,
    configured_secrets,
    load_settings,
    parse_duration,
    parse_settings,
)
from bot.config_warnings import configuration_warnings
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


def test_a_secret_written_where_a_list_or_section_of_them_goes_is_not_shown_back() -> None:
    raw = example()
    raw["eventgrid"]["previous_delivery_secrets"] = "Rm9vQmFyU2VjcmV0"
    raw["azure_devops"]["service_hooks"] = {"basic": "handoff:hunter2-password"}
    said = problems(raw)
    assert "eventgrid.previous_delivery_secrets: expected a list" in said
    assert "azure_devops.service_hooks.basic: expected a mapping of settings" in said
    assert not any("Rm9vQmFy" in p or "hunter2" in p for p in said)
    raw = example()
    raw["server"]["port"] = "eighty"  # what holds no secret is still shown as it was written
    assert any("(got 'eighty')" in p for p in problems(raw))


def test_a_subscription_filter_chat_refuses_as_meaning_nothing_is_a_problem_at_its_key() -> None:
    raw = example()
    channel = next(iter(raw["channels"]))
    raw["subscriptions"] = [
        {"channel": channel, "models": ["fraud", "model-x:8"]},
        {"channel": channel, "events": ["model_registered"], "outcomes": ["failed"]},
        # as chat takes them: a kind with an outcome beside, or any outcome
        {"channel": channel, "events": ["run", "model_registered"], "outcomes": ["failed"]},
        {"channel": channel, "events": ["model_registered"], "outcomes": ["any"]},
        {"channel": channel, "models": ["model-*"]},
    ]
    assert problems(raw) == [
        "subscriptions[0].models: `model-x:8` names a version; `models` takes model names, such as model-x",
        "subscriptions[1].outcomes: `outcomes=failed` never applies to model_registered: it has no outcome, so "
        "every one would be sent. Leave `outcomes` out, or add a kind that has one, such as run",
    ]


def test_a_subscription_is_muted_until_a_time_written_with_its_offset() -> None:
    raw = example()
    channel = next(iter(raw["channels"]))
    raw["subscriptions"] = [
        {"channel": channel, "muted_until": "2026-12-01T09:00:00Z"},
        {"channel": channel, "muted_until": "2026-12-01T10:00:00+01:00"},
    ]
    muted = [s.muted_until for s in parse_settings(raw, {}).subscriptions]
    assert muted == [datetime(2026, 12, 1, 9, tzinfo=UTC)] * 2
    raw["subscriptions"] = [
        {"channel": channel, "muted_until": "2026-12-01T09:00:00"},
        {"channel": channel, "muted_until": "tomorrow"},
    ]
    found = problems(raw)
    assert found[0] == (
        "subscriptions[0].muted_until: 2026-12-01T09:00:00 says no time zone: add Z for UTC, or an offset such as "
        "+01:00 (2026-12-01T09:00:00Z)"
    )
    assert found[1].startswith("subscriptions[1].muted_until: ") and len(found) == 2


def test_a_mute_written_as_a_time_of_day_or_a_number_is_refused_not_read_as_a_moment_of_1970() -> None:
    raw = example()
    channel = next(iter(raw["channels"]))
    # YAML reads an unquoted 17:00 as 1020 (base 60); pydantic would take a number as seconds since 1970
    raw["subscriptions"] = [{"channel": channel, "muted_until": 1020}, {"channel": channel, "muted_until": 1.7e9}]
    found = problems(raw)
    assert len(found) == 2
    assert found[0].startswith("subscriptions[0].muted_until: 1020 is no date and time: write one in ISO form")
    assert "a time of day alone, such as 17:00, is for `mute … until=` in chat" in found[0]
    assert found[1].startswith("subscriptions[1].muted_until: 1700000000.0 is no date and time")


def test_check_warns_of_a_mute_that_has_passed() -> None:
    raw = example()
    channel = next(iter(raw["channels"]))
    raw["subscriptions"] = [
        {"channel": channel, "muted_until": "2026-12-01T09:00:00Z"},
        {"channel": channel, "muted_until": "2026-12-03T09:00:00Z"},
    ]
    settings = parse_settings(raw, {})
    warned = configuration_warnings(settings, now=datetime(2026, 12, 2, tzinfo=UTC))
    assert [(w.path, w.message) for w in warned if w.path.endswith("muted_until")] == [
        (
            "subscriptions[0].muted_until",
            "2026-12-01T09:00:00+00:00 has passed: the subscription is not muted; remove the key, or set a time to "
            "come",
        )
    ]


def test_a_duration_may_be_written_in_several_units_and_in_any_case() -> None:
    """As Handoff writes a duration (`repeat_limit=1h30m`), and as people type one (`4H`)."""
    for written, meant in (
        ("1h30m", timedelta(minutes=90)),
        ("1h 30m", timedelta(minutes=90)),
        ("4H", timedelta(hours=4)),
        ("1D12h", timedelta(hours=36)),
        ("2w1d", timedelta(days=15)),
        ("1m30s", timedelta(seconds=90)),
        ("1.5h", timedelta(minutes=90)),
        ("500ms", timedelta(milliseconds=500)),
        ("90", timedelta(seconds=90)),
        (" 15m ", timedelta(minutes=15)),
    ):
        assert parse_duration(written) == meant, written
    for wrong in ("", "h", "1h30", "1h-30m", "30x", "1.h", "m30"):
        with pytest.raises(ValueError, match="expected a duration such as 30s, 15m, 4h, 1h30m"):
            parse_duration(wrong)


def test_a_duration_past_any_date_is_a_problem_not_a_crash() -> None:
    for retention in ("1000000d", "99999999999d", 1e300, float("inf")):
        raw = example()
        raw["store"] = {**raw.get("store", {}), "audit_retention": retention}
        [problem] = problems(raw)
        assert problem.startswith("store.audit_retention: a duration is at most 36500d (100 years)"), retention
    assert parse_duration("36500d") == timedelta(days=36500)


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
    assert "gates.default.approver_roles: unknown role 'release-managers'" in found


def test_integration_rules_fail_closed() -> None:
    found = problems({"teams": {"app_id": ""}})
    assert any("allow_unauthenticated" in p for p in found)
    found = problems({"azure_devops": {"organization_url": "https://dev.azure.com/c", "projects": ["p"]}})
    assert any(p.startswith("azure_devops.service_hooks") for p in found)


def test_turning_teams_authentication_off_needs_an_empty_app_id() -> None:
    local = parse_settings({"teams": {"app_id": "", "allow_unauthenticated": True}}, {})
    assert local.teams is not None and local.teams.allow_unauthenticated
    registered = {"app_id": "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "app_password": "${P}"}
    assert problems({"teams": {**registered, "allow_unauthenticated": True}}, {"P": "x"}) == [
        "teams: allow_unauthenticated: true is for local use with an empty app_id; with an app_id set, "
        "requests are always authenticated: remove allow_unauthenticated"
    ]


def test_teams_authentication_is_off_only_on_an_address_of_this_machine() -> None:
    local = {"app_id": "", "allow_unauthenticated": True}
    for host in ("127.0.0.1", "::1", "localhost"):
        assert parse_settings({"server": {"host": host}, "teams": local}, {}).teams is not None
    for host in ("0.0.0.0", "::", "10.0.0.4"):
        assert problems({"server": {"host": host}, "teams": local}) == [
            f"teams.allow_unauthenticated: true takes Teams requests from anyone, and {host!r} is reachable from "
            "other machines: it is for local use, on 127.0.0.1, ::1 or localhost (set app_id and app_password "
            "from the Azure Bot registration to serve Teams elsewhere)"
        ]
    # a Teams section kept in the file but turned off serves nothing
    assert parse_settings({"server": {"host": "0.0.0.0"}, "teams": {**local, "enabled": False}}, {}).teams


def test_a_command_using_no_secret_loads_without_them_but_not_without_other_variables(tmp_path: Path) -> None:
    raw = example()
    raw["slack"]["enabled"] = True
    raw["store"]["url"] = "sqlite:///${HANDOFF_DB}"
    config = write(tmp_path, yaml.safe_dump(raw))
    settings = load_settings(config, {"HANDOFF_DB": "h.db"}, require_secrets=False)
    assert settings.slack is not None and not settings.slack.signing_secret.is_set
    assert settings.store.url == "sqlite:///h.db"
    assert file_problems(config, {"HANDOFF_DB": "h.db"}) == [
        "slack.signing_secret: environment variable SLACK_SIGNING_SECRET is not set",
        "slack.bot_token: environment variable SLACK_BOT_TOKEN is not set",
    ]
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {}, require_secrets=False)
    assert [str(p) for p in caught.value.problems] == ["store.url: environment variable HANDOFF_DB is not set"]


def test_a_reference_in_braces_that_yaml_cannot_read_gets_a_hint_to_quote_it(tmp_path: Path) -> None:
    flow = write(tmp_path, "azure_devops:\n  service_hooks:\n    basic: {username: h, password: ${X}}\n")
    (problem,) = file_problems(flow)
    assert problem.startswith("line 3, column ") and "not valid YAML (expected ',' or '}', but got '{')" in problem
    assert problem.endswith('a ${NAME} inside { } or [ ] must be quoted, as in password: "${NAME}"')
    other = write(tmp_path, "server: {port: [1}\n", "other.yaml")
    (problem,) = file_problems(other)
    assert "not valid YAML" in problem and "quoted" not in problem


def test_a_date_reads_as_written_and_an_alias_inside_itself_is_one_problem(tmp_path: Path) -> None:
    dated = write(
        tmp_path, "channels: {ml: {slack: C1}}\nsubscriptions:\n  - channel: ml\n    tags: {since: 2024-02-30}\n"
    )
    [subscription] = load_settings(dated, {}).subscriptions
    assert subscription.tags == {"since": "2024-02-30"}  # no date type, and none that cannot be
    looped = write(tmp_path, "server: {host: 127.0.0.1}\nchannels: &a [*a]\n", "looped.yaml")
    assert file_problems(looped) == ["channels[0]: an alias names the value it is in (`&a [*a]`), which never ends"]


def test_a_number_where_text_goes_is_that_text() -> None:
    raw = example()
    raw["apps"]["app-y"]["pinned_version"] = 8
    retrain = raw["models"]["model-x"]["retrain"]["azure_ml_job"]
    retrain["params"] = {"epochs": 10, "learning_rate": 0.01}
    settings = parse_settings(raw, {})
    assert settings.apps["app-y"].pinned_version == "8"
    job = settings.models["model-x"].retrain
    assert job is not None and job.azure_ml_job is not None
    assert job.azure_ml_job.params == {"epochs": "10", "learning_rate": "0.01"}
    raw["apps"]["app-y"]["pinned_version"] = True  # a yes/no is no version
    assert problems(raw) == ["apps.app-y.pinned_version: expected text (got True)"]


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
    assert problem == f"teams.graph.login_url: {PLAIN_HTTP_PROBLEM}"


PLAIN_HTTP_PROBLEM = "must be https (plain http only for an emulator on this machine: 127.0.0.1, ::1 or localhost)"
URLS_SENT_CREDENTIALS_OR_SHOWN = [
    "server.public_url",
    "slack.api_base_url",
    "teams.openid_metadata_url",
    "azure_devops.organization_url",
    "azure_ml.endpoint",
    "azure_ml.studio_url",
    "eventgrid.portal_url",
]


def with_url(key_path: str, url: str) -> dict[str, Any]:
    raw = example()
    section, key = key_path.split(".")
    raw[section][key] = url
    return raw


@pytest.mark.parametrize("key_path", URLS_SENT_CREDENTIALS_OR_SHOWN)
def test_urls_that_get_credentials_or_are_shown_are_https_except_on_this_machine(key_path: str) -> None:
    assert problems(with_url(key_path, "http://service.contoso.com/api/")) == [f"{key_path}: {PLAIN_HTTP_PROBLEM}"]
    for local in ("http://127.0.0.1:8000/api/", "http://localhost:8000/api/", "http://[::1]:8000/api/"):
        settings = parse_settings(with_url(key_path, local), {}).model_dump()
        section, key = key_path.split(".")
        assert settings[section][key].rstrip("/") == local.rstrip("/")
    parse_settings(with_url(key_path, "https://service.contoso.com/api/"), {})


def write(folder: Path, text: str, name: str = "handoff.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def file_problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ or {})
    return [str(p) for p in caught.value.problems]


def test_a_key_written_twice_is_a_problem_at_its_line(tmp_path: Path) -> None:
    text = """\
roles: {release-managers: {members: [carol@contoso.com]}}
commands: {retrain: {roles: [release-managers]}}
server: {port: 1, port: 2}
commands: {integrate: {roles: []}}
"""
    assert file_problems(write(tmp_path, text)) == [
        "server.port: duplicate key (line 3; first at line 3)",
        "commands: duplicate key (line 4; first at line 2)",
    ]
    # a merge key (<<) is not a duplicate, and neither is the same key in two mappings
    merged = "gates:\n  default: &base {min_approvers: 1}\n  strict:\n    <<: *base\n    min_approvers: 2\n"
    assert load_settings(write(tmp_path, merged), {}).gates["strict"].min_approvers == 2


def test_an_unknown_key_in_a_file_is_named_with_its_line(tmp_path: Path) -> None:
    text = """\
sever:
  port: 1
server:
  port: 2
  bogus: 3
  port: 4
server:
  prot: 5
"""
    # YAML keeps the second server section, so only its keys are checked (not bogus, in the first): the
    # section written twice is named, which leads to the first
    assert file_problems(write(tmp_path, text)) == [
        "server.port: duplicate key (line 6; first at line 4)",
        "server: duplicate key (line 7; first at line 3)",
        "server.prot: unknown key (line 8; did you mean 'port'?)",
        "sever: unknown key (line 1; did you mean 'server'?)",
    ]


def test_a_misspelt_command_rule_is_refused_rather_than_leaving_the_command_open() -> None:
    roles = {"data-scientists": {"members": ["alice@contoso.com"]}}
    assert problems({"roles": roles, "commands": {"retrian": {"roles": ["data-scientists"]}}}) == [
        "commands.retrian: unknown command (did you mean 'retrain'?)"
    ]
    # the policy looks a rule up by the command's full name, so a short form would be ignored as well
    assert problems({"commands": {"pending": {"channels": []}}}) == [
        "commands.pending: unknown command (did you mean 'approvals'? 'pending' is its short form; "
        "rules use the full name)"
    ]


def test_a_promotion_gate_names_a_configured_gate_policy() -> None:
    raw = example()
    raw["models"]["model-x"]["promotion_gate"]["policy"] = "strict"
    assert problems(raw) == ["models.model-x.promotion_gate.policy: unknown gate policy 'strict'"]
    raw["gates"]["strict"] = {"approver_roles": ["release-managers"]}
    assert parse_settings(raw, {}).models["model-x"].promotion_gate is not None
    without_gates = {"models": {"model-x": {"promotion_gate": {"release": {"project": "p", "pipeline": "release"}}}}}
    assert parse_settings(without_gates, {}).gates == {"default": GatePolicySettings()}


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite://", "sqlite:///:memory:", "sqlite:///h.db?mode=memory"])
def test_an_in_memory_sqlite_store_is_refused(url: str) -> None:
    assert problems({"store": {"url": url}}) == [
        "store.url: a SQLite URL needs a file path, such as sqlite:///.handoff/handoff.db "
        "(an in-memory database loses everything when Handoff stops)"
    ]


def test_a_store_password_is_percent_encoded_from_a_variable_and_must_be_in_the_file() -> None:
    url = "postgresql://user:${PGPASSWORD}@127.0.0.1:5432/test"
    settings = parse_settings({"store": {"url": url}}, {"PGPASSWORD": "p@ss:w0rd/#"})
    assert settings.store.url == "postgresql://user:p%40ss%3Aw0rd%2F%23@127.0.0.1:5432/test"
    parsed = make_url(settings.store.url)  # as the store reads it
    assert (parsed.password, parsed.host, parsed.port, parsed.database) == ("p@ss:w0rd/#", "127.0.0.1", 5432, "test")
    # the URL is named with its password masked, even where the password ends the host part early
    for written, shown in (
        ("postgresql://user:p@ss:w0rd@127.0.0.1:5432/test", "postgresql://user:***@127.0.0.1:5432/test"),
        ("postgresql://user:p/w0rd@127.0.0.1/test", "postgresql://user:***@127.0.0.1/test"),
        ("postgresql://user:p#w0rd@127.0.0.1/test?password=w0rd", "postgresql://user:***@127.0.0.1/test?password=***"),
    ):
        (problem,) = problems({"store": {"url": written}})
        assert problem.startswith(f"store.url: {shown}: the password must be percent-encoded (@ as %40, / as %2F")
        assert "w0rd" not in problem
    assert problems({"store": {"url": "postgresql://user:s3cret@127.0.0.1:54x2/test"}}) == [
        "store.url: postgresql://user:***@127.0.0.1:54x2/test: the port must be a number"
    ]


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    utf16 = tmp_path / "u16.yaml"
    utf16.write_bytes("server:\n  port: 0\n".encode("utf-16"))
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("channels:\n  ops: {slack: C1, description: caf\u00e9}\n".encode("latin-1"))
    for path in (utf16, latin1):
        assert file_problems(path) == ["cannot read the file: it is not UTF-8"]


def test_one_pass_lists_field_and_reference_problems_together() -> None:
    raw = {
        "server": {"prot": 80},
        "store": {"dedupe_retention": "72 hours"},
        "channels": {"ops": {"slack": "C1"}},
        "subscriptions": [{"channel": "nope"}],
        "ops_channel": "opz",
    }
    assert problems(raw) == [
        "server.prot: unknown key (did you mean 'port'?)",
        "store.dedupe_retention: expected a duration such as 30s, 15m, 4h, 1h30m, 7d or a number of seconds",
        "subscriptions[0].channel: unknown channel 'nope'",
        "ops_channel: unknown channel 'opz' (did you mean 'ops'?)",
    ]


def test_values_that_would_fail_later_are_refused_now() -> None:
    raw = example()
    raw["teams"]["app_id"] = "not-a-guid"
    raw["azure_devops"]["organization_url"] = "127.0.0.1:9/ado/contoso"
    raw["slack"]["api_base_url"] = "127.0.0.1:9/slack/api/"
    raw["azure_ml"]["endpoint"] = "127.0.0.1:9/aml"
    raw["roles"]["release-managers"]["members"] = ["carol@contoso.com", "carol"]
    raw["gates"]["default"]["expire_after"] = 0
    raw["server"]["shutdown_timeout"] = -5
    raw["commands"]["retrain"]["confirm_expires"] = 0  # a Confirm button that has expired when it is shown
    url_problem = "expected an absolute URL starting with https:// (or http:// for an emulator)"
    assert problems(raw) == [
        "server.shutdown_timeout: must not be negative",
        f"slack.api_base_url: {url_problem}",
        "teams.app_id: expected the Azure Bot's Microsoft App ID, a GUID such as "
        "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b (or empty, with allow_unauthenticated: true, for local use)",
        f"azure_devops.organization_url: {url_problem}",
        f"azure_ml.endpoint: {url_problem}",
        "gates.default.expire_after: must be longer than 0",
        "roles.release-managers.members[1]: expected an email, aad:<object id>, slack:<user id> or "
        "teams:<user id>; a bare name matches nobody",
        "commands.retrain.confirm_expires: must be longer than 0",
    ]
    members = ["carol@contoso.com", "aad:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "slack:U0CAROL", "teams:29:1abc"]
    assert parse_settings({"roles": {"rm": {"members": members}}}, {}).roles["rm"].members == members


def test_missing_job_and_contract_files_are_found_beside_the_configuration(tmp_path: Path) -> None:
    raw = example()
    raw["azure_ml"]["enabled"] = True
    raw["models"]["model-x"]["retrain"]["azure_ml_job"]["job_file"] = "jobs/missing.yml"
    raw["apps"]["app-y"]["contract_file"] = "contracts/missing.json"
    config = write(tmp_path, yaml.safe_dump(raw))
    assert file_problems(config) == [
        f"models.model-x.retrain.azure_ml_job.job_file: file not found ({tmp_path / 'jobs/missing.yml'})",
        f"apps.app-y.contract_file: file not found ({tmp_path / 'contracts/missing.json'})",
    ]
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs/missing.yml").write_text("command: python train.py\n")
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts/missing.json").write_text("{}")
    assert load_settings(config, {}).apps["app-y"].contract_file == "contracts/missing.json"


def test_a_value_from_the_environment_is_named_by_its_variable_never_shown() -> None:
    secret = "p@ss:w0rd"
    found = problems(
        {"server": {"port": "${PGPASSWORD}", "log_level": "${LEVEL}"}}, {"PGPASSWORD": secret, "LEVEL": "x"}
    )
    assert found == [
        "server.port: Input should be a valid integer, unable to parse string as an integer (from ${PGPASSWORD})",
        "server.log_level: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR' (from ${LEVEL})",
    ]
    assert not any(secret in problem for problem in found)
    assert problems({"server": {"port": "eighty"}}) == [
        "server.port: Input should be a valid integer, unable to parse string as an integer (got 'eighty')"
    ]


def test_an_apps_owners_take_the_people_forms_a_roles_members_do() -> None:
    raw = example()
    owners = ["dana@contoso.com", "aad:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "slack:U0DANA", "teams:29:1abc"]
    raw["apps"]["app-y"]["owners"] = owners
    assert parse_settings(raw, {}).apps["app-y"].owners == owners
    raw["apps"]["app-y"]["owners"] = ["dana@contoso.com", "dana"]
    assert problems(raw) == [
        "apps.app-y.owners[1]: expected an email, aad:<object id>, slack:<user id> or teams:<user id>; "
        "a bare name matches nobody"
    ]


def test_an_actor_filter_takes_emails_since_a_bare_name_matches_nobody() -> None:
    raw = example()
    raw["subscriptions"][0]["actors_include"] = ["dana@contoso.com", "dana"]
    raw["subscriptions"][0]["actors_exclude"] = ["me"]
    assert problems(raw) == [
        "subscriptions[0].actors_include[1]: expected an email; a bare name matches nobody",
        "subscriptions[0].actors_exclude[0]: expected an email; a bare name matches nobody",
    ]
    raw["subscriptions"][0]["actors_include"] = ["Dana@Contoso.com"]
    raw["subscriptions"][0]["actors_exclude"] = []
    assert parse_settings(raw, {}).subscriptions[0].actors_include == ["Dana@Contoso.com"]


def test_every_value_from_the_environment_that_is_refused_names_its_variable() -> None:
    raw = example()
    raw["server"]["public_url"] = "${PUB:-ftp://handoff.contoso.com}"
    raw["server"]["shutdown_timeout"] = "${GRACE}"
    raw["slack"]["api_base_url"] = "${SLACK_API}"
    raw["azure_devops"]["organization_url"] = "${ADO_ORG}"
    raw["gates"]["default"]["expire_after"] = "${EXPIRE:-0}"
    environ = {"GRACE": "soon", "SLACK_API": "slack.com/api", "ADO_ORG": "http://dev.azure.com/contoso"}
    url_problem = "expected an absolute URL starting with https:// (or http:// for an emulator)"
    assert problems(raw, environ) == [
        f"server.public_url: {url_problem} (from ${{PUB:-ftp://handoff.contoso.com}})",
        "server.shutdown_timeout: expected a duration such as 30s, 15m, 4h, 1h30m, 7d or a number of seconds "
        "(from ${GRACE})",
        f"slack.api_base_url: {url_problem} (from ${{SLACK_API}})",
        "azure_devops.organization_url: must be https (plain http only for an emulator on this machine: "
        "127.0.0.1, ::1 or localhost) (from ${ADO_ORG})",
        "gates.default.expire_after: must be longer than 0 (from ${EXPIRE:-0})",
    ]


def test_a_value_of_the_wrong_shape_or_a_missing_key_is_told_in_the_files_words() -> None:
    assert problems({"server": 5, "subscriptions": [{"events": ["run"]}], "channels": 5}) == [
        "server: expected a mapping of settings (got 5)",
        "channels: expected a mapping (got 5)",
        "subscriptions[0].channel: missing (required in subscriptions[0])",
    ]
    assert problems({"slack": {"oauth": {"client_id": "1.2"}}}) == [
        "slack.signing_secret: missing (required when slack is configured)",
        "slack.oauth.client_secret: missing (required in slack.oauth)",
    ]


def test_a_hook_timeout_is_answered_before_event_grid_gives_up() -> None:
    assert parse_settings(example(), {}).server.hook_timeout == timedelta(seconds=10)
    for late, problem in (
        ("30s", "must be under 30s: Event Grid stops waiting for an answer at 30 s"),
        ("0s", "must be longer than 0"),
    ):
        raw = example()
        raw["server"]["hook_timeout"] = late
        assert problems(raw) == [f"server.hook_timeout: {problem}"]
