"""Subscription filters: each narrows, globs and regexes match, mutes silence, actors can be skipped."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import ConfigError, parse_settings, subscription_filter_problems
from bot.events import (
    EVENT_KINDS,
    ApprovalPending,
    CodePushed,
    DataArrived,
    DataDriftDetected,
    DomainEvent,
    ModelDeployed,
    ModelRegistered,
    Person,
    PipelineRef,
    PullRequestChanged,
    ReleaseDeploymentCompleted,
    RunStateChanged,
    StageStateChanged,
    TrainingRunFinished,
)
from bot.records import ConversationAddress
from bot.routing import (
    DEFAULT_FILTERS,
    DEFAULTS_MARK,
    KINDS_WITHOUT_OUTCOME,
    Filters,
    Subscription,
    TargetOptions,
    configured_subscriptions,
    depends_on_actor,
    depends_on_run_facts,
    muted_there,
    route,
    route_with_options,
    turned_away,
)

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


def failed_stage() -> StageStateChanged:
    return StageStateChanged(
        source="azure-devops",
        event_id="s",
        occurred_at=NOW,
        run=RUN,
        stage_name="deploy",
        stage_display_name="Deploy",
        state="completed",
        result="failed",
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


def deployment(*model_ids: str, tags: dict[str, str] | None = None) -> ModelDeployed:
    return ModelDeployed(
        source="azure-ml",
        event_id="d1",
        occurred_at=NOW,
        service_name="scoring",
        model_ids=model_ids,
        service_tags=tags or {},
        text=f"Deployed {', '.join(model_ids)} to scoring",
    )


def test_empty_filters_match_everything() -> None:
    assert Filters().matches(run_event()) and Filters().matches(model_event())


def test_default_filters_are_failures_approvals_and_models() -> None:
    filters = Filters.from_mapping(DEFAULT_FILTERS)
    assert filters.matches(run_event(result="failed"))
    assert not filters.matches(run_event(result="succeeded"))
    assert not filters.matches(run_event(state="inProgress", result=None))
    assert filters.matches(model_event())  # no outcome to filter on
    # a classic release's deployment that failed is a failure; one that succeeded is not
    assert filters.matches(classic_deployment("rejected")) and filters.matches(classic_deployment("failed"))
    assert not filters.matches(classic_deployment("succeeded"))
    assert not filters.matches(classic_deployment("canceled"))


def test_failures_only_means_failures_only() -> None:
    push = CodePushed(source="azure-devops", event_id="p", occurred_at=NOW, repository="app-y", ref="refs/heads/main")
    new_file = DataArrived(
        source="storage", event_id="b", occurred_at=NOW, storage_account="lake", container="raw", path="a/new.csv"
    )
    deployed = ModelDeployed(source="azure-ml", event_id="d", occurred_at=NOW, service_name="my-sklearn-service")
    quiet_kinds = [push, new_file, model_event(), deployed]
    failures_only = subscribed(SLACK, outcomes=["failed"])
    assert route(run_event(result="failed"), [failures_only], NOW) == {SLACK}
    for event in quiet_kinds:
        assert route(event, [failures_only], NOW) == set(), event.kind
    # a kind named beside the outcomes comes whatever they say, as the defaults' model registrations do
    runs_and_models = subscribed(SLACK, events=["run", "model_registered"], outcomes=["failed"])
    assert route(model_event(), [runs_and_models], NOW) == {SLACK}
    assert route(run_event(result="succeeded"), [runs_and_models], NOW) == set()
    assert route(deployed, [runs_and_models], NOW) == set()
    # outcomes=any, or none, keeps them
    for filters in ({"outcomes": ["any"]}, {}):
        assert all(route(e, [subscribed(SLACK, **filters)], NOW) == {SLACK} for e in quiet_kinds)


def test_outcomes_for_kinds_that_have_none_is_refused_when_typed() -> None:
    [problem] = subscription_filter_problems({"events": ["model_registered"], "outcomes": ["failed"]})
    assert problem.startswith("`outcomes=failed` never applies to model_registered: it has no outcome")
    assert subscription_filter_problems({"events": ["run", "model_registered"], "outcomes": ["failed"]}) == []
    assert subscription_filter_problems({"events": ["model_registered"], "outcomes": ["any"]}) == []


def test_a_model_version_typed_as_a_model_is_refused() -> None:
    [problem] = subscription_filter_problems({"models": ["fraud", "model-x:8"]})
    assert problem == "`models`: `model-x:8` names a version; `models` takes model names, such as model-x"
    assert subscription_filter_problems({"models": ["model-*"]}) == []


def release_run_and_its_production_gate() -> tuple[RunStateChanged, ApprovalPending]:
    """A run of release-app-y, and its approval at the stage that deploys to production."""
    release_run = replace(run_event(), run=replace(RUN, pipeline_name="release-app-y"))
    gate = ApprovalPending(
        source="azure-devops",
        event_id="a",
        occurred_at=NOW,
        approval_id="ap-1",
        run=release_run.run,
        stage_name="Production",
        stage_display_name="Deploy to production",
        environment_name="production",
    )
    return release_run, gate


def test_an_environment_or_stage_filter_lets_through_the_named_kinds_that_never_say_one() -> None:
    release_run, gate = release_run_and_its_production_gate()
    staging_gate = replace(gate, approval_id="ap-2", environment_name="staging")
    runs_and_production_gates = subscribed(
        SLACK,
        events=["run", "approval"],
        pipelines=["release-*"],
        outcomes=["failed", "pending"],
        environments=["production"],
    )
    assert route(release_run, [runs_and_production_gates], NOW) == {SLACK}  # a run has no environment
    assert route(gate, [runs_and_production_gates], NOW) == {SLACK}
    assert route(staging_gate, [runs_and_production_gates], NOW) == set()
    # without events=, an environment filter keeps only what has an environment
    assert route(release_run, [subscribed(SLACK, environments=["production"])], NOW) == set()
    assert route(gate, [subscribed(SLACK, environments=["production"])], NOW) == {SLACK}

    deploy_gates_and_failures = subscribed(SLACK, events=["run", "approval"], stages=["Deploy*"])
    in_deploy = replace(release_run, failing_stage="Deploy to production")
    in_build = replace(release_run, failing_stage="Build")
    assert route(in_deploy, [deploy_gates_and_failures], NOW) == {SLACK}
    assert route(in_build, [deploy_gates_and_failures], NOW) == set()  # failed in a stage left out
    assert route(release_run, [deploy_gates_and_failures], NOW) == {SLACK}  # no stage known: not held back
    assert route(gate, [deploy_gates_and_failures], NOW) == {SLACK}
    assert route(replace(gate, stage_display_name="Test", stage_name="Test"), [deploy_gates_and_failures], NOW) == set()
    # without events=, a run comes where it failed in a stage named, and not otherwise
    assert route(in_deploy, [subscribed(SLACK, stages=["Deploy*"])], NOW) == {SLACK}
    assert route(release_run, [subscribed(SLACK, stages=["Deploy*"])], NOW) == set()


def test_the_defaults_name_no_kind_so_an_environment_or_stage_filter_narrows_them() -> None:
    """`subscribe environments=production` is the defaults narrowed to production (its approvals), not every
    failed run and new model because the defaults hold runs and models; `stages=Deploy*` the same."""
    release_run, gate = release_run_and_its_production_gate()
    production = subscribed(SLACK, **DEFAULT_FILTERS, environments=["production"])
    assert route(gate, [production], NOW) == {SLACK}
    assert route(replace(gate, environment_name="staging"), [production], NOW) == set()
    assert route(classic_deployment("rejected"), [production], NOW) == {SLACK}
    assert route(classic_deployment("rejected", environment="staging"), [production], NOW) == set()
    assert route(classic_deployment("succeeded"), [production], NOW) == set()
    for no_environment in (release_run, model_event()):
        assert route(no_environment, [production], NOW) == set(), no_environment.kind

    deploy = subscribed(SLACK, **DEFAULT_FILTERS, stages=["Deploy*"])
    assert route(gate, [deploy], NOW) == {SLACK}
    assert route(replace(release_run, failing_stage="Deploy to production"), [deploy], NOW) == {SLACK}
    assert route(replace(release_run, failing_stage="Build"), [deploy], NOW) == set()
    for no_stage in (release_run, model_event()):
        assert route(no_stage, [deploy], NOW) == set(), no_stage.kind
    # the defaults' outcomes still let through their kinds that have none: a new model comes, a success not
    assert route(model_event(), [subscribed(SLACK, **DEFAULT_FILTERS, models=["model-*"])], NOW) == {SLACK}
    assert route(run_event(result="succeeded"), [subscribed(SLACK, **DEFAULT_FILTERS)], NOW) == set()
    # the same kinds typed are named: runs, which say no environment, come
    typed = {key: value for key, value in DEFAULT_FILTERS.items() if key in ("events", "outcomes")}
    assert route(release_run, [subscribed(SLACK, **typed, environments=["production"])], NOW) == {SLACK}


def classic_deployment(status: str, environment: str = "production") -> ReleaseDeploymentCompleted:
    return ReleaseDeploymentCompleted(
        source="azure-devops",
        event_id=f"r-{status}",
        occurred_at=NOW,
        project="mlops",
        release_id="1",
        release_name="Release-1",
        definition_name="app-y",
        environment_name=environment,
        status=status,
    )


def test_a_classic_deployment_that_failed_is_a_failure() -> None:
    """Azure DevOps ends an environment whose deployment failed ``rejected``."""
    failures = subscribed(SLACK, events=["release"], outcomes=["failed"])
    for status in ("rejected", "Rejected", "partiallySucceeded", "failed"):
        assert classic_deployment(status).outcome == "failed", status
        assert route(classic_deployment(status), [failures], NOW) == {SLACK}, status
    for status, outcome in (("succeeded", "succeeded"), ("canceled", "canceled")):
        assert classic_deployment(status).outcome == outcome
        assert route(classic_deployment(status), [failures], NOW) == set(), status


def test_globs_and_tags() -> None:
    filters = Filters.from_mapping({"pipelines": ["integrate-*"], "branches": ["refs/heads/ma*"]})
    assert filters.matches(run_event())
    assert not Filters.from_mapping({"pipelines": ["release-*"]}).matches(run_event())
    assert not Filters.from_mapping({"stages": ["Deploy"]}).matches(run_event())  # runs have no stage
    stage = failed_stage()
    assert Filters.from_mapping({"stages": ["dep*"]}).matches(stage)
    tagged = Filters.from_mapping({"models": ["model-*"], "tags": {"team": "fraud*"}})
    assert tagged.matches(model_event(tags={"team": "fraud-detection"}))
    assert not tagged.matches(model_event(tags={"team": "churn"}))
    assert not tagged.matches(model_event(name="other", tags={"team": "fraud"}))
    # a tag's key goes without case, as its value does (Azure ML keeps a tag's key as it was typed)
    assert tagged.matches(model_event(tags={"Team": "Fraud-detection"}))
    # a pipeline goes by its name or its id
    assert Filters.from_mapping({"pipelines": [RUN.pipeline_id]}).matches(run_event())


def test_a_deployment_of_several_models_comes_where_any_of_them_is_followed() -> None:
    following_fraud = subscribed(SLACK, events=["model_deployed"], models=["fraud"])
    for model_ids in (("churn:1", "fraud:2"), ("fraud:2", "churn:1"), ("churn:1", "scoring:3", "fraud:2")):
        assert route(deployment(*model_ids), [following_fraud], NOW) == {SLACK}, model_ids
    assert route(deployment("churn:1", "scoring:3"), [following_fraud], NOW) == set()
    assert route(deployment(), [following_fraud], NOW) == set()  # a deployment that names no model
    assert Filters.from_mapping({"models": ["fr*", "x"]}).matches(deployment("churn:1", "FRAUD:2"))
    # the other filters read the deployment as a whole: its endpoint's tags, its text naming every model
    tagged = Filters.from_mapping({"models": ["fraud"], "tags": {"env": "prod"}})
    assert tagged.matches(deployment("churn:1", "fraud:2", tags={"env": "prod"}))
    assert not tagged.matches(deployment("churn:1", "fraud:2", tags={"env": "staging"}))
    assert Filters.from_mapping({"text_include": ["fraud:2"]}).matches(deployment("churn:1", "fraud:2"))
    assert not Filters.from_mapping({"text_exclude": ["fraud"]}).matches(deployment("churn:1", "fraud:2"))


def test_a_deployment_names_each_model_it_deployed_once() -> None:
    assert deployment("churn:1", "fraud:2", "churn:2").model_names == ("churn", "fraud")
    assert deployment("churn:1", "churn:2").model == "churn"
    assert deployment("churn:1", "fraud:2").model is None  # not about one model
    assert deployment().model_names == ()


def test_a_failed_run_matches_the_stage_it_failed_in_by_its_display_name_or_its_own_name() -> None:
    failed = replace(run_event(result="failed"), failing_stage="Deploy to production", failing_stage_name="Production")
    for matching in (["Production"], ["deploy*"], ["prod*"]):
        assert Filters.from_mapping({"events": ["run"], "stages": matching}).matches(failed), matching
    assert not Filters.from_mapping({"events": ["run"], "stages": ["Staging"]}).matches(failed)


def test_the_runs_and_gates_of_a_model_version_come_where_its_model_is_followed() -> None:
    following = Filters.from_mapping({"events": ["run", "approval"], "models": ["model-x"]})
    integration = replace(run_event(result="failed"), for_model="model-x:8")
    gate = ApprovalPending(source="azure-devops", event_id="a1", occurred_at=NOW, approval_id="9", run=RUN)
    assert following.matches(integration) and following.matches(replace(gate, for_model="model-x:latest"))
    assert not following.matches(replace(integration, for_model="model-y:8"))
    assert not following.matches(run_event(result="failed")) and not following.matches(gate)  # for no model
    assert Filters.from_mapping({"models": ["model-*"]}).matches(replace(integration, for_model="model-x"))


def test_a_branch_is_matched_by_its_name_as_people_write_it_or_by_its_full_ref() -> None:
    on_main = run_event()  # refs/heads/main
    for matching in (["main"], ["MAIN"], ["ma*"], ["refs/heads/main"], ["release/*", "main"]):
        assert Filters.from_mapping({"branches": matching}).matches(on_main), matching
    for other in (["release/*"], ["refs/heads/release/*"], ["heads/main"], ["refs/pull/*"]):
        assert not Filters.from_mapping({"branches": other}).matches(on_main), other
    on_release = replace(on_main, run=replace(RUN, branch="refs/heads/release/2026.11"))
    assert Filters.from_mapping({"branches": ["release/*"]}).matches(on_release)
    pull_request = replace(on_main, run=replace(RUN, branch="refs/pull/12/merge"))
    assert Filters.from_mapping({"branches": ["refs/pull/*"]}).matches(pull_request)
    assert not Filters.from_mapping({"branches": ["main"]}).matches(pull_request)


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


def test_a_configured_subscription_muted_until_a_time_sends_nothing_until_then() -> None:
    settings = parse_settings(
        {
            "channels": {"releases": {"slack": "C1"}},
            "subscriptions": [{"channel": "releases", "events": ["run"], "muted_until": "2026-11-28T10:00:00+01:00"}],
        },
        {},
    )
    subscriptions = configured_subscriptions(settings)
    assert subscriptions[0].muted_until == datetime(2026, 11, 28, 9, tzinfo=UTC)
    assert route(run_event(), subscriptions, NOW + timedelta(hours=8, minutes=59)) == set()
    assert route(run_event(), subscriptions, NOW + timedelta(hours=9)) == {SLACK}


# --- repeat limits -----------------------------------------------------------------------------------

TEAMS = ConversationAddress("teams", "19:r@thread.tacv2")


def limited(limit: str | None, *targets: ConversationAddress, **filters: Any) -> Subscription:
    return Subscription(targets, Filters.from_mapping({**filters, "repeat_limit": limit}))


def test_a_conversation_gets_the_most_its_subscriptions_ask_for() -> None:
    hour, quarter = limited("1h", SLACK, TEAMS), limited("15m", SLACK)
    assert route_with_options(run_event(), [hour, quarter], NOW) == {
        SLACK: TargetOptions(timedelta(minutes=15)),
        TEAMS: TargetOptions(timedelta(hours=1)),
    }
    # a subscription without a limit wants every card: no limit, whatever the others say
    assert route_with_options(run_event(), [hour, limited(None, SLACK)], NOW) == {
        SLACK: TargetOptions(None),
        TEAMS: TargetOptions(timedelta(hours=1)),
    }
    # a subscription that does not want the event has no say
    assert route_with_options(run_event(), [hour, limited(None, SLACK, events=["approval"])], NOW) == {
        SLACK: TargetOptions(timedelta(hours=1)),
        TEAMS: TargetOptions(timedelta(hours=1)),
    }
    assert route_with_options(run_event(), [], NOW) == {}
    # compact cards only where every subscription that wants the event asked for them
    compact = limited(None, SLACK, TEAMS, card_format="compact")
    assert route_with_options(run_event(), [compact, limited(None, TEAMS, card_format="full")], NOW) == {
        SLACK: TargetOptions(None, compact=True),
        TEAMS: TargetOptions(None, compact=False),
    }
    assert route_with_options(run_event(), [compact, limited("1h", SLACK, card_format="compact")], NOW) == {
        SLACK: TargetOptions(None, compact=True),
        TEAMS: TargetOptions(None, compact=True),
    }
    # alerts broadcast unless every subscription that wants the event turned that off
    quiet = limited(None, SLACK, TEAMS, broadcast=False)
    assert route_with_options(run_event(), [quiet, limited(None, TEAMS, broadcast="on")], NOW) == {
        SLACK: TargetOptions(None, broadcast=False),
        TEAMS: TargetOptions(None, broadcast=True),
    }


def test_broadcast_is_on_unless_a_subscription_says_off() -> None:
    def subscription(**settings: object) -> dict[str, Any]:
        return {"channels": {"r": {"slack": "C1"}}, "subscriptions": [{"channel": "r", **settings}]}

    [configured] = configured_subscriptions(parse_settings(subscription(), {}))
    assert configured.filters.broadcast is True and not configured.filters.shapes_cards
    [configured] = configured_subscriptions(parse_settings(subscription(broadcast=False), {}))
    assert configured.filters.broadcast is False and configured.filters.shapes_cards
    for said, meant in (("off", False), ("no", False), ("false", False), ("on", True), ("yes", True)):
        assert Filters.from_mapping({"broadcast": said}).broadcast is meant
        assert Filters.from_mapping({"mentions": said}).mentions is meant
    with pytest.raises(ConfigError, match="broadcast"):
        parse_settings(subscription(broadcast="sometimes"), {})
    [configured] = configured_subscriptions(parse_settings(subscription(mentions=False), {}))
    assert configured.filters.mentions is False and configured.filters.broadcast is True
    assert configured.filters.shapes_cards
    quiet = limited(None, SLACK, mentions="off")
    assert route_with_options(run_event(), [quiet], NOW) == {SLACK: TargetOptions(None, mentions=False)}
    assert route_with_options(run_event(), [quiet, limited(None, SLACK)], NOW) == {SLACK: TargetOptions(None)}


def test_events_that_never_repeat_are_never_limited() -> None:
    approval = ApprovalPending(source="azure-devops", event_id="a1", occurred_at=NOW, approval_id="9", run=RUN)
    assert approval.repeat_key is None  # each approval asks for a decision
    assert route_with_options(approval, [limited("1h", SLACK)], NOW) == {SLACK: TargetOptions(None)}


def test_what_repeats_what() -> None:
    failure = run_event()
    again = replace(failure, event_id="e-2", run=replace(RUN, run_id="43", run_name="20261128.2"))
    assert failure.repeat_key == again.repeat_key is not None
    assert failure.grouping_key != again.grouping_key
    # a run of the same pipeline on the same branch repeats it from its first event, whatever its outcome
    assert run_event(state="inProgress", result=None).repeat_key == run_event(result="succeeded").repeat_key
    assert run_event(result="succeeded").repeat_key == failure.repeat_key
    others = [
        replace(failure, run=replace(RUN, branch="refs/heads/dev")),
        replace(failure, run=replace(RUN, pipeline_id="8")),
        replace(failure, project="other", run=replace(RUN, project="other")),
    ]
    assert failure.repeat_key not in {e.repeat_key for e in others}
    assert failed_stage().repeat_key == failure.repeat_key  # a stage's events are its run's
    assert model_event().repeat_key == replace(model_event(), model_version="9").repeat_key
    assert model_event().repeat_key != model_event("model-y").repeat_key

    def blob(path: str) -> DataArrived:
        return DataArrived(
            source="storage", event_id=path, occurred_at=NOW, storage_account="lake", container="raw", path=path
        )

    assert blob("sales/2026/11/part-1.parquet").repeat_key == blob("sales/2026/11/part-2.parquet").repeat_key
    assert blob("sales/2026/11/part-1.parquet").repeat_key != blob("sales/2026/12/part-1.parquet").repeat_key


def test_a_classic_release_repeats_releases_of_its_definition_only() -> None:
    def deployed(release_id: str, definition: str = "", environment_id: str = "") -> ReleaseDeploymentCompleted:
        return ReleaseDeploymentCompleted(
            source="azure-devops",
            event_id=f"d-{release_id}",
            occurred_at=NOW,
            scope="fabfiber",
            project="Fabrikam",
            release_id=release_id,
            release_name=f"Release-{release_id}",
            definition_name=definition,
            environment_name="Dev",
            status="succeeded",
            definition_environment_id=environment_id,
        )

    assert deployed("1", "Fabrikam.CD").repeat_key == deployed("2", "Fabrikam.CD").repeat_key is not None
    assert deployed("1", "Fabrikam.CD").repeat_key != deployed("2", "Fabrikam.Web").repeat_key
    # a hook that names no definition: its definition's environment tells releases of one definition apart
    assert deployed("1", environment_id="7").repeat_key == deployed("2", environment_id="7").repeat_key is not None
    assert deployed("1", environment_id="7").repeat_key != deployed("2", environment_id="8").repeat_key
    # nothing names the definition: no release repeats another
    assert deployed("1").repeat_key is None
    assert route_with_options(deployed("1"), [limited("1h", SLACK)], NOW) == {SLACK: TargetOptions(None)}


def test_a_repeat_limit_is_a_duration_between_a_minute_and_a_day() -> None:
    def subscription(limit: object) -> dict[str, Any]:
        return {"channels": {"r": {"slack": "C1"}}, "subscriptions": [{"channel": "r", "repeat_limit": limit}]}

    [configured] = configured_subscriptions(parse_settings(subscription("30m"), {}))
    assert configured.filters.repeat_limit == timedelta(minutes=30)
    [configured] = configured_subscriptions(parse_settings(subscription(3600), {}))
    assert configured.filters.repeat_limit == timedelta(hours=1)
    for wrong in ("30s", "2d", "soon"):
        with pytest.raises(ConfigError, match="repeat_limit"):
            parse_settings(subscription(wrong), {})
    assert Filters.from_mapping({}).repeat_limit is None


def test_a_stage_filter_matches_a_stage_by_its_display_name_or_its_name() -> None:
    gate = ApprovalPending(
        source="azure-devops",
        event_id="a",
        occurred_at=NOW,
        approval_id="ap-1",
        run=RUN,
        stage_name="Production",
        stage_display_name="Deploy to production",
    )
    assert gate.stage == "Deploy to production"  # as the run's card names it
    for matching in (["Deploy*"], ["production"], ["deploy to prod*"], ["Staging", "Prod*"]):
        assert Filters.from_mapping({"stages": matching}).matches(gate), matching
    assert not Filters.from_mapping({"stages": ["Staging"]}).matches(gate)
    assert Filters.from_mapping({"stages": ["Production"]}).matches(replace(gate, stage_display_name=""))
    stage = failed_stage()  # named deploy, displayed Deploy
    assert Filters.from_mapping({"stages": ["deploy"]}).matches(replace(stage, stage_display_name="Roll out"))


def subscribed(target: ConversationAddress, **filters: Any) -> Subscription:
    return Subscription((target,), Filters.from_mapping(filters))


def test_the_branch_of_a_run_decides_where_it_goes_only_where_some_subscription_filters_on_it() -> None:
    started = replace(run_event(state="inProgress", result=None), actor=None)
    started = replace(started, run=replace(started.run, branch=None))  # a run's hooks name no branch
    assert not depends_on_run_facts(started, [subscribed(SLACK, events=["run"])], NOW)
    on_main = subscribed(SLACK, events=["run"], branches=["main"])
    assert depends_on_run_facts(started, [on_main], NOW)
    # with who asked for the run unknown too (the Build API tells both), actor filters do not hold it back
    assert depends_on_run_facts(
        started, [replace(on_main, filters=replace(on_main.filters, actors_include=("bob",)))], NOW
    )
    failures_only = subscribed(SLACK, events=["run"], outcomes=["failed"], branches=["main"])
    elsewhere = subscribed(SLACK, pipelines=["release-*"], branches=["main"])
    muted = replace(on_main, muted_until=NOW + timedelta(hours=1))
    assert not depends_on_run_facts(started, [failures_only, elsewhere, muted], NOW)


def test_who_did_an_event_decides_where_it_goes_only_where_some_subscription_filters_on_it() -> None:
    started = replace(run_event(state="inProgress", result=None), actor=None)  # the run-started hook names nobody
    plain = subscribed(SLACK, events=["run"])
    assert not depends_on_actor(started, [plain], NOW)
    mine_left_out = subscribed(SLACK, events=["run"], pipelines=["integrate-*"], actors_exclude=["bob@contoso.com"])
    assert depends_on_actor(started, [plain, mine_left_out], NOW)
    only_mine = subscribed(SLACK, events=["run"], actors_include=["bob@contoso.com"])
    assert depends_on_actor(started, [only_mine], NOW)
    # a subscription that would not route the event whoever did it does not make it worth asking
    elsewhere = subscribed(SLACK, pipelines=["release-*"], actors_exclude=["bob@contoso.com"])
    stages_only = subscribed(SLACK, events=["stage"], actors_exclude=["bob@contoso.com"])
    muted = replace(mine_left_out, muted_until=NOW + timedelta(hours=1))
    assert not depends_on_actor(started, [elsewhere, stages_only, muted], NOW)


def test_a_card_shown_before_its_requester_was_known_is_turned_away_where_they_are_left_out() -> None:
    other = ConversationAddress("slack", "C2")
    mine_left_out = subscribed(SLACK, events=["run"], pipelines=["integrate-*"], actors_exclude=["bob@contoso.com"])
    bobs_stage = replace(failed_stage(), actor=Person(name="Bob", email="bob@contoso.com"))
    # the run subscription left bob out: his run's stage failing is not told there, whatever its kind
    assert turned_away(bobs_stage, [SLACK, other], [mine_left_out], NOW) == {SLACK}
    assert turned_away(run_event(), [SLACK], [mine_left_out], NOW) == {SLACK}
    carols = replace(bobs_stage, actor=Person(name="Carol", email="carol@contoso.com"))
    assert turned_away(carols, [SLACK], [mine_left_out], NOW) == set()
    assert turned_away(replace(bobs_stage, actor=None), [SLACK], [mine_left_out], NOW) == set()
    # another subscription there routes the event whoever did it: it is told there
    every_stage = subscribed(SLACK, events=["stage"])
    assert turned_away(bobs_stage, [SLACK], [mine_left_out, every_stage], NOW) == set()
    # a subscription about other pipelines says nothing about this run
    elsewhere = subscribed(SLACK, pipelines=["release-*"], actors_exclude=["bob@contoso.com"])
    assert turned_away(bobs_stage, [SLACK], [elsewhere], NOW) == set()


def test_a_card_shown_before_its_run_failed_is_turned_away_where_the_stage_it_failed_in_is_left_out() -> None:
    """``events=run stages=Integration*`` showed a run as it started; its failure in Train (the stage's event or the
    run's own) is kept quiet there, while a plain run subscription elsewhere, or there, tells it."""
    other = ConversationAddress("slack", "C2")
    integration = subscribed(SLACK, events=["run"], stages=["Integration*"])
    every_run = subscribed(other, events=["run"])
    train_failed = replace(failed_stage(), stage_name="Train", stage_display_name="")
    in_train = replace(run_event(), failing_stage="Train")
    for event in (train_failed, in_train):
        assert turned_away(event, [SLACK, other], [integration, every_run], NOW, failed_in=["Train"]) == {SLACK}
    # a failure in a stage it follows, by display name or own name, is told there
    tests_failed = replace(failed_stage(), stage_name="IntegrationTests", stage_display_name="Integration tests")
    failed_in = ["Integration tests", "IntegrationTests"]
    assert turned_away(tests_failed, [SLACK], [integration], NOW, failed_in=failed_in) == set()
    by_own_name = subscribed(SLACK, events=["run"], stages=["IntegrationTests"])
    assert turned_away(tests_failed, [SLACK], [by_own_name], NOW, failed_in=failed_in) == set()
    # before the run failed (a stage succeeding), or where its failure named no stage, nothing is turned away
    assert turned_away(replace(train_failed, result="succeeded"), [SLACK], [integration], NOW) == set()
    # another subscription there follows every run (or is about stages, naming them): the failure is told there
    every_run_here = subscribed(SLACK, events=["run"])
    every_stage_here = subscribed(SLACK, events=["stage"])
    for taking in (every_run_here, every_stage_here):
        assert turned_away(train_failed, [SLACK], [integration, taking], NOW, failed_in=["Train"]) == set()
    # but not one that is muted, nor one about approvals only (it does not follow runs' cards)
    muted = replace(every_run_here, muted_until=NOW + timedelta(hours=1))
    deploy_gates = subscribed(SLACK, events=["approval"], stages=["Deploy*"])
    assert turned_away(train_failed, [SLACK], [integration, muted], NOW, failed_in=["Train"]) == {SLACK}
    assert turned_away(train_failed, [SLACK], [deploy_gates, every_run_here], NOW, failed_in=["Train"]) == set()
    # a stage filter on runs of other pipelines says nothing about this run
    elsewhere = subscribed(SLACK, events=["run"], pipelines=["train-*"], stages=["Integration*"])
    assert turned_away(train_failed, [SLACK], [elsewhere], NOW, failed_in=["Train"]) == set()


def test_a_project_named_by_its_id_matches_the_events_that_carry_it() -> None:
    """Events name a configured project by its name (the id a hook gives is renamed), and carry its id beside it."""
    guid = "C13B2491-4660-52C9-81FB-D7F7C7BC1847"
    by_id = Filters.from_mapping({"events": ["run"], "projects": [guid.lower()]})
    assert by_id.matches(replace(run_event(), project_id=guid))
    assert not by_id.matches(run_event())  # the event does not say its project's id
    assert not by_id.matches(replace(run_event(), project_id="00000000-0000-0000-0000-000000000002"))
    assert Filters.from_mapping({"projects": ["mlops"]}).matches(replace(run_event(), project_id=guid))


# --- the compiled filters read each filter as its words say -------------------------------------------


def plainly_matches(filters: Filters, event: RunStateChanged | ModelRegistered | ModelDeployed) -> bool:
    """Each filter read as its words say, one at a time (the oracle for the compiled matcher)."""

    def glob_any(value: str | None, patterns: Sequence[str]) -> bool:
        if not patterns:
            return True
        return value is not None and any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns)

    if filters.events and event.kind not in filters.events:
        return False
    named_without_outcome = event.kind in KINDS_WITHOUT_OUTCOME and event.kind in filters.events
    outcome_applies = filters.outcomes and "any" not in filters.outcomes and not named_without_outcome
    if outcome_applies and event.outcome not in filters.outcomes:
        return False

    def branch_any(ref: str | None, patterns: Sequence[str]) -> bool:
        """A branch glob names the ref, or (unless it starts with refs/) the branch's name within refs/heads/."""
        name = ref[len("refs/heads/") :] if ref and ref.lower().startswith("refs/heads/") else None
        by_name = [p for p in patterns if not p.lower().startswith("refs/")]
        return not patterns or glob_any(ref, patterns) or (bool(by_name) and glob_any(name, by_name))

    if not branch_any(event.branch, filters.branches):
        return False
    # a project goes by its name or its id
    if filters.projects and not any(glob_any(p, filters.projects) for p in (event.project, event.project_id) if p):
        return False
    # a pipeline goes by its name or its id
    run = getattr(event, "run", None)
    pipelines = [event.pipeline, run.pipeline_id if run is not None else None]
    if filters.pipelines and not any(glob_any(name, filters.pipelines) for name in pipelines if name):
        return False
    # a deployment of several models names each of them: any may match; a run goes by the version it is for
    for_model = getattr(event, "for_model", None)
    names = [i.split(":")[0] for i in event.model_ids] if isinstance(event, ModelDeployed) else [event.model]
    names += [for_model.rpartition(":")[0] or for_model] if for_model else []
    if filters.models and not any(glob_any(name, filters.models) for name in names):
        return False
    # runs and models never say an environment: the filter holds them back unless events= names them
    if filters.environments and not (event.kind in filters.events or glob_any(event.environment, filters.environments)):
        return False
    # a run says the stage it failed in, when known; runs and models named in events= that say none come anyway
    failing = (event.failing_stage, event.failing_stage_name) if isinstance(event, RunStateChanged) else ()
    failing = failing if failing and failing[0] else ()
    stage_names = event.stage_names or tuple(n for n in failing if n)
    named_without_stage = event.kind in filters.events and not stage_names
    if filters.stages and not named_without_stage and not any(glob_any(n, filters.stages) for n in stage_names):
        return False
    tags = {key.lower(): value for key, value in event.tags.items()}  # a tag's key goes without case
    if not all(glob_any(tags.get(key.lower()), [pattern]) for key, pattern in filters.tags.items()):
        return False
    person = event.actor
    actor = {n.lower() for n in (person.email, person.name, person.id) if n} if person else set()
    if filters.actors_include and not actor & set(filters.actors_include):
        return False
    if actor & set(filters.actors_exclude):
        return False
    if filters.text_include and not any(p.search(event.text) for p in filters.text_include):
        return False
    return not any(p.search(event.text) for p in filters.text_exclude)


