"""Living cards: merging events never moves a card backwards, and only what matters gets a reply."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.cards import Card, Fact, Mention, Status
from bot.events import (
    ApprovalCompleted,
    ApprovalPending,
    Approver,
    CodePushed,
    Commit,
    DataArrived,
    GateChanged,
    GateDecision,
    GateTerms,
    ModelChecked,
    ModelDeployed,
    ModelRegistered,
    Person,
    PipelineRef,
    PullRequestChanged,
    Rejection,
    RunStateChanged,
    StageStateChanged,
    TrainingRunFinished,
)
from bot.living import GROUP_MENTION_LIMIT, merge, render, replies_told

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
RUN = PipelineRef(
    organization="contoso",
    project="mlops",
    pipeline_id="7",
    pipeline_name="integrate-app-y",
    run_id="42",
    run_name="20261128.1",
    branch="refs/heads/main",
)


def run(state: str, result: str | None = None, at: int = 0) -> RunStateChanged:
    return RunStateChanged(
        source="azure-devops",
        event_id=f"r{state}{result}{at}",
        occurred_at=T0 + timedelta(seconds=at),
        created_at=T0 + timedelta(seconds=at),
        run=RUN,
        state=state,
        result=result,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=at) if result else None,
        web_url="https://dev.azure.com/contoso/mlops/_build/results?buildId=42",
    )


def stage(name: str, state: str, result: str | None = None, at: int = 0) -> StageStateChanged:
    return StageStateChanged(
        source="azure-devops",
        event_id=f"s{name}{state}{result}{at}",
        occurred_at=T0 + timedelta(seconds=at),
        created_at=T0 + timedelta(seconds=at),
        run=RUN,
        stage_name=name,
        stage_display_name=name,
        state=state,
        result=result,
    )


def polled(state: str, result: str | None = None, at: int = 0) -> RunStateChanged:
    """The run as Handoff's polling of a run it started tells it: learned at ``at``, with no stamp of Azure
    DevOps' own (see :func:`bot.pipeline_runs.pipeline_run_event`)."""
    return replace(
        run(state, result, at),
        event_id=f"handoff-poll:{state}:{result}",
        created_at=None,
        started_at=None,
        finished_at=None,
    )


def apply(*events: object) -> tuple[dict, list[Card]]:
    state = None
    replies: list[Card] = []
    for event in events:
        result = merge(state, event)  # type: ignore[arg-type]
        state = result.state
        replies += result.replies
    assert state is not None
    return state, replies


def test_a_rejected_approval_reads_as_a_rejection_whichever_event_tells_first() -> None:
    """Azure DevOps reports a stage whose approval was rejected, and its run, failed; the gatekeeper adds the
    rejection. The run's completion may come before its stage's."""
    rejected = Rejection(stage="Deploy", by="Carol Diaz")
    going = (run("inProgress"), stage("Build", "completed", "succeeded"), stage("Deploy", "waiting", at=5))
    stage_first = (
        replace(stage("Deploy", "completed", "failed", at=9), rejection=rejected),
        run("completed", "failed", at=10),
    )
    run_first = (replace(run("completed", "failed", at=10), rejections=(rejected,)), stage_first[0])
    for ending in (stage_first, run_first):
        state, replies = apply(*going, *ending)
        card = render(state)
        assert card.status is Status.REJECTED
        assert card.summary == "Rejected at stage Deploy by Carol Diaz"
        assert ("Rejected by", "Carol Diaz") in [(f.label, f.value) for f in card.facts]
        assert [s.status for s in card.steps] == [Status.SUCCEEDED, Status.REJECTED]
        assert [link.label for link in card.links] == ["Open run"] and card.mentions == ()
        assert [(r.title, r.status) for r in replies] == [
            ("integrate-app-y 20261128.1 rejected at stage Deploy by Carol Diaz", Status.REJECTED)
        ]


def test_a_stage_azure_devops_says_was_rejected_reads_so_without_a_gate() -> None:
    state, replies = apply(
        run("inProgress"), stage("Deploy", "completed", "rejected", at=9), run("completed", "failed", at=10)
    )
    assert render(state).summary == "Rejected at stage Deploy"
    assert [r.title for r in replies] == ["integrate-app-y 20261128.1 rejected at stage Deploy"]


def test_a_genuine_failure_beside_a_rejection_is_still_a_failure() -> None:
    rejected = Rejection(stage="Deploy", by="Carol Diaz")
    state, replies = apply(
        run("inProgress"),
        stage("Tests", "completed", "failed", at=5),
        replace(stage("Deploy", "completed", "failed", at=9), rejection=rejected),
        run("completed", "failed", at=10),
    )
    card = render(state)
    assert card.status is Status.FAILED and card.summary == "Failed at stage Tests"
    assert [r.status for r in replies] == [Status.FAILED, Status.REJECTED]


def test_a_rerun_of_a_rejected_stage_is_no_longer_rejected() -> None:
    rejected = Rejection(stage="Deploy", by="Carol Diaz")
    ended = (run("inProgress"), replace(stage("Deploy", "completed", "failed", at=9), rejection=rejected))
    state, _ = apply(*ended, run("completed", "failed", at=10), stage("Deploy", "waiting", at=100))
    assert render(state).status is Status.WAITING
    state, replies = apply(
        *ended,
        run("completed", "failed", at=10),
        stage("Deploy", "running", at=100),
        stage("Deploy", "completed", "failed", at=120),
        run("completed", "failed", at=130),
    )
    assert render(state).status is Status.FAILED and replies[-1].status is Status.FAILED


def test_run_progresses_and_failure_gets_one_reply() -> None:
    state, replies = apply(
        run("inProgress"),
        stage("Build", "running"),
        stage("Build", "completed", "succeeded"),
        stage("Integration tests", "running"),
        stage("Integration tests", "completed", "failed"),
        run("completed", "failed", at=95),
    )
    card = render(state)
    assert card.status is Status.FAILED
    assert card.summary == "Failed at stage Integration tests"
    assert [(s.name, s.status) for s in card.steps] == [
        ("Build", Status.SUCCEEDED),
        ("Integration tests", Status.FAILED),
    ]
    assert ("Duration", "1m 35s") in [(f.label, f.value) for f in card.facts]
    assert [r.title for r in replies] == ["integrate-app-y 20261128.1 failed in stage Integration tests"]
    assert any(link.label == "Logs" for link in card.links)


def test_a_failure_reply_names_the_stage_as_the_run_does_and_links_its_logs() -> None:
    _, [reply] = apply(run("inProgress"), stage("Deploy to QA", "completed", "failed"))
    assert reply.summary == "Stage Deploy to QA failed."
    assert [(link.label, link.url) for link in reply.links] == [
        ("Logs", "https://dev.azure.com/contoso/mlops/_build/results?buildId=42&view=logs")
    ]


def test_a_run_handoff_started_for_a_model_version_names_it_from_its_first_event_on() -> None:
    for_model = replace(run("inProgress"), event_id="handoff-poll", for_model="model-x:8")
    state, [reply] = apply(for_model, run("inProgress"), stage("Integration tests", "completed", "failed"))
    assert ("Model", "model-x:8") in [(f.label, f.value) for f in render(state).facts]
    assert reply.summary == "Stage Integration tests failed with model-x:8."
    # Azure DevOps' own events do not say: a run nobody started for a model version names none
    state, [reply] = apply(run("inProgress"), stage("Integration tests", "completed", "failed"))
    assert "Model" not in [f.label for f in render(state).facts]
    assert reply.summary == "Stage Integration tests failed."


def test_a_run_that_names_its_failing_stage_is_announced_once_whatever_comes_first() -> None:
    named = replace(run("completed", "failed", at=95), failing_stage="Integration tests")
    failed_stage = stage("Integration tests", "completed", "failed")
    for events in ((named, failed_stage), (failed_stage, named)):
        state, replies = apply(run("inProgress"), *events)
        assert [r.title for r in replies] == ["integrate-app-y 20261128.1 failed in stage Integration tests"]
        assert render(state).summary == "Failed at stage Integration tests"
    # without it, the run's own failure can only say the run failed, and says it once
    state, [reply] = apply(run("inProgress"), run("completed", "failed", at=95))
    assert (reply.title, reply.summary) == ("integrate-app-y 20261128.1 failed", "")
    assert reply.text == "Failed: integrate-app-y 20261128.1 failed"
    card = render(state)
    assert card.text == "Failed: integrate-app-y 20261128.1"  # its status says it failed; nothing repeats it
    for_model = replace(run("completed", "failed", at=95), event_id="handoff-poll", for_model="model-x:8")
    _, [reply] = apply(run("inProgress"), for_model)
    assert reply.text == "Failed: integrate-app-y 20261128.1 failed with model-x:8"


