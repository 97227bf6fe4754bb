"""Subscription filters: each narrows, globs and regexes match, mutes silence, actors can be skipped."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import ConfigError, parse_settings
from bot.events import ModelRegistered, Person, PipelineRef, RunStateChanged, StageStateChanged
from bot.records import ConversationAddress
from bot.routing import DEFAULT_FILTERS, Filters, Subscription, configured_subscriptions, route

NOW = datetime(2026, 11, 28, tzinfo=UTC)
RUN = PipelineRef(
    organization="contoso",
    project="mlops",
    pipeline_id="7",
    pipeline_name="integrate-app-y",
    run_id="42",
    run_name="20261128.1",
    branch="refs/heads/main",
)
SLACK = ConversationAddress("slack", "C1")


def run_event(
    state: str = "completed", result: str | None = "failed", actor: str = "bob@contoso.com"
) -> RunStateChanged:
    return RunStateChanged(
        source="azure-devops",
        event_id=f"e-{state}-{result}",
        occurred_at=NOW,
        project="mlops",
        actor=Person(name="Bob", email=actor),
        run=RUN,
        state=state,
        result=result,
        text="Run 20261128.1 failed",
    )


def model_event(name: str = "model-x", tags: dict[str, str] | None = None) -> ModelRegistered:
    return ModelRegistered(
        source="azure-ml",
        event_id="m1",
        occurred_at=NOW,
        model_name=name,
        model_version="8",
        model_tags=tags or {},
    )


def test_empty_filters_match_everything() -> None:
    assert Filters().matches(run_event()) and Filters().matches(model_event())


def test_default_filters_are_failures_approvals_and_models() -> None:
    filters = Filters.from_mapping(DEFAULT_FILTERS)
    assert filters.matches(run_event(result="failed"))
    assert not filters.matches(run_event(result="succeeded"))
    assert not filters.matches(run_event(state="inProgress", result=None))
    assert filters.matches(model_event())  # no outcome to filter on


def test_globs_and_tags() -> None:
    filters = Filters.from_mapping({"pipelines": ["integrate-*"], "branches": ["refs/heads/ma*"]})
    assert filters.matches(run_event())
    assert not Filters.from_mapping({"pipelines": ["release-*"]}).matches(run_event())
    assert not Filters.from_mapping({"stages": ["Deploy"]}).matches(run_event())  # runs have no stage
    stage = StageStateChanged(
        source="azure-devops",
        event_id="s",
        occurred_at=NOW,
        run=RUN,
        stage_name="deploy",
        stage_display_name="Deploy",
        state="completed",
        result="failed",
    )
    assert Filters.from_mapping({"stages": ["dep*"]}).matches(stage)
    tagged = Filters.from_mapping({"models": ["model-*"], "tags": {"team": "fraud*"}})
    assert tagged.matches(model_event(tags={"team": "fraud-detection"}))
    assert not tagged.matches(model_event(tags={"team": "churn"}))
    assert not tagged.matches(model_event(name="other", tags={"team": "fraud"}))


def test_actors_and_text() -> None:
    assert not Filters.from_mapping({"actors_exclude": ["BOB@contoso.com"]}).matches(run_event())
    assert Filters.from_mapping({"actors_include": ["bob@contoso.com"]}).matches(run_event())
    assert not Filters.from_mapping({"actors_include": ["alice@contoso.com"]}).matches(run_event())
    assert Filters.from_mapping({"text_include": [r"run \d+\.1"]}).matches(run_event())
    assert not Filters.from_mapping({"text_exclude": ["FAILED"]}).matches(run_event())


def test_text_patterns_take_linear_time_and_refuse_what_needs_backtracking() -> None:
    # Python's re would take about 2**40 steps here; RE2 one pass over the text
    pathological = Filters.from_mapping({"text_include": ["(a|a)*b"]})
    event = replace(run_event(), text="a" * 40)
    assert not pathological.matches(event)
    assert pathological.matches(replace(event, text="a" * 40 + "B"))  # case-insensitive, as before
    with pytest.raises(ValueError, match="not a pattern Handoff can match"):
        Filters.from_mapping({"text_exclude": [r"(run) \1"]})


def test_a_configured_pattern_that_cannot_work_is_a_configuration_problem() -> None:
    raw = {"channels": {"ops": {"slack": "C1"}}, "subscriptions": [{"channel": "ops", "text_include": ["(?<=x)y"]}]}
    with pytest.raises(ConfigError) as error:
        parse_settings(raw, {})
    [problem] = error.value.problems
    assert problem.path == "subscriptions[0].text_include"
    assert problem.message.startswith("not a pattern Handoff can match")


def test_mute_until() -> None:
    muted = Subscription((SLACK,), Filters(), muted_until=NOW + timedelta(hours=1))
    assert route(run_event(), [muted], NOW) == set()
    assert route(run_event(), [muted], NOW + timedelta(hours=2)) == {SLACK}


def test_configured_channels_fan_out_to_both_platforms() -> None:
    settings = parse_settings(
        {
            "channels": {"releases": {"slack": "C1", "teams": "19:r@thread.tacv2"}},
            "subscriptions": [{"channel": "releases", "events": ["run"], "outcomes": ["failed"]}],
        },
        {},
    )
    subscriptions = configured_subscriptions(settings)
    assert route(run_event(), subscriptions, NOW) == {
        SLACK,
        ConversationAddress("teams", "19:r@thread.tacv2"),
    }
    assert route(model_event(), subscriptions, NOW) == set()
