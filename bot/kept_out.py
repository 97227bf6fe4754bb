"""What a subscription's filters keep out for good, in words: the kinds of event of which none can ever match.

``events=model_registered pipelines=train-*`` takes no event at all (a model registration carries no pipeline);
``events=run,stage models=model-x`` takes no stage. :meth:`bot.routing.Filters.keeps_out` decides it, as routing
reads the filters; this module says it, for chat's ``subscribe`` and for ``handoff check``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bot.routing import KINDS_SAYING, OUTCOMES_OF, Filters

# Each kind's events, as a sentence names them (all plural: "… carry no pipeline").
KIND_WORDS: Mapping[str, str] = {
    "run": "runs",
    "stage": "stages",
    "approval": "approvals",
    "release": "classic releases' deployments",
    "code_pushed": "pushes",
    "pull_request": "pull requests",
    "model_registered": "model registrations",
    "model_deployed": "model deployments",
    "training_run": "training runs",
    "data_drift": "data drift alerts",
    "data_arrived": "files arriving in the data lake",
}

# What each filter reads, as "… carry no …" says it.
_FIELD_WORDS: Mapping[str, str] = {
    "projects": "project",
    "pipelines": "pipeline",
    "branches": "branch",
    "stages": "stage",
    "environments": "environment",
    "reasons": "run reason",
    "models": "model",
    "tags": "tags",
}

# Outcomes in the order a sentence names them.
_OUTCOME_ORDER = ("pending", "succeeded", "failed", "canceled")


def joined(words: Iterable[str], last: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(words)
    return f"{', '.join(items[:-1])} {last} {items[-1]}" if len(items) > 1 else "".join(items)


def kinds_said(kinds: Iterable[str]) -> str:
    """Kinds of event in words: ``model registrations and pushes``."""
    return joined(KIND_WORDS[kind] for kind in kinds)


def kept_out(filters: Filters) -> dict[str, str]:
    """Of the kinds the subscription takes (those its ``events`` names, else every kind), each of which no event can
    match, with the filter that keeps it out."""
    return {kind: name for kind in filters.kinds if (name := filters.keeps_out(kind)) is not None}


def _outcomes(filters: Filters) -> list[str]:
    return [outcome for outcome in filters.outcomes if outcome != "any"]


def _reason(kind: str, name: str, filters: Filters) -> str:
    """Why no event of ``kind`` gets past the filter ``name``, after the kind's words: ``carry no pipeline``."""
    if name != "outcomes":
        return f"carry no {_FIELD_WORDS[name]}"
    if not OUTCOMES_OF[kind]:
        return "have no outcome"
    theirs = joined((outcome for outcome in _OUTCOME_ORDER if outcome in OUTCOMES_OF[kind]), "or")
    return f"are never {joined(_outcomes(filters), 'or')} (only {theirs})"


def reasons(kept: Mapping[str, str], filters: Filters) -> str:
    """Why the kinds ``kept`` (as :func:`kept_out` gives them) never come, those with one reason together:
    ``model registrations and pushes carry no pipeline; pull requests are never failed (only succeeded or
    canceled)``."""
    said: dict[str, list[str]] = {}
    for kind, name in kept.items():
        said.setdefault(_reason(kind, name, filters), []).append(kind)
    return "; ".join(f"{kinds_said(kinds)} {reason}" for reason, kinds in said.items())


def carriers(filters: Filters, *, outcomes: bool = True) -> str:
    """Which kinds carry what each filter reads (every kind, not only those the subscription takes), one filter
    after another: ``only runs, stages and approvals carry a stage; only model registrations, model deployments
    and training runs carry tags``; the outcome filter's too, unless ``outcomes`` is False. "" where no filter
    reads what only some kinds carry."""
    said = []
    if outcomes and (named := _outcomes(filters)) and "any" not in filters.outcomes:
        having = [kind for kind, theirs in OUTCOMES_OF.items() if not theirs.isdisjoint(named)]
        said.append(f"only {kinds_said(having)} can be {joined(named, 'or')}")
    for name, words in _FIELD_WORDS.items():
        if getattr(filters, name):
            article = "" if name == "tags" else "an " if words[0] in "aeiou" else "a "
            said.append(f"only {kinds_said(k for k in KIND_WORDS if k in KINDS_SAYING[name])} carry {article}{words}")
    return "; ".join(said)