words = st.sampled_from(["main", "Main", "refs/heads/main", "integrate-app-y", "mlops", "model-x", "prod", "a.b"])
PROJECT_ID = "c13b2491-4660-52c9-81fb-d7f7c7bc1847"
globs = words | st.sampled_from(
    ["*", "integrate-*", "refs/heads/ma*", "?lops", "model-[xy]", "[!m]*", "*.b", "A.B", PROJECT_ID, "C13B2491-*"]
)
refs = st.sampled_from(["refs/heads/main", "refs/heads/Main", "refs/heads/release/1", "refs/pull/3/merge"])
branch_globs = st.sampled_from(["main", "MAIN", "release/*", "refs/pull/*", "heads/main"])
few = st.lists(globs, max_size=2)


FILTER_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "events": st.lists(st.sampled_from(["run", "stage", "model_registered", "model_deployed"]), max_size=2),
    "outcomes": st.lists(st.sampled_from(["failed", "succeeded", "canceled", "any"]), max_size=2),
    "projects": few,
    "pipelines": few,
    "branches": st.lists(branch_globs | globs, max_size=2),
    "stages": few,
    "environments": few,
    "models": few,
    "tags": st.dictionaries(st.sampled_from(["stage", "team"]), globs, max_size=2),
    "actors_include": st.lists(st.sampled_from(["bob@contoso.com", "Bob", "erin"]), max_size=2),
    "actors_exclude": st.lists(st.sampled_from(["bob@contoso.com", "BOB", "erin"]), max_size=2),
    "text_include": st.lists(st.sampled_from(["failed", "^run", "x{2}"]), max_size=1),
    "text_exclude": st.lists(st.sampled_from(["FAILED", "nothing"]), max_size=1),
}