def test_a_long_run_reads_its_duration_in_hours_and_days() -> None:
    def duration(seconds: int) -> str:
        card = render(apply(run("inProgress"), run("completed", "succeeded", at=seconds))[0])
        return next(f.value for f in card.facts if f.label == "Duration")

    assert [duration(s) for s in (45, 95, 3599, 3600, 185 * 60 + 12, 86399, 86400, 3 * 86400 + 7 * 3600)] == [
        "45s",
        "1m 35s",
        "59m 59s",
        "1h 00m",
        "3h 05m",
        "23h 59m",
        "1d 0h",
        "3d 7h",
    ]


def test_a_run_whose_parallel_stages_failed_names_them_all_in_one_order() -> None:
    tests, build = stage("Tests", "completed", "failed"), stage("Build", "completed", "failed")
    for events in ((tests, build), (build, tests)):
        state, replies = apply(run("inProgress"), *events, run("completed", "failed", at=95))
        assert render(state).summary == "Failed at stages Build and Tests"
        assert len(replies) == 2  # each stage's failure in the thread


def test_a_failure_calls_on_the_person_who_asked_for_the_run() -> None:
    bob = Person(name="Bob Chen", email="bob@contoso.com")
    failed_stage = replace(stage("Integration tests", "completed", "failed"), actor=bob)  # told by the API
    state, [reply] = apply(run("inProgress"), failed_stage)
    assert reply.mentions == (Mention("Bob Chen", "bob@contoso.com"),)
    assert Card.from_json(reply.to_json()) == reply  # (deliveries are stored as JSON)
    assert ("Requested by", "Bob Chen") in [(f.label, f.value) for f in render(state).facts]
    assert render(state).mentions == ()  # the card of a run still going calls on nobody: only its failure does
    ended, _ = apply(run("inProgress"), failed_stage, run("completed", "failed", at=95))
    # a card shown first as failed (a channel that follows failures only) calls on him itself
    assert render(ended).mentions == (Mention("Bob Chen", "bob@contoso.com"),)
    # a requester known by name alone, or not at all: a failure that mentions nobody
    for actor in (Person(name="Bob Chen"), None):
        _, [reply] = apply(run("inProgress"), replace(run("completed", "failed", at=9), actor=actor))
        assert reply.mentions == ()


def test_a_waiting_gate_calls_on_the_approvers_who_may_still_decide() -> None:
    carol = Person(name="Carol", email="carol@contoso.com")
    bob = Person(name="Bob Chen", email="Bob@Contoso.com")
    dana = Person(name="Dana", email="dana@contoso.com")
    group = Person(name="[mlops]\\Release Managers")  # a group: no email, nobody to ping
    steps = (Approver(person=carol), Approver(person=bob), Approver(person=dana, status="approved"))
    pending = replace(
        approval(ApprovalPending, "pending", (*steps, Approver(person=group))),
        blocked_approvers=(Person(name="Bob Chen", email="bob@contoso.com"),),  # bob asked for the run
    )
    state, _ = apply(pending)
    card = render(state)
    assert card.mentions == (Mention("Carol", "carol@contoso.com"),)
    assert Card.from_json(card.to_json()) == card  # (deliveries are stored as JSON)
    # once carol approved in chat (one of two needed), nobody is left to call on
    vote = GateChanged(
        source="handoff",
        event_id="g1",
        occurred_at=T0,
        gate_id="gate",
        status="pending",
        decisions=(GateDecision(actor="carol@contoso.com", decision="approve"),),
        needed=2,
    )
    assert render(merge(state, vote).state).mentions == ()
    # a decided gate calls on nobody
    done = approval(ApprovalCompleted, "approved", (Approver(person=carol, status="approved"),))
    assert render(apply(pending, done)[0]).mentions == ()


def test_a_gate_assigned_to_a_group_calls_on_its_members() -> None:
    carol = Person(name="Carol", email="carol@contoso.com")
    bob = Person(name="Bob Chen", email="bob@contoso.com")
    managers = Approver(person=Person(name="[mlops]\\Release Managers", id="g1"), group=True, members=(carol, bob))
    pending = replace(approval(ApprovalPending, "pending", (managers,)), blocked_approvers=(bob,))
    state, _ = apply(pending)
    card = render(state)
    assert card.mentions == (Mention("Carol", "carol@contoso.com"),)  # bob asked for the run
    assert ("Approvers", "[mlops]\\Release Managers") in [(f.label, f.value) for f in card.facts]
    # a large group is named, not pinged member by member
    crowd = tuple(Person(name=f"P{i}", email=f"p{i}@contoso.com") for i in range(GROUP_MENTION_LIMIT + 1))
    everyone = replace(managers, person=Person(name="[mlops]\\Contributors", id="g2"), members=crowd)
    assert render(apply(approval(ApprovalPending, "pending", (everyone,)))[0]).mentions == ()
    # once the group's step is decided, nobody is called on
    done = approval(ApprovalCompleted, "approved", (replace(managers, status="approved"),))
    assert render(apply(pending, done)[0]).mentions == ()


def test_a_skipped_stage_reads_skipped_and_is_no_failure() -> None:
    state, replies = apply(
        run("inProgress"),
        stage("Build", "completed", "succeeded", at=10),
        stage("Deploy", "completed", "skipped", at=20),
        run("completed", "succeeded", at=30),
    )
    card = render(state)
    assert card.status is Status.SUCCEEDED and card.summary == ""
    assert [(s.name, s.status, s.status.label) for s in card.steps] == [
        ("Build", Status.SUCCEEDED, "Succeeded"),
        ("Deploy", Status.SKIPPED, "Skipped"),
    ]
    assert replies == []
    assert card.compacted().summary == "2 of 2 stages done"


def test_a_stage_reads_as_each_result_azure_devops_gives_and_every_ended_stage_counts_as_done() -> None:
    """A timeline's stage results: succeededWithIssues is a partial success, abandoned a canceled stage."""
    state, replies = apply(
        run("inProgress"),
        stage("Build", "completed", "succeededWithIssues", at=10),
        stage("Tests", "completed", "succeeded", at=20),
        stage("Lint", "completed", "abandoned", at=20),
        stage("Docs", "completed", "skipped", at=20),
        run("completed", "partiallySucceeded", at=30),
    )
    card = render(state)
    assert card.status is Status.PARTIAL
    assert [(s.name, s.status.label) for s in card.steps] == [
        ("Build", "Partially succeeded"),
        ("Docs", "Skipped"),
        ("Lint", "Canceled"),
        ("Tests", "Succeeded"),
    ]
    assert card.compacted().summary == "4 of 4 stages done"
    assert [r.status for r in replies] == [Status.PARTIAL]  # the run's, not a failure of the stage
    # a stage whose approval was rejected has run its course too, while a stage beside it goes on
    rejected, _ = apply(
        run("inProgress"), stage("Deploy", "completed", "rejected", at=9), stage("Smoke", "running", at=9)
    )
    assert render(rejected).compacted().summary == "1 of 2 stages done"
    going, _ = apply(
        run("inProgress"), stage("Build", "completed", "succeeded", at=1), stage("Deploy", "pending", at=2)
    )
    assert render(going).compacted().summary == "1 of 2 stages done"


def test_a_run_that_partially_succeeded_is_told_so_naming_its_issues_with_its_logs() -> None:
    bob = Person(name="Bob Chen", email="bob@contoso.com")
    logs = ("Logs", "https://dev.azure.com/contoso/mlops/_build/results?buildId=42&view=logs")
    state, [reply] = apply(
        run("inProgress"),
        replace(stage("Build", "completed", "succeededWithIssues", at=10), actor=bob),
        stage("Integration tests", "completed", "succeeded", at=20),
        run("completed", "partiallySucceeded", at=30),
    )
    assert (reply.title, reply.status, reply.summary) == (
        "integrate-app-y 20261128.1 partially succeeded",
        Status.PARTIAL,
        "Issues in stage Build.",
    )
    assert reply.text == "Partially succeeded: integrate-app-y 20261128.1 partially succeeded. Issues in stage Build."
    assert [(link.label, link.url) for link in reply.links] == [logs]
    assert reply.mentions == (Mention("Bob Chen", "bob@contoso.com"),) and reply.status.alerts
    card = render(state)
    assert card.status is Status.PARTIAL and logs in [(link.label, link.url) for link in card.links]
    # the stage the run names (from its timeline), or none known; a run started for a model version names it
    named = replace(run("completed", "partiallySucceeded", at=30), failing_stage="Deploy to QA")
    assert apply(run("inProgress"), named)[1][0].summary == "Issues in stage Deploy to QA."
    two = (stage("Tests", "completed", "succeededWithIssues"), stage("Build", "completed", "partiallySucceeded"))
    _, [reply] = apply(run("inProgress"), *two, run("completed", "partiallySucceeded", at=30))
    assert reply.summary == "Issues in stages Build and Tests."
    for_model = replace(run("completed", "partiallySucceeded", at=30), event_id="handoff-poll", for_model="model-x:8")
    _, [reply] = apply(run("inProgress"), for_model)
    assert reply.text == "Partially succeeded: integrate-app-y 20261128.1 partially succeeded with model-x:8"
    # told once, whatever arrives after
    _, replies = apply(
        run("inProgress"),
        run("completed", "partiallySucceeded", at=30),
        stage("Build", "completed", "succeededWithIssues", at=10),
    )
    assert [r.status for r in replies] == [Status.PARTIAL]


