"""Azure DevOps web URLs, as people paste them into ``subscribe``: which organization, project and pipeline.

The forms are the ones the Azure Pipelines app for Slack and Teams accepts (reference/what-users-ask.md §1.1):
a *project URL* is any page of a project that is not a pipeline's, and a *pipeline URL* is any page that
names a pipeline with ``definitionId`` or one of its runs with ``buildId``::

    https://dev.azure.com/{org}/{project}
    https://dev.azure.com/{org}/{project}/_build?definitionId=12
    https://dev.azure.com/{org}/{project}/_build/results?buildId=345&view=results
    https://{org}.visualstudio.com/{project}/_build?definitionId=12
    https://{org}.visualstudio.com/DefaultCollection/{project}/_git/app-y

Classic release pages (``_release?definitionId=…``, ``_releaseProgress?releaseId=…``) are recognised and
reported as such, so that the caller can say it does not follow them. Any other host is accepted when it
is one of the ``organization_urls`` given (Azure DevOps Server, a local emulator): the segment after it is
the project. Slack's ``<url>`` and ``<url|label>`` wrappings are undone. Parsing is pure: nothing is fetched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

_CLOUD_HOST = "dev.azure.com"
_LEGACY_SUFFIX = ".visualstudio.com"
_COLLECTION = "defaultcollection"
_RELEASE_PAGES = ("_release", "_releaseprogress", "_releasedefinition")


class NotAnAzureDevOpsUrl(ValueError):
    """The text is not an Azure DevOps project or pipeline URL; the message says why, for a person."""


@dataclass(frozen=True)
class AzureDevOpsUrl:
    """What an Azure DevOps web URL points at.

    ``pipeline_id`` is a YAML pipeline's (build definition's) id; ``run_id`` a run's (build's) id, whose
    pipeline a service must look up. ``release`` marks a classic release page (``pipeline_id`` is then the
    release definition's id, if the URL names one).
    """

    organization: str
    project: str
    pipeline_id: int | None = None
    run_id: int | None = None
    release: bool = False

    @property
    def names_a_pipeline(self) -> bool:
        """True for a pipeline URL, False for a project URL."""
        return self.pipeline_id is not None or self.run_id is not None


def looks_like_url(text: str) -> bool:
    """Whether ``text`` is meant as a URL (as opposed to a name or a filter)."""
    stripped = _unwrap(text)
    return stripped.lower().startswith(("http://", "https://")) or stripped.lower().startswith(_CLOUD_HOST + "/")


def organization_of(organization_url: str) -> str:
    """The organization an organization URL names (``https://dev.azure.com/contoso`` → ``contoso``).

    Hosts other than the cloud's are named by their last path segment (``https://ado.corp/tfs/Contoso``
    → ``Contoso``), as Azure DevOps Server and the local emulator serve one collection per URL.
    """
    parts = urlsplit(organization_url.strip())
    host = (parts.hostname or "").lower()
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if host.endswith(_LEGACY_SUFFIX):
        return host[: -len(_LEGACY_SUFFIX)]
    if segments:
        return segments[0] if host == _CLOUD_HOST else segments[-1]
    return host


def parse_azure_devops_url(text: str, organization_urls: Sequence[str] = ()) -> AzureDevOpsUrl:
    """The organization, project and pipeline an Azure DevOps URL names.

    Args:
        text: the URL as typed or pasted (Slack's ``<…>`` wrapping is undone).
        organization_urls: organization URLs on other hosts to accept (Azure DevOps Server, an emulator).

    Raises:
        NotAnAzureDevOpsUrl: the text is not a URL of an Azure DevOps project or pipeline.
    """
    raw = _unwrap(text)
    if raw.lower().startswith(_CLOUD_HOST + "/"):
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise NotAnAzureDevOpsUrl(f"{_shown(text)} is not a URL.") from None
    if parts.scheme not in ("http", "https") or not host:
        raise NotAnAzureDevOpsUrl(f"{_shown(text)} is not a URL.")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    located = _locate(parts.scheme, host, parts.port, segments, organization_urls)
    if located is None:
        raise NotAnAzureDevOpsUrl(
            f"{_shown(text)} is not an Azure DevOps URL: expected https://dev.azure.com/<organization>/<project>/… "
            "or https://<organization>.visualstudio.com/<project>/…"
        )
    organization, rest = located
    if not rest or rest[0].startswith("_"):
        raise NotAnAzureDevOpsUrl(
            f"{_shown(text)} names no project: open the project or the pipeline in Azure DevOps and copy its URL."
        )
    project, pages = rest[0], [s.lower() for s in rest[1:]]
    query = {k.lower(): v for k, v in parse_qsl(parts.query)}
    release = bool(pages) and pages[0] in _RELEASE_PAGES
    if release:
        return AzureDevOpsUrl(organization, project, _number(query, "definitionid"), _number(query, "releaseid"), True)
    pipeline_id = _number(query, "definitionid")
    run_id = _number(query, "buildid")
    if pipeline_id is None and len(pages) >= 3 and pages[0] == "_apis" and pages[1] == "pipelines":
        pipeline_id = _digits(pages[2])
    return AzureDevOpsUrl(organization, project, pipeline_id, None if pipeline_id is not None else run_id)


def _locate(
    scheme: str, host: str, port: int | None, segments: list[str], organization_urls: Sequence[str]
) -> tuple[str, list[str]] | None:
    """The organization and the path segments after it, or None when the host is not Azure DevOps."""
    if host == _CLOUD_HOST:
        return (segments[0], segments[1:]) if segments else None
    if host.endswith(_LEGACY_SUFFIX) and host.count(".") == 2:
        rest = segments[1:] if segments and segments[0].lower() == _COLLECTION else segments
        return host[: -len(_LEGACY_SUFFIX)], rest
    for known in organization_urls:
        base = urlsplit(known.strip())
        if (base.hostname or "").lower() != host or base.port != port or base.scheme != scheme:
            continue
        prefix = [unquote(s) for s in base.path.split("/") if s]
        if [s.lower() for s in segments[: len(prefix)]] == [s.lower() for s in prefix]:
            return organization_of(known), segments[len(prefix) :]
    return None


def _unwrap(text: str) -> str:
    """``<https://…|label>`` (Slack) → ``https://…``; surrounding whitespace and quotes go too."""
    stripped = text.strip().strip("'\"")
    if stripped.startswith("<") and stripped.endswith(">"):
        stripped = stripped[1:-1].split("|", 1)[0]
    return stripped.replace("&amp;", "&").strip()


def _number(query: dict[str, str], key: str) -> int | None:
    return _digits(query.get(key, ""))


def _digits(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isdigit() and len(value) < 12 else None


def _shown(text: str) -> str:
    short = text.strip()
    return f"`{short if len(short) <= 80 else short[:77] + '...'}`"