@settings(max_examples=400, deadline=None)
@given(
    filters=st.fixed_dictionaries({}, optional=FILTER_VALUES),
    event=st.one_of(
        st.builds(
            lambda result, branch, pipeline, actor, failing_stage, project_id: replace(
                run_event(result=result, actor=actor),
                run=replace(RUN, branch=branch, pipeline_name=pipeline),
                failing_stage=failing_stage,
                project_id=project_id,
            ),
            st.sampled_from([None, "failed", "succeeded", "partiallySucceeded", "canceled"]),
            st.none() | refs | words,
            words,
            st.sampled_from(["bob@contoso.com", "erin@contoso.com"]),
            st.none() | words,
            st.sampled_from([None, PROJECT_ID]),
        ),
        st.builds(model_event, words, st.dictionaries(st.sampled_from(["stage", "team"]), words, max_size=2)),
        st.builds(
            lambda names, tags: deployment(*(f"{name}:1" for name in names), tags=tags),
            st.lists(words, max_size=3),
            st.dictionaries(st.sampled_from(["stage", "team"]), words, max_size=2),
        ),
    ),
)
def test_the_compiled_filters_agree_with_each_filter_read_plainly(
    filters: dict[str, Any], event: RunStateChanged | ModelRegistered | ModelDeployed
) -> None:
    # all of them at once, and each alone (alone, a filter lets events through often enough to be seen doing so)
    for given_filters in [filters, *({key: value} for key, value in filters.items())]:
        compiled = Filters.from_mapping(given_filters)
        assert compiled.matches(event) == plainly_matches(compiled, event), given_filters