def test_late_events_never_move_the_card_backwards() -> None:
    state, _ = apply(run("completed", "succeeded", at=60), stage("Build", "completed", "succeeded"))
    late = merge(state, run("inProgress"))
    assert not late.changed
    late_stage = merge(state, stage("Build", "running"))
    assert not late_stage.changed
    assert render(late_stage.state).status is Status.SUCCEEDED


def test_what_a_first_event_left_out_is_filled_in_by_the_next() -> None:
    # a hook that named neither the pipeline nor how the run ended, then a complete one
    bare = replace(run("completed", at=60), run=replace(RUN, pipeline_name="", pipeline_id="", project=""))
    state, replies = apply(bare, run("completed", "failed", at=61))
    card = render(state)
    assert card.status is Status.FAILED
    assert state["pipeline"] == RUN.pipeline_name and state["project"] == RUN.project
    assert RUN.pipeline_name in card.title
    assert len(replies) == 1 and replies[0].status is Status.FAILED  # the failure is told once it is known


def steps(state: dict) -> list[tuple[str, Status]]:
    return [(step.name, step.status) for step in render(state).steps]


# one run of integrate-app-y whose Integration tests failed, then "Rerun failed stages" in Azure DevOps
FIRST_ATTEMPT = (
    run("inProgress"),
    stage("Build", "completed", "succeeded", at=10),
    stage("Integration tests", "completed", "failed", at=20),
    run("completed", "failed", at=25),
)


def test_a_retried_stage_shows_running_again_then_its_result_and_the_run_its_new_result() -> None:
    failed, replies = apply(*FIRST_ATTEMPT)
    assert render(failed).summary == "Failed at stage Integration tests" and len(replies) == 1

    going, _ = apply(*FIRST_ATTEMPT, run("inProgress", at=100))
    assert render(going).status is Status.RUNNING and render(going).summary == ""
    assert ("Duration", "25s") not in [(f.label, f.value) for f in render(going).facts]
    retrying, _ = apply(*FIRST_ATTEMPT, run("inProgress", at=100), stage("Integration tests", "inProgress", at=101))
    assert steps(retrying) == [("Build", Status.SUCCEEDED), ("Integration tests", Status.RUNNING)]
    assert render(retrying).mentions == ()

    rerun = (run("inProgress", at=100), stage("Integration tests", "inProgress", at=101))
    passed = (stage("Integration tests", "completed", "succeeded", at=150), run("completed", "succeeded", at=160))
    state, replies = apply(*FIRST_ATTEMPT, *rerun, *passed)
    card = render(state)
    assert (card.status, card.summary) == (Status.SUCCEEDED, "")
    assert steps(state) == [("Build", Status.SUCCEEDED), ("Integration tests", Status.SUCCEEDED)]
    assert ("Duration", "2m 40s") in [(f.label, f.value) for f in card.facts]
    assert len(replies) == 1  # the first attempt's failure only


def test_a_stage_retried_while_its_run_goes_on_ends_with_its_new_result() -> None:
    state, replies = apply(
        run("inProgress"),
        stage("Build", "completed", "succeeded", at=10),
        stage("Integration tests", "completed", "failed", at=20),
        stage("Integration tests", "inProgress", at=30),
        stage("Integration tests", "completed", "succeeded", at=40),
        run("completed", "succeeded", at=50),
    )
    assert render(state).status is Status.SUCCEEDED
    assert steps(state) == [("Build", Status.SUCCEEDED), ("Integration tests", Status.SUCCEEDED)]
    assert len(replies) == 1


def test_a_rerun_that_fails_again_is_told_once_more_and_late_events_of_either_attempt_change_nothing() -> None:
    rerun = (run("inProgress", at=100), stage("Integration tests", "inProgress", at=101))
    failed_again = (stage("Integration tests", "completed", "failed", at=150), run("completed", "failed", at=160))
    state, replies = apply(*FIRST_ATTEMPT, *rerun, *failed_again)
    assert [r.title for r in replies] == ["integrate-app-y 20261128.1 failed in stage Integration tests"] * 2
    assert render(state).summary == "Failed at stage Integration tests"
    # the same failure delivered again, late events of the retry, and the first attempt's events: no change
    for late in (*failed_again, rerun[1], *FIRST_ATTEMPT):
        assert not merge(state, late).changed
    # the first attempt's end arriving after the retry started does not end it
    going, _ = apply(*FIRST_ATTEMPT[:3], *rerun, FIRST_ATTEMPT[3])
    assert render(going).status is Status.RUNNING
    assert steps(going) == [("Build", Status.SUCCEEDED), ("Integration tests", Status.RUNNING)]


def test_a_rerun_seen_only_by_its_end_counts_and_a_second_report_of_one_end_does_not() -> None:
    ended, replies = apply(*FIRST_ATTEMPT, run("completed", "succeeded", at=160))  # its start was lost
    assert render(ended).status is Status.SUCCEEDED and len(replies) == 1
    # build.complete reports the same end as run-state-changed, created a moment later
    again = replace(run("completed", "failed", at=25), event_id="build.complete", created_at=T0 + timedelta(seconds=26))
    state, replies = apply(*FIRST_ATTEMPT, again)
    assert render(state).status is Status.FAILED and len(replies) == 1


def test_a_run_canceled_from_chat_says_who_canceled_it_until_a_rerun_takes_it_on() -> None:
    # Handoff canceled it for Bob (its own event, unstamped), then Azure DevOps' events and the polling end it
    canceling = replace(polled("canceling", at=30), event_id="handoff-cancel", canceled_by="Bob Chen")
    going = (run("inProgress"), stage("Build", "running", at=10))
    for ended in (run("completed", "canceled", at=40), polled("completed", "canceled", at=45)):
        state, replies = apply(*going, canceling, ended)
        assert (render(state).status, render(state).summary, replies) == (Status.CANCELED, "Canceled by Bob Chen", [])
    assert (render(apply(*going, canceling)[0]).summary) == "Canceled by Bob Chen"  # before it has ended
    # Azure DevOps' own cancel, and a cancel that came after the run succeeded, name nobody
    assert render(apply(*going, run("completed", "canceled", at=40))[0]).summary == ""
    succeeded, _ = apply(*going, run("completed", "succeeded", at=25), canceling)
    assert (render(succeeded).status, render(succeeded).summary) == (Status.SUCCEEDED, "")
    # a rerun is no longer the canceled attempt
    rerun, _ = apply(*going, canceling, run("completed", "canceled", at=40), run("inProgress", at=100))
    assert (render(rerun).status, render(rerun).summary) == (Status.RUNNING, "")
    state, _ = apply(
        *going,
        canceling,
        run("completed", "canceled", at=40),
        run("inProgress", at=100),
        run("completed", "canceled", at=160),
    )
    assert (render(state).status, render(state).summary) == (Status.CANCELED, "")


def test_only_events_azure_devops_stamped_take_a_completed_run_or_stage_on() -> None:
    polled = replace(run("inProgress", at=100), event_id="handoff-poll", created_at=None)
    unstamped = replace(stage("Integration tests", "inProgress", at=101), created_at=None)
    state, _ = apply(*FIRST_ATTEMPT)
    for late in (polled, unstamped):
        assert not merge(state, late).changed


def test_a_rerun_of_a_run_whose_end_handoff_learned_by_polling_takes_its_card_on_and_is_told_again() -> None:
    ended = (
        polled("inProgress"),
        stage("Integration tests", "completed", "failed", at=20),
        replace(polled("completed", "failed", at=30), failing_stage="Integration tests"),
    )
    failed, replies = apply(*ended)
    assert render(failed).status is Status.FAILED and len(replies) == 1
    # the finished attempt's events, arriving late, leave it failed (filling in only what the polls left out)
    for late in (
        run("inProgress", at=5),
        stage("Integration tests", "inProgress", at=15),
        run("completed", "failed", at=25),
    ):
        merged = merge(failed, late)
        assert (render(merged.state).status, render(merged.state).summary, merged.replies) == (
            Status.FAILED,
            "Failed at stage Integration tests",
            [],
        )
    # "Rerun failed stages": its first event takes the card back to running, and its failure is told again
    going, _ = apply(*ended, run("inProgress", at=100))
    assert (render(going).status, render(going).summary) == (Status.RUNNING, "")
    failed_again = (stage("Integration tests", "completed", "failed", at=150), run("completed", "failed", at=160))
    state, replies = apply(*ended, run("inProgress", at=100), *failed_again)
    assert render(state).status is Status.FAILED
    assert [r.title for r in replies] == ["integrate-app-y 20261128.1 failed in stage Integration tests"] * 2


