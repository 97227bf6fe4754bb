"""Location discovery: the ``OPTIONS {org}/_apis`` entries and ``GET {org}/_apis/ResourceAreas``.

The SDK finds every route through these entries (reference/azure-devops.md §4): the ids must be the
service's, and the version fields are required (the SDK compares them). Each entry here is also used to
validate the api-version a request asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Location:
    """An ``ApiResourceLocation``."""

    id: str
    area: str
    resource_name: str
    route_template: str
    resource_version: int
    min_version: float = 1.0
    max_version: float = 7.2
    released_version: str = "7.1"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "area": self.area,
            "resourceName": self.resource_name,
            "routeTemplate": self.route_template,
            "resourceVersion": self.resource_version,
            "minVersion": self.min_version,
            "maxVersion": self.max_version,
            "releasedVersion": self.released_version,
        }


RESOURCE_AREAS = Location(
    "e81700f7-3be2-46de-8624-2eb35882fcaa", "Location", "ResourceAreas", "_apis/{resource}/{areaId}", 1, 3.2, 7.2, "0.0"
)
PIPELINES = Location(
    "28e1305e-2afe-47bf-abaf-cbb0e6a91988", "pipelines", "pipelines", "{project}/_apis/pipelines/{pipelineId}", 1
)
RUNS = Location(
    "7859261e-d2e9-4a68-b820-a5d84cc5bb3d",
    "pipelines",
    "runs",
    "{project}/_apis/pipelines/{pipelineId}/runs/{runId}",
    1,
)
PIPELINE_LOGS = Location(
    "fb1b6d27-3957-43d5-a14b-a2d70403e545",
    "pipelines",
    "logs",
    "{project}/_apis/pipelines/{pipelineId}/runs/{runId}/logs/{logId}",
    1,
)
APPROVALS = Location(
    "37794717-f36f-4d78-b2bf-4dc30d0cfbcd",
    "approval",
    "approvals",
    "{project}/_apis/pipelines/approvals/{approvalId}",
    2,
)
BUILDS = Location(
    "0cd358e1-9217-4d94-8269-1c1ee6f93dcf", "build", "builds", "{project}/_apis/build/builds/{buildId}", 7
)
BUILD_LOGS = Location(
    "35a80daf-7f30-45fc-86e8-6b813d9c90df", "build", "logs", "{project}/_apis/build/builds/{buildId}/logs/{logId}", 2
)
TIMELINE = Location(
    "8baac422-4c6e-4de5-8532-db96d92acffa",
    "build",
    "Timeline",
    "{project}/_apis/build/builds/{buildId}/Timeline/{timelineId}",
    2,
)
RELEASE_APPROVALS = Location(
    "b47c6458-e73b-47cb-a770-4df1e8813a91", "Release", "approvals", "{project}/_apis/Release/approvals", 3
)
RELEASE_APPROVAL = Location(
    "9328e074-59fb-465a-89d9-b09c82ee5109", "Release", "approvals", "{project}/_apis/Release/approvals/{approvalId}", 3
)
HOOK_SUBSCRIPTIONS = Location(
    "fc50d02a-849f-41fb-8af1-0a5216103269", "hooks", "subscriptions", "_apis/hooks/{resource}/{subscriptionId}", 1
)
HOOK_NOTIFICATIONS = Location(
    "0c62d343-21b0-4732-997b-017fde84dc28",
    "hooks",
    "notifications",
    "_apis/hooks/subscriptions/{subscriptionId}/{resource}/{notificationId}",
    1,
)
# The Identities API is a preview API in 7.1 (releasedVersion 0.0: only -preview versions are accepted).
IDENTITIES = Location(
    "28010c54-d0c0-4c89-a5b0-1c9e188b9fb7", "IMS", "Identities", "_apis/identities/{identityId}", 1, 1.0, 7.2, "0.0"
)

CONNECTION_DATA = Location(
    "00d9565f-ed9c-4a06-9a50-00e7896ccab4", "Location", "ConnectionData", "_apis/{resource}", 1, 1.0, 7.2, "0.0"
)

#: Served on the organization URL.
ORG_LOCATIONS = (
    RESOURCE_AREAS,
    PIPELINES,
    RUNS,
    PIPELINE_LOGS,
    APPROVALS,
    BUILDS,
    BUILD_LOGS,
    TIMELINE,
    RELEASE_APPROVALS,
    RELEASE_APPROVAL,
    HOOK_SUBSCRIPTIONS,
    HOOK_NOTIFICATIONS,
    IDENTITIES,
    CONNECTION_DATA,
)
#: Served on the vsrm-like URL when resource areas are listed.
RELEASE_LOCATIONS = (RESOURCE_AREAS, RELEASE_APPROVALS, RELEASE_APPROVAL)

#: Resource areas of the SDK clients the bot uses (id, name); Release is served separately. IMS lives on
#: vssps.dev.azure.com in the service; here on the organization URL, so the SDK never asks app.vssps.
AREAS = (
    ("965220d5-5bb9-42cf-8d67-9b146df2a5a4", "Build"),
    ("4e080c62-fa21-4fbc-8fef-2a10a2b38049", "git"),
    ("79134c72-4a58-4b42-976c-04e7115f32bf", "core"),
    ("4a933897-0488-45af-bd82-6fd3ad33f46a", "PipelinesChecks"),
    ("5b55a9b6-2e0f-40d7-829d-3741d2b8c4e4", "approval"),
    ("a85b8835-c1a1-4aac-ae97-1c3d0ba72dbd", "distributedtask"),
    ("8a3d49b8-91f0-46ef-b33d-dda338c25db3", "IMS"),
)
RELEASE_AREA = ("efc2f575-36ef-48e9-b672-0c6fb4a48ac5", "Release")


def resource_areas(org_url: str, release_url: str) -> list[dict[str, Any]]:
    """The ``ResourceAreaInfo`` list for ``listed`` mode."""
    areas = [{"id": i, "name": n, "locationUrl": f"{org_url}/"} for i, n in AREAS]
    areas.append({"id": RELEASE_AREA[0], "name": RELEASE_AREA[1], "locationUrl": f"{release_url}/"})
    return areas
