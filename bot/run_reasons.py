"""Why a pipeline run started, as Azure DevOps says it (the Build API's ``reason``) and as people type it.

A ``reasons`` filter takes friendly names (``manual``, ``ci``, ``pr``, ``schedule``, ``resource``) and Azure
DevOps' own (``individualCI``, ``pullRequest``…), in any case: ``subscribe events=run reasons=manual,schedule``
hides the runs pull requests and pushes start. It has no negative form (``!pr``), as no other list filter has:
name the reasons to keep.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# The kinds of event that concern a run, and so may say why it started (an approval: of a run's stage; a classic
# release's has no run).
KINDS_WITH_REASON = frozenset({"run", "stage", "approval"})

# Azure DevOps' reasons a build is created for (BuildReason), as the Build API and build.complete spell them.
# (``all`` is a mask for queries, never a run's reason.)
AZURE_DEVOPS_REASONS = (
    "manual",
    "individualCI",
    "batchedCI",
    "schedule",
    "scheduleForced",
    "pullRequest",
    "buildCompletion",
    "resourceTrigger",
    "triggered",
    "userCreated",
    "validateShelveset",
    "checkInShelveset",
    "none",
)

# The names people type for a kind of start, each standing for Azure DevOps' reasons of that kind.
FRIENDLY_REASONS: dict[str, tuple[str, ...]] = {
    "manual": ("manual",),
    "ci": ("individualCI", "batchedCI"),
    "pr": ("pullRequest",),
    "pull_request": ("pullRequest",),
    "pull-request": ("pullRequest",),
    "schedule": ("schedule", "scheduleForced"),
    "scheduled": ("schedule", "scheduleForced"),
    "resource": ("resourceTrigger", "buildCompletion"),
}

_MEANING: dict[str, frozenset[str]] = {
    **{reason.lower(): frozenset({reason.lower()}) for reason in AZURE_DEVOPS_REASONS},
    **{name: frozenset(r.lower() for r in reasons) for name, reasons in FRIENDLY_REASONS.items()},
}

# How a run's card says why it started.
_WORDS = {
    "manual": "Manual",
    "individualci": "CI",
    "batchedci": "CI (batched)",
    "schedule": "Schedule",
    "scheduleforced": "Schedule (forced)",
    "pullrequest": "Pull request",
    "buildcompletion": "Another pipeline's completion",
    "resourcetrigger": "Resource trigger",
    "triggered": "Triggered",
    "usercreated": "User created",
    "validateshelveset": "Shelveset validation",
    "checkinshelveset": "Gated check-in",
}


def reasons_meant(names: Iterable[str]) -> frozenset[str]:
    """Azure DevOps' reasons (lowercased) that the names a filter gives stand for; an unknown name stands for
    none (the configuration and chat refuse it first: :func:`reason_problem`)."""
    return frozenset().union(*(_MEANING.get(name.strip().lower(), frozenset()) for name in names))


def reason_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a ``reasons`` value, in a sentence; None for a reason it knows."""
    typed = name.strip().lower()
    if typed in _MEANING:
        return None
    if typed == "all":
        return "`all` is every reason: leave `reasons` out to take runs whatever started them"
    if typed.startswith(("!", "-")):
        return (
            f"`{name}`: `reasons` takes no negation; name the reasons to keep, such as manual,schedule "
            "(which leaves out pull requests and CI)"
        )
    close = difflib.get_close_matches(typed, list(_MEANING), n=1, cutoff=0.6)
    hint = f"; did you mean {_typed(close[0])}?" if close else ""
    own = ", ".join(r for r in AZURE_DEVOPS_REASONS if r.lower() not in FRIENDLY_REASONS)
    return (
        f"`{name}` is not a reason a run starts for: use manual, ci, pr (or pull_request), schedule (or scheduled), "
        f"resource, or Azure DevOps' own {own}{hint}"
    )


def canonical_reason(name: str) -> str:
    """A known ``reasons`` value as a subscription stores it, so that the same filter typed two ways is one
    subscription: the friendly name for what it stands for (``pull_request``, ``pullRequest`` → ``pr``;
    ``scheduled`` → ``schedule``), else Azure DevOps' own name as documented (``individualci`` → ``individualCI``).
    An unknown name is returned as given."""
    typed = name.strip().lower()
    meant = _MEANING.get(typed)
    if meant is None:
        return name
    for friendly in FRIENDLY_REASONS:  # (in order: pr before its longer spellings, schedule before scheduled)
        if _MEANING[friendly] == meant:
            return friendly
    return _typed(typed)


def _typed(lowered: str) -> str:
    """A known name as it is documented (``pullRequest``, not ``pullrequest``)."""
    return next((r for r in AZURE_DEVOPS_REASONS if r.lower() == lowered), lowered)


def reason_words(reason: str | None) -> str | None:
    """Why a run started, as its card says it (``Pull request``); None where Azure DevOps did not say, or says
    ``none``."""
    if not reason or reason.lower() == "none":
        return None
    return _WORDS.get(reason.lower(), reason)