@st.composite
def run_histories(draw: st.DrawFn) -> tuple[list[object], list[object]]:
    """A run's events in the order they happened, and in the order they arrived: 1 to 3 stages, at most one
    of them failing, and the run's end, which names the failing stage only when Handoff could look it up."""
    names = draw(st.lists(st.sampled_from(["Build", "Tests", "Deploy"]), min_size=1, max_size=3, unique=True))
    failing = draw(st.sampled_from([None, *names]))
    happened: list[object] = [run("inProgress")]
    for at, name in enumerate(names, 1):
        result = "failed" if name == failing else "succeeded"
        happened += [stage(name, "running", at=at * 10), stage(name, "completed", result, at=at * 10 + 5)]
    end = run("completed", "failed" if failing else "succeeded", at=95)
    happened.append(replace(end, failing_stage=failing) if failing and draw(st.booleans()) else end)
    return happened, draw(st.permutations(happened))


def shown(state: dict) -> tuple[object, ...]:
    """What the card shows, its stages in their order."""
    card = render(state)
    return card.title, card.status, card.summary, card.facts, card.links, card.steps


@given(run_histories())
def test_a_run_card_ends_the_same_and_tells_a_failure_once_whatever_order_its_events_arrive_in(
    history: tuple[list[object], list[object]],
) -> None:
    happened, arrived = history
    in_order, replies_in_order = apply(*happened)
    state, replies = apply(*arrived)
    assert shown(state) == shown(in_order)
    assert len(replies) == len(replies_in_order) == (1 if render(in_order).status is Status.FAILED else 0)
    assert apply(*arrived, *happened) == (state, replies)  # every event delivered again changes nothing


def told_where_first_shown(arrived: list[object], first: int) -> list[Card]:
    """The replies a conversation the event ``arrived[first]`` first shows the run's card in gets, as the ingest
    plans them: what the thread was told before, then each event's own."""
    state = apply(*arrived[:first])[0] if first else None
    merged = merge(state, arrived[first])  # type: ignore[arg-type]
    earlier = replies_told(state, merged.state) if state is not None else []
    told = [*(r for r in earlier if r not in merged.replies), *merged.replies]
    state = merged.state
    for event in arrived[first + 1 :]:
        merged = merge(state, event)  # type: ignore[arg-type]
        state, told = merged.state, told + merged.replies
    return told


@given(run_histories(), st.data())
def test_a_conversation_first_shown_a_run_card_by_any_of_its_events_is_told_its_failure_once(
    history: tuple[list[object], list[object]], data: st.DataObject
) -> None:
    """A subscription that routes only some of the run's events (runs, not stages) shows the card from the first
    of those: whichever it is, the thread is told the failure once, as a conversation shown it from the start."""
    happened, arrived = history
    _, replies_in_order = apply(*happened)
    first = data.draw(st.integers(0, len(arrived) - 1))
    told = told_where_first_shown(arrived, first)
    assert [r.status for r in told] == [r.status for r in replies_in_order]
    came = [e.stage_name for e in arrived[: first + 1] if isinstance(e, StageStateChanged) and e.result == "failed"]
    if failing := next(iter(came), None):  # the failed stage's event came by then: the reply names it
        assert [r.title for r in told] == [f"integrate-app-y 20261128.1 failed in stage {failing}"]


def test_what_a_run_card_told_before_is_told_as_it_reads_now_unless_taken_back() -> None:
    stage_first = (stage("Integration tests", "completed", "failed", at=50), run("inProgress"))
    [reply] = told_where_first_shown([*stage_first, run("completed", "failed", at=60)], 1)
    assert reply.title == "integrate-app-y 20261128.1 failed in stage Integration tests"
    assert [(link.label, link.url) for link in reply.links] == [
        ("Logs", "https://dev.azure.com/contoso/mlops/_build/results?buildId=42&view=logs")
    ]
    # a run whose failure was told without a stage: told naming the stage its card shows now
    run_first = [run("completed", "failed", at=60), stage("Integration tests", "completed", "failed", at=50)]
    [reply] = told_where_first_shown([*run_first, run("inProgress")], 2)
    assert reply.title == "integrate-app-y 20261128.1 failed in stage Integration tests"
    # a rejection, and issues
    rejected = replace(stage("Deploy", "completed", "failed", at=9), rejection=Rejection(stage="Deploy", by="Carol"))
    [reply] = told_where_first_shown([rejected, run("completed", "failed", at=10), run("inProgress")], 2)
    assert (reply.title, reply.status) == (
        "integrate-app-y 20261128.1 rejected at stage Deploy by Carol",
        Status.REJECTED,
    )
    issues = [stage("Build", "completed", "succeededWithIssues"), run("completed", "partiallySucceeded", at=30)]
    [reply] = told_where_first_shown([*issues, run("inProgress")], 2)
    assert (reply.status, reply.summary) == (Status.PARTIAL, "Issues in stage Build.")
    # a retry takes the failure back: the card reads running, and nothing is told
    retried, _ = apply(*stage_first, stage("Integration tests", "inProgress", at=100))
    assert replies_told(apply(*stage_first)[0], retried) == []
    # nothing told yet, and cards of other kinds: nothing told again
    assert replies_told(apply(run("inProgress"))[0], apply(run("inProgress"), stage("Build", "running"))[0]) == []
    model, _ = apply(registration())
    assert replies_told(model, model) == []


def test_an_approval_decided_before_its_request_came_is_told_by_its_decision() -> None:
    carol = Approver(person=Person(name="Carol Diaz", email="carol@contoso.com"), status="approved", comment="ok")
    decided, _ = apply(approval(ApprovalCompleted, "approved", (carol,)))
    asked = merge(decided, approval(ApprovalPending, "pending", (replace(carol, status="pending", comment=""),)))
    [reply] = replies_told(decided, asked.state)
    assert (reply.title, reply.status, reply.summary) == ("Approved by Carol Diaz", Status.APPROVED, "ok")
    timed_out, _ = apply(approval(ApprovalCompleted, "timedOut", ()))
    [reply] = replies_told(timed_out, merge(timed_out, approval(ApprovalPending, "pending", ())).state)
    assert reply.title == "Closed: timed out in Azure DevOps"
    # a waiting approval told nothing; a decision Azure DevOps refused was taken back
    waiting, _ = apply(approval(ApprovalPending, "pending", ()))
    assert replies_told(waiting, waiting) == []
    assert replies_told(decided, {**decided, "status": "pending"}) == []


def stage_names(state: dict) -> list[str]:
    return [step.name for step in render(state).steps]


def test_a_run_card_lists_its_stages_by_when_they_started_not_by_when_their_events_arrived() -> None:
    # Tests' completion arrives before Build's start: Build started first
    tests_done = stage("Tests", "completed", "succeeded", at=40)
    first, _ = apply(run("inProgress"), tests_done, stage("Build", "running", at=5))
    assert stage_names(first) == ["Build", "Tests"]
    # Deploy's start arrives, then Tests' late start moves Tests ahead of it
    state, _ = apply(tests_done, stage("Deploy", "running", at=35), stage("Tests", "running", at=30))
    assert stage_names(state) == ["Tests", "Deploy"]
    # stages that started together are listed by name, whichever came first
    together, _ = apply(stage("Lint", "running", at=10), stage("Build", "running", at=10))
    assert stage_names(together) == ["Build", "Lint"]
    # a card stored before stages kept their start keeps the order its stages' events arrived in
    stages = {name: {k: v for k, v in s.items() if k != "first_at"} for name, s in first["stages"].items()}
    assert stage_names({**first, "stages": stages}) == ["Tests", "Build"]


def test_redelivered_event_changes_nothing() -> None:
    state, _ = apply(run("inProgress"), stage("Build", "running"))
    assert not merge(state, stage("Build", "running")).changed


def approval(cls: type, status: str, approvers: tuple[Approver, ...]) -> ApprovalPending:
    return cls(  # type: ignore[no-any-return]
        source="azure-devops",
        event_id=f"a{status}",
        occurred_at=T0,
        scope="contoso",
        approval_id="abc",
        status=status,
        run=RUN,
        stage_name="production",
        environment_name="production",
        instructions="Check the dashboard first",
        min_required_approvers=1,
        approvers=approvers,
    )