@settings(max_examples=200, deadline=None)
@given(
    patterns=st.lists(branch_globs | globs, min_size=1, max_size=2),
    branch=st.none() | refs | words,
)
def test_branch_filters_agree_with_each_glob_read_plainly(patterns: list[str], branch: str | None) -> None:
    filters = Filters.from_mapping({"branches": patterns})
    event = replace(run_event(), run=replace(RUN, branch=branch))
    assert filters.matches(event) == plainly_matches(filters, event)


def test_muted_there_names_the_conversations_whose_every_subscription_following_the_card_is_muted() -> None:
    here, there, third = (ConversationAddress("slack", f"C{n}") for n in (1, 2, 4))
    failures = Filters.from_mapping({"events": ["run"], "outcomes": ["failed"]})
    stages = Filters.from_mapping({"events": ["stage"]})
    models = Filters.from_mapping({"events": ["model_registered"]})
    later = NOW + timedelta(hours=1)
    subscriptions = [
        Subscription((here,), failures, muted_until=later),
        Subscription((there,), models, muted_until=later),
        Subscription((there,), failures),  # there, runs are still told
        Subscription((third,), failures, muted_until=later),
        Subscription((third,), models),  # models, not runs: the muted subscription of runs speaks for them
    ]
    event = run_event()
    assert muted_there(event, {here, there, third}, subscriptions, NOW) == {here, third}
    assert muted_there(event, {here, third}, subscriptions, later) == set()  # the mute is over
    assert muted_there(event, {ConversationAddress("slack", "C3")}, subscriptions, NOW) == set()  # none there
    # a subscription of a run's stages follows the run's card too
    told_by_stages = [*subscriptions, Subscription((third,), stages)]
    assert muted_there(event, {third}, told_by_stages, NOW) == set()
    # where nothing there follows the card (a command's run), every subscription there counts
    only_models = [Subscription((third,), models, muted_until=later)]
    assert muted_there(event, {third}, only_models, NOW) == {third}
    assert muted_there(event, {third}, [*only_models, Subscription((third,), models)], NOW) == set()


