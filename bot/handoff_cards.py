"""The living cards of a model handoff: the verdicts on the model card, the app team's card, the
promotion gate's card. :mod:`bot.living` merges and draws them with these functions.

Like every living card, they never move backwards: an integration that completed stays completed, a
gate card never returns to evidence older than what it shows. Checks and integrations are kept per
app, each event reporting some apps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.cards import Action, Card, Fact, Link, Mention, Status
from bot.contracts import Verdict
from bot.events import AppHandoffChanged, ModelChecked, PromotionGateChanged

State = dict[str, Any]

MAX_DIFFERENCES = 6
INTEGRATION_RANK = {"pending": 0, "queued": 1, "running": 2, "completed": 3, "error": 3}
GATE_STATUS = {
    "pending": Status.WAITING,
    "approved": Status.APPROVED,
    "rejected": Status.REJECTED,
    "expired": Status.EXPIRED,
    "superseded": Status.CANCELED,
}

# Verdicts a model or app card warns of.
_WARNS = frozenset({Verdict.BREAKING, Verdict.UNKNOWN})

# A gate decision as a noun: "Azure DevOps refused Bob's approval".
DECISION_NOUNS = {"approve": "approval", "reject": "rejection", "override": "override"}


@dataclass
class HandoffMerge:
    """What merging a handoff event gave: the new state, whether it changed, the thread replies."""

    state: State
    changed: bool
    replies: list[Card] = field(default_factory=list)


# --- shared pieces ------------------------------------------------------------------------------------------


def later_integration(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The further along of two reports of one integration; a finished run never changes its outcome, but a
    later run (a re-run against the same model version, with a fix) replaces an earlier one's."""
    if not new:
        return dict(old) if old else None
    if not old:
        return dict(new)
    if _other_run(old, new):
        return dict(new) if _run_order(new) >= _run_order(old) else dict(old)
    old_rank = INTEGRATION_RANK.get(str(old.get("state")), 0)
    new_rank = INTEGRATION_RANK.get(str(new.get("state")), 0)
    if old_rank == 3:
        return {**new, **old}  # keep the outcome, learn what the other report adds (a link)
    return {**old, **new} if new_rank >= old_rank else dict(old)