@pytest.mark.parametrize(
    ("changes", "title"),
    [
        pytest.param({}, "Release integrate-app-y to production", id="a pipeline's run"),
        pytest.param({"environment_name": None}, "Release integrate-app-y to production", id="its stage"),
        pytest.param({"run": None}, "Approval in production", id="its run unknown"),
        pytest.param({"run": None, "environment_name": None}, "Approval at stage production", id="a stage alone"),
        pytest.param({"run": None, "environment_name": None, "stage_name": None}, "Approval", id="nothing known"),
        pytest.param(
            {"run": None, "approval_kind": "release", "release_name": "Release-1", "release_definition": "App.CD"},
            "Release App.CD Release-1 to production",
            id="a classic release",
        ),
        pytest.param(
            {
                "run": None,
                "approval_kind": "release",
                "release_name": "Release-1",
                "release_definition": "App.CD",
                "approval_type": "postDeploy",
            },
            "Sign off App.CD Release-1 in production",
            id="a classic release deployed",
        ),
        pytest.param(
            {"run": None, "approval_kind": "release", "environment_name": None, "approval_type": "postDeploy"},
            "Sign-off after deployment",
            id="a deployment's sign-off, nothing else known",
        ),
    ],
)
def test_a_gate_card_says_what_it_asks_from_what_is_known(changes: dict[str, object], title: str) -> None:
    event = replace(approval(ApprovalPending, "pending", ()), **changes)  # type: ignore[arg-type]
    card = render(apply(event)[0])
    assert card.title == title
    assert (Fact("Approval", "Post-deployment") in card.facts) == ("approval_type" in changes)


def gate_change(revision: int, status: str, *voters: str) -> GateChanged:
    return GateChanged(
        source="handoff",
        event_id=f"gate:v{revision}",
        occurred_at=T0,
        gate_id="gate",
        status=status,
        decisions=tuple(GateDecision(actor=f"{v}@contoso.com", decision="approve", platform="slack") for v in voters),
        needed=2,
        revision=revision,
    )


def test_a_gate_change_that_arrives_after_a_newer_one_never_takes_the_card_back() -> None:
    """Two approvals published at once may reach the card in either order."""
    pending = approval(ApprovalPending, "pending", (Approver(person=Person(name="Carol", email="c@contoso.com")),))
    changes = [gate_change(2, "pending", "carol"), gate_change(3, "approved", "carol", "dave")]
    in_order, _ = apply(pending, *changes)
    late, replies = apply(pending, *reversed(changes))
    assert late == in_order
    assert render(late).status is Status.APPROVED
    # nothing for the stale one
    assert [r.title for r in replies] == ["Approved by carol@contoso.com and dave@contoso.com"]


def test_a_gate_card_names_the_people_who_decided_as_the_approval_names_them() -> None:
    """Deciders are known by their email; the card shows the names the approval's steps give them (a group's
    members included), and the email of anyone they do not name."""
    carol = Approver(person=Person(name="Carol Diaz", email="carol@contoso.com"))
    managers = Approver(
        person=Person(name="[mlops]\\Release Managers"),
        group=True,
        members=(Person(name="Dave Li", email="Dave@Contoso.com"),),
    )
    pending = approval(ApprovalPending, "pending", (carol, managers))
    votes = [
        GateDecision(actor="erin@contoso.com", decision="approve", platform="teams"),
        GateDecision(actor="carol@contoso.com", decision="approve", platform="slack"),
        GateDecision(actor="dave@contoso.com", decision="approve", platform="slack"),
    ]
    changes = [
        replace(gate_change(n + 1, "approved" if n == 3 else "pending"), decisions=tuple(votes[:n]), needed=3)
        for n in (1, 2, 3)
    ]
    waiting, _ = apply(pending, *changes[:2])
    assert ("Approved so far", "2 of 3: erin@contoso.com, Carol Diaz") in facts(render(waiting))
    decided, replies = apply(pending, *changes)
    assert [r.title for r in replies] == [
        "Approved by erin@contoso.com (1 of 3)",
        "Approved by Carol Diaz (2 of 3)",
        "Approved by erin@contoso.com, Carol Diaz and Dave Li",
    ]
    # every approval that made it up, not only the last
    assert ("Decided by", "erin@contoso.com, Carol Diaz and Dave Li") in facts(render(decided))


def policy_gate(terms: GateTerms) -> ApprovalPending:
    """A pending approval assigned to Carol and Bob (Bob asked for its run), with what Handoff's gate policy
    says of it."""
    carol = Approver(person=Person(name="Carol Diaz", email="carol@contoso.com"))
    bob = Approver(person=Person(name="Bob Chen", email="bob@contoso.com"))
    return replace(approval(ApprovalPending, "pending", (carol, bob)), terms=terms)


def test_a_gate_card_shows_what_its_gate_policy_says_from_the_start() -> None:
    """Two approvals, alice (by email) and someone known by a Slack id only through the policy's approver role,
    bob barred as the requester, an expiry: the card says so before anyone clicks, and calls on every
    approver who may decide, the one known by an id by that id (counted, never shown)."""
    expires = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    terms = GateTerms(
        needed=2,
        role_approvers=("alice@contoso.com", "carol@contoso.com", "slack:U0FRANK01"),
        barred=("bob@contoso.com",),
        expires_at=expires,
    )
    card = render(apply(policy_gate(terms))[0])
    shown = dict(facts(card))
    assert shown["Approvers"] == "Carol Diaz, alice@contoso.com and 1 more approver"  # not bob, nor carol twice
    assert shown["Approvals needed"] == "2"
    assert shown["Expires"] == "2026-12-01 09:30 UTC"
    assert [(m.email, m.user_id) for m in card.mentions] == [
        ("carol@contoso.com", ""),
        ("alice@contoso.com", ""),
        ("", "slack:U0FRANK01"),
    ]
    assert "U0FRANK01" not in repr(card.facts) + card.summary


def test_a_gate_card_calls_on_role_approvers_until_they_decide_and_names_every_approval() -> None:
    terms = GateTerms(needed=2, role_approvers=("alice@contoso.com", "slack:U0FRANK01"), barred=("bob@contoso.com",))
    carol = GateDecision(actor="carol@contoso.com", decision="approve", platform="slack", name="Carol Diaz")
    alice = GateDecision(
        actor="alice@contoso.com", decision="approve", platform="teams", name="Alice Martin", comment="second"
    )
    one = replace(gate_change(2, "pending"), decisions=(carol,))
    two = replace(gate_change(3, "approved"), decisions=(carol, alice))
    waiting, _ = apply(policy_gate(terms), one)
    card = render(waiting)
    assert ("Approved so far", "1 of 2: Carol Diaz") in facts(card)
    assert [(m.email, m.user_id) for m in card.mentions] == [("alice@contoso.com", ""), ("", "slack:U0FRANK01")]
    decided, replies = apply(policy_gate(terms), one, two)
    card = render(decided)
    assert ("Decided by", "Carol Diaz and Alice Martin") in facts(card)
    assert card.mentions == ()
    assert (replies[-1].title, replies[-1].summary) == ("Approved by Carol Diaz and Alice Martin", "second")
    # the headline stays what it was while the gate waited; the status line says how it was decided
    assert card.title == render(waiting).title == "Release integrate-app-y to production"


def test_a_decisions_notification_says_its_status_once() -> None:
    _, replies = apply(approval(ApprovalPending, "pending", ()), replace(gate_change(2, "approved", "carol"), needed=1))
    [reply] = replies
    assert reply.text == "Approved in Slack by carol@contoso.com"
    assert Card(title="Release app-y to prod", status=Status.APPROVED).text == "Approved: Release app-y to prod"


def test_approvers_the_hook_names_by_id_alone_read_as_what_they_are_never_as_ids() -> None:
    """The hook names a pipeline approval's approvers by id; when the identity service does not answer, the card
    says what they are rather than show a GUID."""
    someone = Approver(person=Person(id="743f73b7-cdeb-4de7-80b7-00cee17476b8"))
    group = Approver(person=Person(id="6a8bdc3e-1b7c-4a15-9a3d-2b0cfa6a5a11"), group=True)
    waiting, _ = apply(approval(ApprovalPending, "pending", (someone, group)))
    assert ("Approvers", "an Azure DevOps identity, a group in Azure DevOps") in facts(render(waiting))
    decider = Approver(person=Person(id="f8482ec0-3e2f-489b-ba62-ea01cf84afa8"), status="approved")
    decided, replies = apply(
        approval(ApprovalPending, "pending", (someone,)), approval(ApprovalCompleted, "approved", (decider,))
    )
    assert ("Decided by", "an Azure DevOps identity") in facts(render(decided))
    assert [r.title for r in replies] == ["Approved by an Azure DevOps identity"]
    assert not any(guid in repr(render(decided)) for guid in ("743f73b7", "f8482ec0"))  # nowhere on the card
    # a name the payload gives is shown, and Azure DevOps' own completion by an id alone reads the same way
    named = Approver(person=Person(name="Carol Diaz", id="743f73b7-cdeb-4de7-80b7-00cee17476b8"))
    assert ("Approvers", "Carol Diaz") in facts(render(apply(approval(ApprovalPending, "pending", (named,)))[0]))


