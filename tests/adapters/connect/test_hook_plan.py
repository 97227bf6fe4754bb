"""Planning Handoff's service hooks (adapters/azure_devops/hook_plan.py): pure, no service."""

from __future__ import annotations

from adapters.azure_devops.hook_plan import (
    APPROVAL_PENDING,
    GIT_PUSH,
    RUN_STATE,
    STAGE_STATE,
    Change,
    ExistingHook,
    HookCredentials,
    HookSpec,
    configured_kinds,
    event_types_for,
    marker_of,
    plan,
)
from bot.config import parse_settings

PROJECT_ID = "6f2c7a5e-0000-4000-8000-000000000001"
ENDPOINT = "https://handoff.example.com/hooks/azure-devops"


def spec(event_type: str = RUN_STATE, endpoint: str = ENDPOINT) -> HookSpec:
    return HookSpec("mlops", PROJECT_ID, event_type, endpoint)


def existing(hook_id: str, the_spec: HookSpec, digest: str, status: str = "enabled") -> ExistingHook:
    return ExistingHook(hook_id, the_spec.event_type, PROJECT_ID, the_spec.url(digest), status)


def test_kinds_come_from_the_routing_and_approvals_are_always_needed() -> None:
    settings = parse_settings(
        {
            "channels": {"a": {"slack": "C1"}},
            "subscriptions": [{"channel": "a", "events": ["run", "model_registered"]}],
        },
        {},
    )
    assert configured_kinds(settings) == {"run", "approval"}
    assert configured_kinds(settings, [{"events": ["code_pushed"]}]) >= {"code_pushed"}
    everything = configured_kinds(settings, [{"projects": ["x"]}])  # no events filter: every kind
    assert {"stage", "release", "pull_request", "code_pushed"} <= everything
    # a run's living card needs its stage events too
    assert event_types_for({"run"}) == (RUN_STATE, STAGE_STATE)


def test_a_second_plan_keeps_everything() -> None:
    digest = HookCredentials("handoff", "s3cret-password").digest("org")
    wanted = [spec(RUN_STATE), spec(APPROVAL_PENDING)]
    there = [existing("1", wanted[0], digest), existing("2", wanted[1], digest)]
    actions = plan(wanted, there, digest)
    assert [a.change for a in actions] == [Change.KEEP, Change.KEEP]


def test_a_changed_secret_or_url_updates_only_handoffs_own() -> None:
    old = HookCredentials("handoff", "old-password").digest("org")
    new = HookCredentials("handoff", "new-password").digest("org")
    assert old != new
    foreign = ExistingHook("9", RUN_STATE, PROJECT_ID, "https://elsewhere.example.com/hook")
    there = [existing("1", spec(RUN_STATE), old), foreign]
    actions = plan([spec(RUN_STATE)], there, new)
    assert [(a.change, a.existing.id if a.existing else None) for a in actions] == [(Change.UPDATE, "1")]
    moved = plan([spec(RUN_STATE, "https://new.example.com/hooks/azure-devops")], there[:1], old)
    assert [a.change for a in moved] == [Change.UPDATE]


def test_stale_and_duplicate_hooks_of_handoff_are_deleted_and_disabled_ones_replaced() -> None:
    digest = HookCredentials(header_name="X-Token", header_value="t0ken").digest("org")
    run, push = spec(RUN_STATE), spec(GIT_PUSH)
    there = [
        existing("1", run, digest, status="disabledBySystem"),
        existing("2", run, digest),
        existing("3", push, digest),
    ]
    actions = {(a.change, a.existing.id if a.existing else None) for a in plan([run], there, digest)}
    assert actions == {(Change.KEEP, "2"), (Change.DELETE, "1"), (Change.DELETE, "3")}
    only_disabled = plan([run], there[:1], digest)
    assert [(a.change, a.reason) for a in only_disabled] == [(Change.UPDATE, "disabled")]
    assert not [a for a in plan([run], there, digest, remove_stale=False) if a.change is Change.DELETE]


def test_the_marker_holds_no_secret() -> None:
    password = "correct-horse-battery-staple"
    digest = HookCredentials("handoff", password).digest("org")
    url = spec().url(digest)
    fingerprint = marker_of(url)
    assert fingerprint is not None and len(fingerprint) == 20
    assert password not in url and digest not in url
    described = plan([spec()], [], digest)[0].describe()
    assert password not in described and "create" in described
