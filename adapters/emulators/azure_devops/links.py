"""Absolute URLs the emulator hands out, built from ``base_url`` once the server is listening."""

from __future__ import annotations

from urllib.parse import quote

from adapters.emulators.azure_devops.world import World


class Links:
    """URL builder. ``base_url`` is where the emulator app is served, e.g. ``http://127.0.0.1:PORT/ado``."""

    def __init__(self, world: World, base_url: str = "") -> None:
        self.world = world
        self.base_url = base_url.rstrip("/")

    @property
    def org_url(self) -> str:
        """The organization URL to give ``azure.devops.connection.Connection``."""
        return f"{self.base_url}/{self.world.organization}"

    @property
    def release_url(self) -> str:
        """Where the Release area lives: the org URL, or a vsrm-like URL when resource areas are listed."""
        if self.world.resource_areas == "listed":
            return f"{self.base_url}/vsrm/{self.world.organization}"
        return self.org_url

    def api(self, path: str) -> str:
        return f"{self.org_url}/{self.world.project_id}/_apis/{path}"

    def web(self, path: str) -> str:
        return f"{self.org_url}/{quote(self.world.project)}/{path}"

    def pipeline(self, pipeline_id: int, revision: int) -> str:
        return self.api(f"Pipelines/{pipeline_id}?revision={revision}")

    def pipeline_web(self, pipeline_id: int) -> str:
        return self.web(f"_build/definition?definitionId={pipeline_id}")

    def run(self, pipeline_id: int, run_id: int) -> str:
        return self.api(f"Pipelines/{pipeline_id}/runs/{run_id}")

    def run_web(self, run_id: int) -> str:
        return self.web(f"_build/results?buildId={run_id}")

    def run_log(self, pipeline_id: int, run_id: int, log_id: int | None = None) -> str:
        tail = f"/{log_id}" if log_id is not None else ""
        return self.api(f"Pipelines/{pipeline_id}/runs/{run_id}/logs{tail}")

    def signed_log(self, token: str) -> str:
        return f"{self.base_url}/_signed/logs/{token}"

    def build(self, build_id: int) -> str:
        return self.api(f"build/Builds/{build_id}")

    def build_log(self, build_id: int, log_id: int | None = None) -> str:
        tail = f"/{log_id}" if log_id is not None else ""
        return self.api(f"build/builds/{build_id}/logs{tail}")

    def timeline(self, build_id: int, timeline_id: str) -> str:
        return self.api(f"build/builds/{build_id}/Timeline/{timeline_id}")

    def definition(self, definition_id: int) -> str:
        return self.api(f"build/Definitions/{definition_id}")

    def approval(self, approval_id: str) -> str:
        return self.api(f"pipelines/approvals/{approval_id}")

    def environment_web(self, environment_id: int) -> str:
        return self.web(f"_environments/{environment_id}?view=resources")

    def identity(self, identity_id: str) -> str:
        return f"{self.org_url}/_apis/Identities/{identity_id}"

    def identity_image(self, identity_id: str) -> str:
        return f"{self.org_url}/_api/_common/identityImage?id={identity_id}"

    def project(self) -> str:
        return f"{self.org_url}/_apis/projects/{self.world.project_id}"

    def repository(self, repository_id: str) -> str:
        return self.api(f"git/repositories/{repository_id}")

    def repository_remote(self, name: str) -> str:
        return self.web(f"_git/{quote(name)}")

    def commit(self, repository_name: str, commit_id: str) -> str:
        return f"{self.repository_remote(repository_name)}/commit/{commit_id}"

    def push(self, repository_id: str, push_id: int) -> str:
        return self.api(f"git/repositories/{repository_id}/pushes/{push_id}")

    def release(self, release_id: int) -> str:
        return f"{self.release_url}/{self.world.project_id}/_apis/Release/releases/{release_id}"

    def release_definition(self, definition_id: int) -> str:
        return f"{self.release_url}/{self.world.project_id}/_apis/Release/definitions/{definition_id}"

    def release_approval(self, approval_id: int) -> str:
        return f"{self.release_url}/{self.world.project_id}/_apis/Release/approvals/{approval_id}"

    def subscription(self, subscription_id: str) -> str:
        return f"{self.org_url}/_apis/hooks/subscriptions/{subscription_id}"

    def container(self, container_id: int, path: str) -> str:
        return f"{self.org_url}/_apis/resources/Containers/{container_id}/{path}"