def test_a_decision_azure_devops_refused_takes_the_gate_card_back_to_waiting() -> None:
    """A decision shown before Azure DevOps refused it (it was not answering at first) did not take effect: the
    card waits again and says whose decision was refused and why, unless Azure DevOps has completed the
    approval since."""
    carol = Approver(person=Person(name="Carol Diaz", email="carol@contoso.com"))
    pending = replace(approval(ApprovalPending, "pending", (carol,)), web_url="https://dev.azure.com/run/77")
    vote = GateDecision(actor="carol@contoso.com", decision="approve", platform="teams")
    decided = replace(gate_change(2, "approved"), decisions=(vote,), note="Azure DevOps is not answering")
    why = (
        "Handoff Bot cannot approve approval abc: the requester of the run is not allowed to approve it; "
        "decide in Azure DevOps."
    )
    refused = replace(gate_change(3, "pending"), refused=vote, note=why)
    state, replies = apply(pending, decided, refused)
    card = render(state)
    assert card.status is Status.WAITING and [a.action_id for a in card.actions] == ["approve", "reject"]
    assert card.summary == f"Azure DevOps refused Carol Diaz's approval: {why}\n\nCheck the dashboard first"
    assert not {"Decided by", "Note"} & {label for label, _ in facts(card)}
    assert card.mentions == (Mention("Carol Diaz", "carol@contoso.com"),)  # called on again
    assert [(r.title, r.status) for r in replies] == [
        ("Approved in Teams by Carol Diaz", Status.APPROVED),
        ("Azure DevOps refused Carol Diaz's approval", Status.WARNING),
    ]
    assert replies[-1].summary == why and replies[-1].links[0].url == "https://dev.azure.com/run/77"
    # the stale change that showed it approved never takes the card back
    assert render(apply(pending, refused, decided)[0]).status is Status.WAITING
    # Azure DevOps completed the approval first: the refusal changes nothing it shows
    done = approval(ApprovalCompleted, "rejected", (replace(carol, status="rejected"),))
    closed, replies = apply(pending, done, refused)
    assert render(closed).status is Status.REJECTED and [r.title for r in replies] == ["Rejected by Carol Diaz"]


def test_an_expired_gate_and_an_override_tell_their_thread_what_happened() -> None:
    """An expiry's reply says nobody decided and what follows (the gate's note); an override's says it approved
    over what blocked Approve, with the reason given."""
    carol = Approver(person=Person(name="Carol Diaz", email="carol@contoso.com"))
    pending = approval(ApprovalPending, "pending", (carol,))
    note = "Nothing was released or tagged (open until 2026-12-01 09:00 UTC)."
    state, replies = apply(pending, replace(gate_change(2, "expired"), note=note))
    assert [(r.title, r.status, r.summary) for r in replies] == [("Nobody decided in time", Status.EXPIRED, note)]
    assert ("Note", note) in facts(render(state))
    override = GateDecision(
        actor="carol@contoso.com", decision="override", platform="teams", comment="the new field is optional"
    )
    _, replies = apply(pending, replace(gate_change(2, "approved"), decisions=(override,)))
    assert [(r.title, r.summary) for r in replies] == [
        ("Approved, overriding what blocked it, in Teams by Carol Diaz", "the new field is optional")
    ]


def test_a_gate_card_expired_in_handoff_takes_how_azure_devops_then_completed_the_approval() -> None:
    """Handoff's expiry is its own: the approval waited on in Azure DevOps, whose completion the card then shows,
    without the note that it still waits there, and without buttons; a later ask for it changes nothing."""
    carol = Approver(person=Person(name="Carol Diaz", email="carol@contoso.com"))
    pending = approval(ApprovalPending, "pending", (carol,))
    note = "It can no longer be decided here; the approval still waits in Azure DevOps."
    expired = replace(gate_change(2, "expired"), note=note)
    decided = replace(carol, status="approved", comment="fine by me")
    state, replies = apply(pending, expired, approval(ApprovalCompleted, "approved", (decided,)))
    card = render(state)
    assert card.status is Status.APPROVED and card.actions == ()
    assert ("Decided by", "Carol Diaz") in facts(card) and "Note" not in dict(facts(card))
    assert [(r.title, r.summary) for r in replies[1:]] == [("Approved by Carol Diaz", "fine by me")]
    assert not merge(state, approval(ApprovalPending, "pending", (carol,))).changed

    state, replies = apply(pending, expired, approval(ApprovalCompleted, "timedOut", (carol,)))
    card = render(state)
    assert card.status is Status.EXPIRED and card.actions == () and "Note" not in dict(facts(card))
    assert card.summary.startswith("Closed: timed out in Azure DevOps.")
    assert [r.title for r in replies[1:]] == ["Closed: timed out in Azure DevOps"]
    # back to waiting, it would offer buttons again: a pending ask for a card expired in Handoff changes nothing
    assert not merge(apply(pending, expired)[0], approval(ApprovalPending, "pending", (carol,))).changed


def facts(card: Card) -> list[tuple[str, str]]:
    return [(f.label, f.value) for f in card.facts]


def test_a_model_card_shows_its_workspace_by_name_and_no_tag_twice() -> None:
    workspace = (
        "/subscriptions/0001/resourceGroups/rg-mlops/providers/Microsoft.MachineLearningServices/workspaces/ws-mlops"
    )
    registered = ModelRegistered(
        source="azure-ml",
        event_id="m1",
        occurred_at=T0,
        scope=workspace,
        model_name="model-x",
        model_version="8",
        model_tags={"model": "model-x", "training_job": "job-1", "version": "7"},
    )
    card = render(merge(None, registered).state)
    assert facts(card) == [
        ("Model", "model-x"),
        ("Version", "8"),
        ("training_job", "job-1"),
        ("version", "7"),  # not what the card says already
    ]
    assert card.context == "Azure ML · ws-mlops"
    # a scope that is not a workspace's resource id is shown as it is
    other = render(merge(None, replace(registered, scope="contoso-lake")).state)
    assert other.context == "Azure ML · contoso-lake"


WORKSPACE = (
    "/subscriptions/0001/resourceGroups/rg-mlops/providers/Microsoft.MachineLearningServices/workspaces/ws-mlops"
)


def registration(at: int = 0) -> ModelRegistered:
    return ModelRegistered(
        source="azure-ml",
        event_id=f"reg{at}",
        occurred_at=T0 + timedelta(seconds=at),
        scope=WORKSPACE,
        model_name="model-x",
        model_version="8",
        web_url="https://ml.azure.com/model/model-x:8/details",
    )


def deployment(service: str, compute: str = "AKS", at: int = 10, *model_ids: str) -> ModelDeployed:
    return ModelDeployed(
        source="azure-ml",
        event_id=f"dep-{service}-{at}",
        occurred_at=T0 + timedelta(seconds=at),
        scope=WORKSPACE,
        service_name=service,
        compute_type=compute,
        model_ids=model_ids or ("model-x:8",),
        web_url=f"https://ml.azure.com/endpoints/realtime/{service}/detail",
    )


def test_a_deployment_shows_on_its_model_versions_card_with_a_reply() -> None:
    registered = merge(None, registration())
    assert deployment("model-x-prod").grouping_key == registration().grouping_key  # one card per version
    deployed = merge(registered.state, deployment("model-x-prod"))
    card = render(deployed.state)
    assert card.title == "Model model-x:8 deployed"
    assert facts(card) == [("Model", "model-x"), ("Version", "8"), ("Deployed to", "model-x-prod (AKS)")]
    assert card.links == render(registered.state).links  # still the model's page
    [reply] = deployed.replies
    assert reply.title == "Model model-x:8 deployed to model-x-prod (AKS)"
    assert reply.status is Status.SUCCEEDED and not reply.status.alerts
    assert [link.url for link in reply.links] == ["https://ml.azure.com/endpoints/realtime/model-x-prod/detail"]


