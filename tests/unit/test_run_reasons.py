"""The ``reasons`` filter: why a run started (manual, CI, a pull request…), as people type it and routing reads it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.config import ConfigError, parse_settings, subscription_filter_problems
from bot.events import ApprovalPending, RunStateChanged
from bot.kept_out import carriers, kept_out, reasons
from bot.living import merge, render
from bot.routing import DEFAULT_FILTERS, Filters, depends_on_run_facts
from bot.run_reasons import canonical_reason, reason_problem, reason_words, reasons_meant
from tests.unit.test_routing import NOW, RUN, SLACK, failed_stage, model_event, run_event, subscribed


def started_for(reason: str | None) -> RunStateChanged:
    return replace(run_event(), run=replace(RUN, reason=reason))


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("manual", {"manual"}),
        ("CI", {"individualci", "batchedci"}),
        ("pr", {"pullrequest"}),
        ("Pull_Request", {"pullrequest"}),
        ("scheduled", {"schedule", "scheduleforced"}),
        ("resource", {"resourcetrigger", "buildcompletion"}),
        ("pullRequest", {"pullrequest"}),
        ("INDIVIDUALCI", {"individualci"}),
        ("batchedCI", {"batchedci"}),
    ],
)
def test_friendly_names_and_azure_devops_own_stand_for_its_reasons_in_any_case(typed: str, meant: set[str]) -> None:
    assert reasons_meant([typed]) == meant
    assert reason_problem(typed) is None


def test_an_unknown_reason_is_refused_with_the_valid_ones() -> None:
    [problem] = subscription_filter_problems({"events": ["run"], "reasons": ["manual", "nightly"]})
    assert problem.startswith("`reasons`: `nightly` is not a reason a run starts for: use manual, ci, pr")
    assert "individualCI" in problem and "pullRequest" in problem
    assert "did you mean" in (reason_problem("pul_request") or "")


def test_there_is_no_negative_form_and_all_means_leave_it_out() -> None:
    assert "takes no negation; name the reasons to keep" in (reason_problem("!pr") or "")
    assert "leave `reasons` out" in (reason_problem("all") or "")


def test_reasons_of_kinds_that_have_no_run_mean_nothing_and_are_refused() -> None:
    [problem] = subscription_filter_problems({"events": ["model_registered"], "reasons": ["manual"]})
    assert problem.startswith("`reasons=manual` never applies to model_registered: it has no run")
    assert subscription_filter_problems({"events": ["run", "model_registered"], "reasons": ["manual"]}) == []


def test_the_configuration_file_refuses_an_unknown_reason_at_its_key(tmp_path: Any) -> None:
    config = {
        "channels": {"ops": {"slack": "C1"}},
        "subscriptions": [{"channel": "ops", "events": ["run"], "reasons": ["manual", "cron"]}],
    }
    with pytest.raises(ConfigError, match=r"subscriptions\[0\]\.reasons.*`cron` is not a reason a run starts for"):
        parse_settings(config, {})
    config["subscriptions"] = [{"channel": "ops", "events": ["run"], "reasons": ["Manual", "CI"]}]
    assert parse_settings(config, {}).subscriptions[0].reasons == ["Manual", "CI"]


def test_runs_go_by_why_they_started() -> None:
    manual_only = Filters.from_mapping({"events": ["run"], "reasons": ["manual", "schedule"]})
    assert manual_only.matches(started_for("manual"))
    assert manual_only.matches(started_for("scheduleForced"))
    assert not manual_only.matches(started_for("pullRequest"))
    assert not manual_only.matches(started_for("individualCI"))
    ci = Filters.from_mapping({"reasons": ["ci"]})
    assert ci.matches(started_for("batchedCI")) and ci.matches(started_for("individualCI"))
    # a run whose reason is not known (the Build API did not answer) is kept out, as an unknown branch is
    assert not manual_only.matches(started_for(None))
    assert manual_only.matches(started_for(None), ignoring_reason=True)


def test_stages_and_the_approvals_of_a_run_go_by_its_reason_and_a_classic_release_approval_has_none() -> None:
    by_hand = Filters.from_mapping({"reasons": ["manual"]})
    stage = failed_stage()
    assert by_hand.matches(replace(stage, run=replace(RUN, reason="manual")))
    assert not by_hand.matches(replace(stage, run=replace(RUN, reason="pullRequest")))
    gate = ApprovalPending(source="azure-devops", event_id="a", occurred_at=NOW, approval_id="1", run=RUN)
    assert by_hand.matches(replace(gate, run=replace(RUN, reason="manual")))
    assert not by_hand.matches(replace(gate, run=replace(RUN, reason="pullRequest")))
    assert not by_hand.matches(replace(gate, run=None, approval_kind="release"))


def test_a_kind_without_a_run_comes_where_events_names_it_as_with_environments() -> None:
    named = Filters.from_mapping({"events": ["run", "model_registered"], "reasons": ["manual"]})
    assert named.matches(model_event()) and named.keeps_out("model_registered") is None
    unnamed = Filters.from_mapping({"reasons": ["manual"]})
    assert not unnamed.matches(model_event())
    assert unnamed.keeps_out("model_registered") == "reasons"
    # subscribe's defaults name no kind: with reasons= they are the failed runs and approvals of such runs
    defaults = Filters.from_mapping(DEFAULT_FILTERS | {"reasons": ["manual"]})
    assert set(defaults.kinds) - set(kept_out(defaults)) == {"run", "approval"}
    assert reasons({"model_registered": "reasons"}, unnamed) == "model registrations carry no run reason"
    assert carriers(unnamed) == "only runs, stages and approvals carry a run reason"


def test_why_a_run_started_is_asked_about_only_where_a_subscription_filters_on_it() -> None:
    started = replace(run_event(state="inProgress", result=None), actor=None)
    unknown = replace(started, run=replace(RUN, reason=None))  # a run's hooks do not say why it started
    assert not depends_on_run_facts(unknown, [subscribed(SLACK, events=["run"])], NOW)
    manual = subscribed(SLACK, events=["run"], reasons=["manual"])
    assert depends_on_run_facts(unknown, [manual], NOW)
    # known already (build.complete says it): nothing to ask
    assert not depends_on_run_facts(replace(started, run=replace(RUN, reason="pullRequest")), [manual], NOW)
    # with its branch unknown too, a subscription filtering on both asks (the Build API tells both at once)
    neither = replace(started, run=replace(RUN, reason=None, branch=None))
    both = subscribed(SLACK, events=["run"], reasons=["manual"], branches=["main"])
    assert depends_on_run_facts(neither, [both], NOW)
    assert not depends_on_run_facts(neither, [subscribed(SLACK, events=["stage"], reasons=["manual"])], NOW)


def test_a_run_card_says_why_the_run_started_once_known() -> None:
    state = merge(None, started_for(None)).state
    assert "Reason" not in {fact.label for fact in render(state).facts}
    state = merge(state, replace(started_for("pullRequest"), event_id="later")).state
    assert ("Reason", "Pull request") in {(fact.label, fact.value) for fact in render(state).facts}
    assert reason_words("individualCI") == "CI" and reason_words("none") is None


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("pr", "pr"),
        ("Pull_Request", "pr"),
        ("pullRequest", "pr"),
        ("scheduled", "schedule"),
        ("CI", "ci"),
        ("individualci", "individualCI"),
        ("scheduleForced", "scheduleForced"),
        ("nightly", "nightly"),
    ],
)
def test_a_reason_is_stored_by_one_name_whichever_way_it_was_typed(typed: str, stored: str) -> None:
    assert canonical_reason(typed) == stored