def _other_run(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether ``new`` reports a run other than the one ``old`` reports (or ``old`` none: it never started)."""
    return bool(new.get("run_id")) and str(new["run_id"]) != str(old.get("run_id") or "")


def _run_order(integration: Mapping[str, Any]) -> tuple[int, int]:
    """Where a run comes among the runs of a pipeline: Azure DevOps numbers them as it creates them. A report
    of no run, or of a run not numbered, comes first: any numbered run replaces it."""
    run_id = str(integration.get("run_id") or "")
    return (1, int(run_id)) if run_id.isdigit() else (0, 0)


def finished(integration: Mapping[str, Any] | None) -> bool:
    """Whether an integration has ended, one way or another."""
    return integration is not None and INTEGRATION_RANK.get(str(integration.get("state")), 0) == 3


def passed(integration: Mapping[str, Any] | None) -> bool:
    return (
        integration is not None and integration.get("state") == "completed" and integration.get("result") == "succeeded"
    )


def integration_text(integration: Mapping[str, Any] | None) -> str:
    """``integrate-app-y 20261128.3: failed at Integration tests``."""
    if not integration:
        return "not started yet"
    run = " ".join(str(p) for p in (integration.get("pipeline"), integration.get("name")) if p) or "the run"
    state = integration.get("state")
    if state == "error" and integration.get("may_have_started"):
        return f"not known whether it started ({integration.get('error')}): see {run}'s runs in Azure DevOps"
    if state == "error":
        return f"could not start: {integration.get('error') or 'unknown error'}"
    if state == "pending":
        return f"{run}: starting"
    if state != "completed":
        return f"{run}: {state}"
    result = integration.get("result")
    if result == "succeeded":
        return f"{run}: passed"
    if result == "failed":
        step = integration.get("failing_step")
        return f"{run}: failed" + (f" at {step}" if step else "")
    return f"{run}: {result or 'ended'}"


def integration_status(integration: Mapping[str, Any] | None) -> Status:
    if not integration or integration.get("state") in ("pending", "queued"):
        return Status.QUEUED
    if integration.get("state") == "running":
        return Status.RUNNING
    if passed(integration):
        return Status.SUCCEEDED
    return Status.CANCELED if integration.get("result") == "canceled" else Status.FAILED


def called_on(check: Mapping[str, Any]) -> tuple[Mention, ...]:
    """Whom an integration that did not pass calls on: the person who registered the version (``registered_by``,
    where the registration named them with an email, by which the platforms find people) and the app's owners
    (``owners``, from the app's configuration: by email, or by chat id on the platform it names), each once."""
    mentions: dict[str, Mention] = {}
    person = check.get("registered_by")
    if isinstance(person, Mapping) and person.get("email"):
        email = str(person["email"])
        mentions[email.lower()] = Mention(str(person.get("name") or email), email)
    for owner in _owners(check):
        mentions.setdefault(owner.lower(), mention_of(owner))
    return tuple(mentions.values())


def mention_of(person: str) -> Mention:
    """A mention of ``person`` as the configuration names people (a :data:`~bot.config.PersonIdentity`): by
    email, or by chat id on the platform it names, with no name to show (the card's text counts them)."""
    return Mention(person, person) if "@" in person else Mention("", user_id=person)


def named_and_counted(
    people: Sequence[str], noun: str, nouns: str, names: Mapping[str, str] | None = None, *, named: Sequence[str] = ()
) -> str:
    """``dana@contoso.com and 1 more owner``: ``people`` as the configuration names them, those known by email
    named (by ``names``, a person's name by their email or chat id, where it knows them), those known by a chat
    id only counted (a raw id means nothing to readers; the cards @mention them where they can); ``2 owners``
    when none is known by email. ``named``: people named by name already (an Azure DevOps approver), first."""
    names = {key.lower(): name for key, name in (names or {}).items() if name}
    shown = [*named, *(names.get(p.lower(), p) for p in people if "@" in p or p.lower() in names)]
    by_id = len(named) + len(people) - len(shown)
    counted = f"{by_id} {noun if by_id == 1 else nouns}"
    if not shown:
        return counted
    return ", ".join(dict.fromkeys(shown)) + (f" and {by_id} more {counted.partition(' ')[2]}" if by_id else "")


def _owners(check: Mapping[str, Any]) -> list[str]:
    """The app's owners as its configuration names them."""
    return [str(owner) for owner in check.get("owners", ())]


def _owners_own(check: Mapping[str, Any], *, starts_sentence: bool = False) -> str:
    """``dana@contoso.com owns app-y``: the owners named and counted as :func:`named_and_counted` does."""
    owners = _owners(check)
    app = str(check.get("app") or "the app")
    if not any("@" in owner for owner in owners):
        the = "The" if starts_sentence else "the"
        many = len(owners)
        return f"{the} owner of {app} is called on" if many == 1 else f"{the} {many} owners of {app} are called on"
    return f"{named_and_counted(owners, 'owner', 'owners')} {'owns' if len(owners) == 1 else 'own'} {app}"


def who_acts(check: Mapping[str, Any], label: str) -> str:
    """Who is called on to act on an integration of ``label`` that did not pass, in a sentence; said plainly
    when nobody is known, so that a reply calling on no one is not taken for one that forgot to."""
    person = check.get("registered_by")
    name = str(person.get("name") or "") if isinstance(person, Mapping) else ""
    email = str(person.get("email") or "") if isinstance(person, Mapping) else ""
    if _owners(check):
        if email:
            return f"{name or email} registered {label}, and {_owners_own(check)}: look at the run."
        return f"{_owners_own(check, starts_sentence=True)}: look at the run."
    if email:
        return f"{name or email} registered {label}: look at the run."
    if name:
        return f"{name} registered {label}, but Handoff knows no email to call on them by: nobody was called on."
    return f"Nobody was called on: the registration of {label} does not say who registered it."


def verdict_text(check: Mapping[str, Any]) -> str:
    """``Breaking: input `age`: long → string; output `score`: removed``."""
    verdict = Verdict(check.get("verdict", Verdict.UNKNOWN))
    differences = list(check.get("differences", ()))
    shown = "; ".join(differences[:MAX_DIFFERENCES])
    if len(differences) > MAX_DIFFERENCES:
        shown += f"; and {len(differences) - MAX_DIFFERENCES} more"
    return f"{verdict.label}: {shown}" if shown else verdict.label


def _runs(check: Mapping[str, Any]) -> str:
    baseline = check.get("baseline")
    if baseline:
        return f"runs v{baseline}" + (", pinned" if check.get("baseline_source") == "pinned" else "")
    return "no known version"


def _merge_app(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**(old or {}), **{k: v for k, v in new.items() if k != "integration"}}
    integration = later_integration((old or {}).get("integration"), new.get("integration"))
    if integration is not None:
        merged["integration"] = integration
    return merged


# --- the model card: the verdict per consuming app --------------------------------------------------------


def merge_model_check(state: State | None, event: ModelChecked) -> HandoffMerge:
    """Add the apps' checks and integrations to the model version's card."""
    new: State = (
        dict(state)
        if state
        else {
            "type": "model_version",
            "card": Card(title=f"Model {event.model_name}:{event.model_version}", status=Status.INFO).to_json(),
        }
    )
    before: State = new.get("handoff") or {}
    apps = {name: dict(app) for name, app in before.get("apps", {}).items()}
    replies: list[Card] = []
    label = f"{event.model_name}:{event.model_version}"
    for name, info in event.apps.items():
        old = apps.get(name)
        merged = _merge_app(old, info)
        apps[name] = merged
        if (old is None or "verdict" not in old) and "verdict" in merged and merged["verdict"] != Verdict.COMPATIBLE:
            replies.append(
                Card(
                    title=f"{Verdict(merged['verdict']).label} for {name} ({_runs(merged)})",
                    status=Status.WARNING,
                    summary=verdict_text(merged),
                )
            )
        integration = merged.get("integration")
        # a passed integration is on the card; one that did not pass is told in its thread too
        if _newly_failed(integration, (old or {}).get("integration")):
            url = integration.get("url") if integration else None
            replies.append(
                Card(
                    title=f"{name} integration against {label}: {integration_text(integration)}",
                    status=integration_status(integration),
                    summary=who_acts(merged, label),
                    links=(Link("Open run", url),) if url else (),
                    mentions=called_on(merged),
                )
            )
    new["handoff"] = {"model": event.model_name, "version": event.model_version, "apps": apps}
    changed = new != state
    return HandoffMerge(new, changed, replies if changed else [])


def render_model_card(state: State) -> Card:
    """The model version's card with a verdict and an integration line per consuming app."""
    base = Card.from_json(state["card"])
    apps: dict[str, Any] = state["handoff"].get("apps", {})
    facts = list(base.facts)
    worst = Verdict.worst(Verdict(a.get("verdict", Verdict.UNKNOWN)) for a in apps.values()) if apps else None
    for name, app in sorted(apps.items()):
        if "verdict" in app:
            facts.append(Fact(f"{name} ({_runs(app)})", verdict_text(app)))
        if app.get("integration"):
            facts.append(Fact(f"{name} integration", integration_text(app["integration"])))
    # unknown is never compatible: it warns as the app's card does
    troubled = [n for n, a in apps.items() if a.get("verdict") in _WARNS or _failed(a.get("integration"))]
    summary = base.summary
    if worst is not None:
        summary = f"Contract check for {', '.join(sorted(apps))}: {worst.value}."
    status = Status.WARNING if troubled else base.status
    return Card(
        title=base.title,
        status=status,
        summary=summary,
        facts=tuple(facts),
        links=base.links,
        context=base.context,
    )


def _failed(integration: Mapping[str, Any] | None) -> bool:
    return finished(integration) and not passed(integration)


def _newly_failed(integration: Mapping[str, Any] | None, before: Mapping[str, Any] | None) -> bool:
    """An integration that ended without passing with this event (so its thread is told once per run)."""
    return _failed(integration) and (not finished(before) or _other_run(before or {}, integration or {}))


# --- the app team's card ------------------------------------------------------------------------------------


def merge_app_handoff(state: State | None, event: AppHandoffChanged) -> HandoffMerge:
    new: State = dict(state) if state else {"type": "app_handoff"}
    new.update(
        model=event.model_name,
        version=event.model_version,
        app=event.app,
        model_card_key=event.model_card_key or new.get("model_card_key", ""),
    )
    if event.model_url:
        new["model_url"] = event.model_url
    old = new.get("check")
    new["check"] = _merge_app(old, event.check)
    replies: list[Card] = []
    integration = new["check"].get("integration")
    if _newly_failed(integration, (old or {}).get("integration")):
        url = integration.get("url") if integration else None
        replies.append(
            Card(
                title=f"Integration {integration_text(integration)}",
                status=integration_status(integration),
                summary=who_acts(new["check"], f"{event.model_name}:{event.model_version}"),
                links=(Link("Open run", url),) if url else (),
                mentions=called_on(new["check"]),
            )
        )
    changed = new != state
    return HandoffMerge(new, changed, replies if changed else [])


def render_app_handoff(state: State) -> Card:
    """A new model version for an app: what changed, the verdict, the integration run."""
    check: dict[str, Any] = state.get("check", {})
    verdict = Verdict(check.get("verdict", Verdict.UNKNOWN))
    integration = check.get("integration")
    label = f"{state['model']}:{state['version']}"
    if _failed(integration):
        status = Status.FAILED
    elif verdict in _WARNS:
        status = Status.WARNING
    else:
        status = integration_status(integration)
    facts = [
        Fact("Model", label),
        Fact(f"{state['app']} runs", f"v{check['baseline']}" if check.get("baseline") else "no known version"),
        Fact("Verdict", verdict.label),
    ]
    if check.get("contract"):
        facts.append(Fact("Contract", str(check["contract"])))
    facts += [Fact("Change", text) for text in list(check.get("differences", ()))[:MAX_DIFFERENCES]]
    if len(check.get("differences", ())) > MAX_DIFFERENCES:
        facts.append(Fact("Change", f"and {len(check['differences']) - MAX_DIFFERENCES} more"))
    facts.append(Fact("Integration", integration_text(integration)))
    facts += [Fact("Note", note) for note in check.get("notes", ())]
    links = []
    if integration and integration.get("url"):
        links.append(Link("Open integration run", str(integration["url"])))
    if state.get("model_url"):
        links.append(Link("Model in Azure ML", str(state["model_url"])))
    return Card(
        title=f"New model {label} for {state['app']}: {verdict.value}",
        status=status,
        summary={
            Verdict.BREAKING: "This version breaks what the app sends or reads.",
            Verdict.UNKNOWN: "Handoff could not tell whether this version fits the app.",
            Verdict.ADDITIVE: "This version adds to the contract; existing calls keep working.",
            Verdict.COMPATIBLE: "The contract is unchanged.",
        }[verdict],
        facts=tuple(facts),
        links=tuple(links),
        context="Handoff · model handoff",
        # a failed integration calls on who can act: where the card is first shown failed, it says so itself
        mentions=called_on(check) if _failed(integration) else (),
    )


# --- the promotion gate's card --------------------------------------------------------------------------------


def merge_promotion_gate(state: State | None, event: PromotionGateChanged) -> HandoffMerge:
    if state and int(state.get("revision", -1)) > event.revision:
        return HandoffMerge(state, False)
    new: State = dict(state) if state else {"status": "pending"}
    new.update(
        type="promotion_gate",
        gate_id=event.gate_id,
        model=event.model_name,
        version=event.model_version,
        release=event.release,
        apps={name: dict(app) for name, app in event.apps.items()},
        blockers=list(event.blockers),
        override_roles=list(event.override_roles),
        revision=event.revision,
        min_required=event.min_required,
        approver_roles=list(event.approver_roles),
        deciders=list(event.approvers),
        barred=list(event.barred),
    )
    if event.expires_at is not None:
        new["expires_at"] = event.expires_at.astimezone(UTC).isoformat()
    if event.web_url:
        new["url"] = event.web_url
    return HandoffMerge(new, new != state)


def promotion_refusal(state: State) -> tuple[str, str]:
    """Whose decision on a promotion gate was not applied, and why; ("", "") if none was refused."""
    refused = state.get("refused")
    if not refused:
        return "", ""
    noun = DECISION_NOUNS.get(str(refused.get("decision")), "decision")
    return f"The {noun} by {refused.get('name') or refused.get('actor')} was not applied", str(refused.get("why", ""))


def render_promotion_gate(state: State) -> Card:
    """The gate: the evidence, what blocks Approve, and the buttons the gate's state allows."""
    status = GATE_STATUS.get(str(state.get("status")), Status.INFO)
    label = f"{state['model']}:{state['version']}"
    decisions: list[dict[str, Any]] = state.get("decisions", [])
    overrides = [d for d in decisions if d.get("decision") == "override"]
    blockers: list[str] = state.get("blockers", [])
    blocked = status is Status.WAITING and bool(blockers) and not overrides
    roles = ", ".join(state.get("override_roles", [])) or "nobody"
    if blocked:
        summary = f"Approve is blocked: {'; '.join(blockers)}. {roles} may override with a reason."
    elif status is Status.WAITING:
        summary = f"Approving starts {state['release']} with {label} and tags the version approved in Azure ML."
    else:
        summary = ""
    headline, why = promotion_refusal(state)
    if status is Status.WAITING and headline:
        summary = f"{headline}: {why}\n\n{summary}"
    newer: dict[str, Any] = (state.get("superseded_by") or {}) if state.get("status") == "superseded" else {}
    if newer:
        summary = (
            f"{newer['label']} is newer and has its own promotion gate: decide there. "
            f"Nothing is released or tagged for {label}."
        )
    facts = [Fact("Model", label), Fact("Release pipeline", str(state["release"]))]
    for name, app in sorted(state.get("apps", {}).items()):
        facts.append(Fact(f"{name} ({_runs(app)})", verdict_text(app)))
        facts.append(Fact(f"{name} integration", integration_text(app.get("integration"))))
    if status is Status.WAITING:
        facts += _who_decides(state)
    approvals = [d for d in decisions if d.get("decision") in ("approve", "override")]
    if status is Status.WAITING and approvals:
        names = ", ".join(str(d.get("name") or d["actor"]) for d in approvals)
        facts.append(Fact("Approved so far", f"{len(approvals)} of {state.get('needed', 1)}: {names}"))
    facts += [Fact("Overridden by", f"{d.get('name') or d['actor']}: {d.get('comment', '')}") for d in overrides]
    if state.get("decided_by"):
        facts.append(Fact("Decided by", str(state["decided_by"])))
    if state.get("note") and not newer:  # (superseded: the summary says it)
        facts.append(Fact("Note", str(state["note"])))
    actions: tuple[Action, ...] = ()
    value = {"gate": str(state["gate_id"])}
    reject = Action("reject", "Reject", value, style="danger", needs_comment=True, comment_prompt="Reason")
    if blocked:
        actions = (
            Action(
                "override",
                "Override and approve",
                value,
                style="primary",
                needs_comment=True,
                comment_prompt="Why release despite what blocks it? (goes to the audit log)",
            ),
            reject,
        )
    elif status is Status.WAITING:
        actions = (Action("approve", "Approve", value, style="primary", comment_prompt="Comment (optional)"), reject)
    # (the status line says how it was decided)
    title = f"Promote {label}?" if status is Status.WAITING else f"Promotion of {label}"
    links = [Link("Model in Azure ML", str(state["url"]))] if state.get("url") else []
    if newer:
        title = f"Promotion of {label}: superseded by {newer['label']}"
        links += [Link(f"{newer['label']} in Azure ML", str(newer["url"]))] if newer.get("url") else []
    return Card(
        title=title,
        status=status,
        summary=summary,
        facts=tuple(facts),
        links=tuple(links),
        actions=actions,
        context="Handoff promotion gate",
        mentions=_awaited(state) if status is Status.WAITING else (),
    )


def _who_decides(state: State) -> list[Fact]:
    """A waiting promotion gate's approvers (its policy's roles' members, but who may not approve it), how many
    approvals it needs, and when it expires."""
    # the role members as the configuration names them: by name where the gate knows it, else by email; a
    # member known by a chat id only is counted, never shown
    barred = {str(b).lower() for b in state.get("barred", [])}
    deciders = [str(person) for person in state.get("deciders", []) if str(person).lower() not in barred]
    if deciders:
        people = named_and_counted(deciders, "approver", "approvers", known_names(state))
    else:
        people = ", ".join(state.get("approver_roles", [])) or "nobody"
    facts = [
        Fact("Approvers", people),
        Fact("Approvals needed", str(state.get("needed") or state.get("min_required", 1))),
    ]
    if state.get("expires_at"):
        expires = datetime.fromisoformat(str(state["expires_at"])).astimezone(UTC)
        facts.append(Fact("Expires", expires.strftime("%Y-%m-%d %H:%M UTC")))
    return facts


def _awaited(state: State) -> tuple[Mention, ...]:
    """The people a waiting promotion gate calls on: the members of its approver roles who have not decided
    and may approve it (not its requester, where its policy says so), by email or by chat id."""
    barred = {str(b).lower() for b in state.get("barred", [])}
    decided = {who.lower() for d in state.get("decisions", []) for who in decider_names(d)}
    deciders = [str(person) for person in state.get("deciders", [])]
    return tuple(mention_of(person) for person in deciders if person.lower() not in barred | decided)


def known_names(state: State) -> dict[str, str]:
    """The names chat gave the people who decided a gate, by every way the configuration may name them."""
    return {who: str(d["name"]) for d in state.get("decisions", []) if d.get("name") for who in decider_names(d)}


def decider_names(decision: Mapping[str, Any]) -> list[str]:
    """Every way the configuration may name the person who made ``decision``: the email (or name) it is kept
    by, that as a user id on its platform (chat gave no email), and the chat ids chat gave."""
    actor = str(decision.get("actor", ""))
    on_platform = [f"{decision['platform']}:{actor}"] if decision.get("platform") else []
    return [actor, *on_platform, *(str(i) for i in decision.get("chat_ids", ()))]