def test_a_versions_deployments_are_all_listed_never_moving_backwards_and_told_once() -> None:
    state, replies = apply(
        registration(),
        deployment("model-x-staging", "ACI", at=10),
        deployment("model-x-prod", "AKS", at=20),
        replace(deployment("model-x-prod", "AKS", at=20), event_id="again"),  # the same deployment told again
        deployment("Model-X-Prod", "", at=5),  # an older deployment arriving late, its compute not said
    )
    assert dict(facts(render(state)))["Deployed to"] == "model-x-staging (ACI), model-x-prod (AKS)"
    assert [r.title for r in replies] == [
        "Model model-x:8 deployed to model-x-staging (ACI)",
        "Model model-x:8 deployed to model-x-prod (AKS)",
    ]
    again = merge(state, replace(deployment("model-x-prod", "AKS", at=20), event_id="again"))
    assert not again.changed and not again.replies
    # a later deployment to a service the version runs on already (an update) is no news for the thread
    updated = merge(state, deployment("model-x-prod", "AKS", at=30))
    assert updated.replies == [] and dict(facts(render(updated.state)))["Deployed to"] == (
        "model-x-staging (ACI), model-x-prod (AKS)"
    )


def test_a_deployment_of_a_version_whose_card_was_never_posted_posts_the_versions_card() -> None:
    first = merge(None, deployment("model-x-prod"))
    card = render(first.state)
    assert first.replies == []  # the card says it
    assert (card.title, card.status) == ("Model model-x:8 deployed", Status.SUCCEEDED)
    assert card.context == "Azure ML · ws-mlops"
    assert facts(card) == [("Deployed to", "model-x-prod (AKS)")]
    assert [(link.label, link.url) for link in card.links] == [("Open", deployment("model-x-prod").web_url)]
    # its registration arriving late draws the card again, keeping where the version runs
    late = render(merge(first.state, registration()).state)
    assert late.title == "Model model-x:8 deployed"
    assert facts(late) == [("Model", "model-x"), ("Version", "8"), ("Deployed to", "model-x-prod (AKS)")]


def test_a_deployment_of_several_versions_is_one_event_per_version_and_one_without_versions_keeps_its_card() -> None:
    several = deployment("scoring", "AKS", 10, "churn:1", "fraud:2", "churn:1")
    parts = several.per_card()
    assert [p.model_ids for p in parts] == [("churn:1",), ("fraud:2",)]
    assert len({p.grouping_key for p in parts}) == len({p.dedupe_key for p in parts}) == 2
    # a deployment of one version is stored under the sender's event id, as before parts existed
    one = deployment("scoring", "AKS", 10, "churn:1")
    assert one.per_card() == (one,) and one.dedupe_key == f"azure-ml:{one.scope}:{one.event_id}"
    assert [p.model_names for p in parts] == [("churn",), ("fraud",)]  # a models filter matches each alone
    nameless = deployment("scoring", "AKS", 10, "churn")
    assert nameless.per_card() == (nameless,) and nameless.deployed_version is None
    own = render(merge(None, nameless).state)
    assert own.title == "Deployed to scoring" and facts(own) == [("Models", "churn"), ("Compute", "AKS")]


def test_a_model_handoff_card_shows_its_deployments_too() -> None:
    checked = ModelChecked(
        source="handoff",
        event_id="chk",
        occurred_at=T0,
        card_key=registration().grouping_key,
        model_name="model-x",
        model_version="8",
        apps={"app-y": {"app": "app-y", "verdict": "compatible", "owners": []}},
    )
    state, _ = apply(registration(), checked, deployment("model-x-prod"))
    card = render(state)
    assert card.title == "Model model-x:8 deployed"
    assert ("Deployed to", "model-x-prod (AKS)") in facts(card) and card.summary.startswith("Contract check")
    # the registration told again keeps both the checks and the deployment
    again = render(merge(state, replace(registration(), event_id="reg-again")).state)
    assert ("Deployed to", "model-x-prod (AKS)") in facts(again) and again.summary == card.summary


def pull_request(change: str, status: str, at: int, title: str = "Retrain on new data") -> PullRequestChanged:
    return PullRequestChanged(
        source="azure-devops",
        event_id=f"pr{change}{at}{title}",
        occurred_at=T0 + timedelta(seconds=at),
        scope="contoso",
        project="mlops",
        repository="app-y",
        pull_request_id="17",
        title=title,
        change=change,
        status=status,
    )


def test_a_one_event_card_shows_its_latest_event_and_of_two_at_once_the_one_that_ended_it() -> None:
    updated, merged = pull_request("updated", "active", at=0), pull_request("merged", "completed", at=0)
    for arrived in ((updated, merged), (merged, updated)):
        state, _ = apply(*arrived)
        assert render(state).status is Status.SUCCEEDED, arrived
        assert not merge(state, arrived[0]).changed
    # of two at once that say as much, the same one whichever came first
    renamed = pull_request("updated", "active", at=0, title="Retrain on new data (v2)")
    assert apply(updated, renamed)[0] == apply(renamed, updated)[0]
    # a later event draws the card, whatever it says; an earlier one changes nothing
    reopened = pull_request("updated", "active", at=30)
    assert render(apply(merged, reopened)[0]).status is Status.RUNNING
    assert not merge(apply(reopened)[0], merged).changed


def training(status: str, at: int, actor: Person | None = None) -> TrainingRunFinished:
    return TrainingRunFinished(
        source="azure-ml",
        event_id=f"t{status}{at}",
        occurred_at=T0 + timedelta(seconds=at),
        scope="/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws-mlops",
        actor=actor,
        run_id="job-1",
        experiment_name="model-x",
        status=status,
    )


def test_a_training_run_that_ended_never_goes_back_to_going() -> None:
    # Azure ML's RunStatusChanged: Running at 05:00, Failed at 05:10, then a Running stamped 05:10:01
    running, failed, late_running = training("Running", 0), training("Failed", 600), training("Running", 601)
    state, replies = apply(running, failed)
    assert render(state).status is Status.FAILED and len(replies) == 1
    assert not merge(state, late_running).changed
    # all three before the card was first drawn, and in any order: the failure is shown, and told once
    for order in ((running, failed, late_running), (running, late_running, failed), (late_running, failed, running)):
        state, replies = apply(*order)
        assert render(state).status is Status.FAILED, order
        assert [r.title for r in replies] == ["Training run job-1 failed"]
    # an ending stamped later still replaces an ending, as before; a cancel requested is not an ending
    assert render(apply(failed, training("Canceled", 700))[0]).status is Status.CANCELED
    assert render(apply(failed, training("Completed", 500))[0]).status is Status.FAILED
    assert render(apply(failed, training("CancelRequested", 700))[0]).status is Status.FAILED
    assert render(apply(training("CancelRequested", 700), failed)[0]).status is Status.FAILED


def test_a_training_card_gives_azure_mls_status_only_while_the_run_goes_on() -> None:
    def facts(status: str) -> list[tuple[str, str]]:
        return [(f.label, f.value) for f in render(apply(training(status, 0))[0]).facts]

    assert ("Status", "Preparing") in facts("Preparing")  # more than the card's own status says
    for ended in ("Completed", "Failed", "Canceled"):  # the card's status says it
        assert "Status" not in [label for label, _ in facts(ended)]


def test_a_training_card_reads_queued_or_running_while_the_job_waits_or_runs() -> None:
    def drawn(status: str) -> tuple[Status, list[tuple[str, str]]]:
        card = render(apply(training(status, 0))[0])
        return card.status, [(f.label, f.value) for f in card.facts if f.label == "Status"]

    # as Handoff's polling and Azure ML's events name where the job is
    assert drawn("Queued") == (Status.QUEUED, [])
    assert drawn("Preparing") == (Status.QUEUED, [("Status", "Preparing")])
    assert drawn("Running") == (Status.RUNNING, [])
    assert drawn("running") == (Status.RUNNING, [])
    assert drawn("Finalizing") == (Status.RUNNING, [("Status", "Finalizing")])
    assert drawn("CancelRequested") == (Status.CANCELED, [("Status", "CancelRequested")])
    assert drawn("Completed") == (Status.SUCCEEDED, [])
    assert drawn("Failed") == (Status.FAILED, [])
    assert drawn("Canceled") == (Status.CANCELED, [])
    assert drawn("NotResponding") == (Status.INFO, [("Status", "NotResponding")])


def test_a_training_run_without_an_experiment_name_is_titled_by_its_run_and_shows_no_experiment() -> None:
    named = render(apply(training("Completed", 0))[0])
    assert named.title == "Training run model-x/job-1"
    assert facts(named) == [("Experiment", "model-x"), ("Run", "job-1")]
    # RunCompleted without data: Azure ML's subject names the experiment by its id only
    unnamed = render(apply(replace(training("Completed", 0), run_id="run-44", experiment_name=""))[0])
    assert unnamed.title == "Training run run-44"
    assert facts(unnamed) == [("Run", "run-44")]