# --- what no event of a kind can match -------------------------------------------------------------------


def fullest_events(kind: str) -> list[DomainEvent]:
    """Events of ``kind`` carrying everything such events may carry (each field ``x``, a tag ``k: x``), one for
    each outcome it may have: if none of them gets through a filter whose globs are all ``*``, none can."""
    run = replace(RUN, pipeline_name="x", branch="x", reason="manual")
    at: dict[str, Any] = {"source": "s", "event_id": "e", "occurred_at": NOW, "text": "x"}
    devops = at | {"project": "x", "project_id": "x"}
    model = {"k": "x", "model": "x"}
    variants: dict[str, list[DomainEvent]] = {
        "run": [
            RunStateChanged(**devops, run=run, state=state, result=result, failing_stage="x", for_model="x:1")
            for state, result in [
                ("inProgress", None),
                *(("completed", r) for r in ("succeeded", "failed", "canceled")),
            ]
        ],
        "stage": [
            StageStateChanged(**devops, run=run, stage_name="x", state=state, result=result)
            for state, result in [("running", None), *(("completed", r) for r in ("succeeded", "failed", "canceled"))]
        ],
        "approval": [
            ApprovalPending(
                **devops, approval_id="1", status=s, run=run, stage_name="x", environment_name="x", for_model="x:1"
            )
            for s in ("pending", "approved", "rejected", "canceled")
        ],
        "release": [
            ReleaseDeploymentCompleted(
                **devops, release_id="1", release_name="x", definition_name="x", environment_name="x", status=s
            )
            for s in ("succeeded", "rejected", "canceled")
        ],
        "code_pushed": [CodePushed(**devops, repository="x", ref="x")],
        "pull_request": [
            PullRequestChanged(
                **devops, repository="x", pull_request_id="1", title="x", change="x", status=s, target_ref="x"
            )
            for s in ("active", "completed", "abandoned")
        ],
        "model_registered": [ModelRegistered(**at, model_name="x", model_version="1", model_tags=model)],
        "model_deployed": [ModelDeployed(**at, service_name="x", model_ids=("x:1",), service_tags=model)],
        "training_run": [
            TrainingRunFinished(**at, run_id="1", experiment_name="x", status=s, run_tags=model)
            for s in ("Running", "Completed", "Failed", "Canceled")
        ],
        "data_drift": [DataDriftDetected(**at, monitor_id="1", monitor_name="x", run_id="1", drift_coefficient=0.5)],
        "data_arrived": [DataArrived(**at, storage_account="x", container="x", path="x")],
    }
    assert all(event.kind == kind for event in variants[kind])
    return variants[kind]


