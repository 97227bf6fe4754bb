"""Which Event Grid subscriptions Handoff needs, and whether the ones there match: pure planning.

- On the workspace: ``handoff-azureml``, the five Azure ML event types.
- On each data-lake path's storage account: ``handoff-lake-{account}-{hash}``, ``Microsoft.Storage.BlobCreated``
  for blobs under the path (``subjectBeginsWith``), ADLS Gen2's committed files only (``data.api`` is
  ``FlushWithClose``; reference/azure-ml.md §1.2).

Every one delivers CloudEvents 1.0 to ``<public_url>/hooks/eventgrid?<parameter>=<secret>`` one event per
request, and carries the label :data:`LABEL`: Handoff manages subscriptions with that label (and a
``handoff-`` name) and never touches others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

LABEL = "handoff"
PREFIX = "handoff-"
WORKSPACE_SUBSCRIPTION = "handoff-azureml"
SCHEMA = "CloudEventSchemaV1_0"
HOOK_PATH = "/hooks/eventgrid"
ML_EVENT_TYPES = (
    "Microsoft.MachineLearningServices.ModelRegistered",
    "Microsoft.MachineLearningServices.ModelDeployed",
    "Microsoft.MachineLearningServices.RunCompleted",
    "Microsoft.MachineLearningServices.RunStatusChanged",
    "Microsoft.MachineLearningServices.DatasetDriftDetected",
)
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
COMMITTED_FILES = ("StringIn", "data.api", ("FlushWithClose",))


@dataclass(frozen=True)
class Shape:
    """What an event subscription says, in a form two can be compared in."""

    endpoint_url: str = field(repr=False)  # with the secret: compare, never print
    event_types: tuple[str, ...]
    subject_begins_with: str = ""
    advanced_filters: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    schema: str = SCHEMA
    max_events_per_batch: int = 1

    def normal(self) -> Shape:
        return Shape(
            self.endpoint_url,
            tuple(sorted(t.lower() for t in self.event_types)),
            self.subject_begins_with.lower(),
            tuple(
                sorted(
                    (op, key.lower(), tuple(sorted(v.lower() for v in values)))
                    for op, key, values in self.advanced_filters
                )
            ),
            self.schema.lower(),
            self.max_events_per_batch,
        )

    def same_as(self, other: Shape) -> bool:
        return self.normal() == other.normal()


@dataclass(frozen=True)
class WantedSubscription:
    """One event subscription Handoff needs: where (the ARM scope), its name, and its shape."""

    scope: str
    name: str
    shape: Shape
    what: str  # for people: "Azure ML events of ws-mlops", "new files under lake/raw/customers/"


@dataclass(frozen=True)
class FoundSubscription:
    """An event subscription on a scope, as ARM lists it (with the full endpoint URL when it is ours)."""

    scope: str
    name: str
    labels: tuple[str, ...]
    state: str
    shape: Shape | None = None

    @property
    def ours(self) -> bool:
        return self.name.lower().startswith(PREFIX) and LABEL in {label.lower() for label in self.labels}


def endpoint_url(public_url: str, parameter: str, secret: str) -> str:
    """Handoff's Event Grid endpoint with the delivery secret in its query string."""
    return f"{public_url.rstrip('/')}{HOOK_PATH}?{urlencode({parameter: secret})}"


def workspace_subscription(scope: str, workspace: str, url: str) -> WantedSubscription:
    return WantedSubscription(
        scope, WORKSPACE_SUBSCRIPTION, Shape(url, ML_EVENT_TYPES), f"Azure ML events of {workspace}"
    )


def lake_subscription(scope: str, account: str, filesystem: str, path: str, url: str) -> WantedSubscription:
    """New committed files under ``filesystem/path`` of a storage account."""
    prefix = f"/blobServices/default/containers/{filesystem}/blobs/{path.lstrip('/')}"
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:8]
    name = f"{PREFIX}lake-{account.lower()}-{digest}"[:64]
    shape = Shape(url, (BLOB_CREATED,), prefix, (COMMITTED_FILES,))
    return WantedSubscription(scope, name, shape, f"new files under {filesystem}/{path.lstrip('/')} of {account}")


@dataclass(frozen=True)
class Step:
    """One change: create, keep, update or delete a subscription."""

    change: str
    scope: str
    name: str
    what: str = ""
    wanted: WantedSubscription | None = None

    def describe(self) -> str:
        """One line, without secrets."""
        resource = self.scope.rsplit("/", 1)[-1]
        return f"{self.change:<7} {resource:<20} {self.name}" + (f" ({self.what})" if self.what else "")


def plan(wanted: Sequence[WantedSubscription], found: Sequence[FoundSubscription]) -> list[Step]:
    """Keep what matches, create what is missing, update what differs or failed, delete Handoff's leftovers;
    a wanted name taken by a subscription that is not Handoff's is a ``conflict`` (left alone)."""
    index = {(f.scope.lower(), f.name.lower()): f for f in found}
    steps: list[Step] = []
    for item in wanted:
        there = index.get((item.scope.lower(), item.name.lower()))
        if there is None:
            steps.append(Step("create", item.scope, item.name, item.what, item))
        elif not there.ours:
            steps.append(Step("conflict", item.scope, item.name, "exists and is not Handoff's: rename or delete it"))
        elif there.state != "Succeeded":
            steps.append(Step("update", item.scope, item.name, f"{item.what}; was {there.state}", item))
        elif there.shape is None or not there.shape.same_as(item.shape):
            steps.append(Step("update", item.scope, item.name, f"{item.what}; settings changed", item))
        else:
            steps.append(Step("keep", item.scope, item.name, item.what, item))
    wanted_keys = {(w.scope.lower(), w.name.lower()) for w in wanted}
    for there in found:
        if there.ours and (there.scope.lower(), there.name.lower()) not in wanted_keys:
            steps.append(Step("delete", there.scope, there.name, "no longer needed"))
    return steps