def test_a_card_shows_no_fact_without_a_value() -> None:
    deployed = ModelDeployed(
        source="azure-ml", event_id="d1", occurred_at=T0, service_name="scoring", model_ids=("churn:1", "fraud:2")
    )
    assert facts(render(apply(deployed)[0])) == [("Models", "churn:1, fraud:2")]  # every model, no compute known
    assert facts(render(apply(replace(deployed, model_ids=(), compute_type="AKS"))[0])) == [("Compute", "AKS")]
    into_nothing = render(apply(replace(pull_request("created", "active", at=0), target_ref=""))[0])
    assert facts(into_nothing) == [("Repository", "app-y"), ("Status", "active")]
    # a run whose pipeline is not named, and a card drawn before empty facts were left out
    unnamed = replace(run("inProgress"), run=replace(RUN, pipeline_name=""))
    assert [label for label, _ in facts(render(apply(unnamed)[0]))] == ["Run", "Branch"]
    stored = Card(title="Training run /run-44", facts=(Fact("Experiment", ""), Fact("Run", "run-44"))).to_json()
    assert facts(render({"type": "training_run", "occurred": T0.isoformat(), "card": stored})) == [("Run", "run-44")]


def test_what_a_card_would_show_blank_it_says_otherwise() -> None:
    # a tag set without a value, a commit without a message: there, so shown, but not as an empty fact
    registered = ModelRegistered(
        source="azure-ml",
        event_id="m1",
        occurred_at=T0,
        model_name="fraud",
        model_version="2",
        model_tags={"team": "risk", "production": "", "candidate": " "},
    )
    assert facts(render(apply(registered)[0]))[2:] == [("team", "risk"), ("Tags", "candidate, production")]
    pushed = CodePushed(
        source="azure-devops",
        event_id="p1",
        occurred_at=T0,
        repository="app-y",
        ref="refs/heads/main",
        commits=(Commit(id="0123456789", message="Retrain\n\nwith May's data"), Commit(id="abcdef0123")),
    )
    assert facts(render(apply(pushed)[0]))[1:] == [("01234567", "Retrain"), ("abcdef01", "(no message)")]


def test_a_training_job_canceled_from_chat_says_who_canceled_it_on_its_card() -> None:
    # Handoff canceled it for Bob (its own event), then its polling and Azure ML's events end it
    canceling = replace(training("CancelRequested", 30), event_id="handoff-cancel:job-1", canceled_by="Bob Chen")
    going = training("Running", 10)
    for ended in (training("Canceled", 40), replace(training("Canceled", 45), event_id="handoff-poll:job-1:Canceled")):
        card = render(apply(going, canceling, ended)[0])
        assert (card.status, card.summary) == (Status.CANCELED, "Canceled by Bob Chen")
    assert render(apply(going, canceling)[0]).summary == "Canceled by Bob Chen"  # before it has ended
    # Azure ML's own cancel names nobody; a job that completed before the cancel reached it does not read canceled
    assert render(apply(going, training("Canceled", 40))[0]).summary == ""
    completed = render(apply(going, canceling, training("Completed", 40))[0])
    assert (completed.status, completed.summary) == (Status.SUCCEEDED, "")


def test_a_training_failure_is_told_once_whichever_of_its_events_come_and_calls_on_who_asked() -> None:
    alice = Person(name="Alice Wong", email="alice@contoso.com")
    # Handoff's polling of the run alice asked for, then Azure ML's RunStatusChanged and the polling's failure
    state, replies = apply(training("Running", 0, alice), training("Failed", 60), training("Failed", 61, alice))
    assert render(state).status is Status.FAILED
    [reply] = replies
    assert reply.mentions == (Mention("Alice Wong", "alice@contoso.com"),)
    assert len(apply(training("Running", 0), training("Failed", 61), training("Failed", 60))[1]) == 1
    # a card whose first showing is the failure says it itself
    assert apply(training("Failed", 60), training("Failed", 61))[1] == []


def test_approval_card_has_buttons_until_decided() -> None:
    carol = Person(name="Carol", email="carol@contoso.com")
    pending = approval(ApprovalPending, "pending", (Approver(person=carol),))
    state, replies = apply(pending)
    card = render(state)
    assert card.status is Status.WAITING and [a.action_id for a in card.actions] == ["approve", "reject"]
    assert card.actions[1].needs_comment and card.summary == "Check the dashboard first"
    assert not replies
    done = approval(ApprovalCompleted, "approved", (Approver(person=carol, status="approved", comment="ship it"),))
    state, replies = apply(pending, done)
    card = render(state)
    assert card.status is Status.APPROVED and card.actions == ()
    assert [(r.title, r.summary) for r in replies] == [("Approved by Carol", "ship it")]
    # a pending event arriving late does not reopen the gate
    assert not merge(state, pending).changed


def written(size: int, sequencer: str, at: int = 0) -> DataArrived:
    return DataArrived(
        source="eventgrid",
        event_id=f"write-{sequencer}",
        occurred_at=T0 + timedelta(seconds=at),
        storage_account="lake",
        container="raw",
        path="daily/data.csv",
        size=size,
        sequencer=sequencer,
    )


def test_a_files_card_shows_its_latest_write_by_storages_sequencer_whatever_the_times_say() -> None:
    """Event Grid keeps no order, and Storage's front ends stamp times apart: its sequencer orders the writes."""
    older, newer = (
        written(100, "00000000000000000000000000AB1200000000000000001"),
        written(2_000_000, "00000000000000000000000000AB1200000000000000002"),
    )
    for late_older in (older, replace(older, occurred_at=T0 + timedelta(seconds=1))):  # same time, or later
        state, _ = apply(newer, late_older)
        assert dict((f.label, f.value) for f in render(state).facts)["Size"] == "1.9 MB"
        assert not merge(state, late_older).changed
    state, _ = apply(older, newer)
    assert dict((f.label, f.value) for f in render(state).facts)["Size"] == "1.9 MB"
    # writes without a sequencer go by their times, as before
    state, _ = apply(written(5, "", at=10), written(7, "", at=0))
    assert dict((f.label, f.value) for f in render(state).facts)["Size"] == "5 B"


def test_a_run_that_ended_shows_no_stage_still_going() -> None:
    """A stage's start told after its run's end (or its own end never told) does not keep it going on the
    finished card: the one under way when the run was canceled shows canceled, any other did not run."""
    failed, replies = apply(
        run("inProgress"),
        stage("Build", "running", at=1),
        stage("Build", "completed", "failed", at=2),
        run("completed", "failed", at=6),
        stage("Deploy", "running", at=3),  # late, and from before the run ended
    )
    assert render(failed).status is Status.FAILED
    assert steps(failed) == [("Build", Status.FAILED), ("Deploy", Status.SKIPPED)]
    assert len(replies) == 1
    canceled, _ = apply(
        run("inProgress"),
        stage("Build", "completed", "succeeded", at=1),
        stage("Deploy", "running", at=2),
        stage("Smoke", "pending", at=2),
        run("completed", "canceled", at=9),
    )
    assert steps(canceled) == [("Build", Status.SUCCEEDED), ("Deploy", Status.CANCELED), ("Smoke", Status.SKIPPED)]
    # while the run goes, its stages show as they stand
    going, _ = apply(run("inProgress"), stage("Deploy", "running", at=2))
    assert steps(going) == [("Deploy", Status.RUNNING)]


def test_a_training_runs_card_names_its_type_and_its_own_tags_not_azure_mls() -> None:
    run = replace(
        training("Completed", 0),
        run_type="azureml.StepRun",
        run_tags={
            "model": "model-x",
            "dataset": "customers:7",
            "nightly": "",
            "_aml_system_ComputeTargetStatus": '{"AllocationState":"steady"}',
            "mlflow.source.type": "JOB",
            "azureml.pipeline": "p-1",
        },
    )
    card = render(apply(run)[0])
    assert [(f.label, f.value) for f in card.facts] == [
        ("Experiment", "model-x"),
        ("Run", "job-1"),
        ("Run type", "azureml.StepRun"),
        ("dataset", "customers:7"),
        ("model", "model-x"),
        ("Tags", "nightly"),
    ]


def test_a_files_card_names_its_whole_path_where_a_title_is_cut_short() -> None:
    path = "ingest_date=2026-01-15/source_system=crm-eu-west/hour=10/part-00000-1f2e3d4c-c000.snappy.parquet"
    card = render(apply(replace(written(10, "01"), path=path))[0])
    assert ("Path", f"raw/{path}") in [(f.label, f.value) for f in card.facts]