@settings(max_examples=400, deadline=None)
@given(
    events=st.lists(st.sampled_from(EVENT_KINDS), max_size=3, unique=True),
    defaulted=st.booleans(),
    outcomes=st.lists(st.sampled_from(["succeeded", "failed", "canceled", "pending", "any"]), max_size=2, unique=True),
    read=st.lists(
        st.sampled_from(["projects", "pipelines", "branches", "stages", "environments", "models", "tags", "reasons"]),
        max_size=3,
        unique=True,
    ),
)
def test_a_kind_is_kept_out_exactly_where_none_of_its_events_can_match(
    events: list[str], defaulted: bool, outcomes: list[str], read: list[str]
) -> None:
    """``keeps_out`` (what chat refuses and check warns of) agrees with routing, kind by kind, on events that carry
    everything their kind may: the outcomes each kind has, which kinds say an environment or a stage, and the
    kinds ``events`` names that such a filter does not hold back."""
    mapping: dict[str, Any] = {"events": events, "outcomes": outcomes, DEFAULTS_MARK: defaulted and bool(events)}
    mapping |= {name: {"tags": {"k": "*"}, "reasons": ["manual"]}.get(name, ["*"]) for name in read}
    filters = Filters.from_mapping(mapping)
    for kind in EVENT_KINDS:
        comes = any(filters.matches(event) for event in fullest_events(kind))
        assert (filters.keeps_out(kind) is None) == comes, (kind, mapping)
    # the kinds a refusal suggests naming in events instead each come where named so
    others = {key: value for key, value in mapping.items() if key not in ("events", DEFAULTS_MARK)}
    for kind in filters.kinds_carrying():
        assert Filters.from_mapping(others | {"events": [kind]}).keeps_out(kind) is None, (kind, mapping)
