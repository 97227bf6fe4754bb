"""The Slack app manifest for a deployment: ``manifest/slack/manifest.yaml`` with its request URLs
pointed at the deployment's public URL (``handoff slack-manifest --config F`` prints it).

The template is itself a valid manifest whose URLs use :data:`PLACEHOLDER_URL`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

PLACEHOLDER_URL = "https://handoff.example.com"
TEMPLATE = Path(__file__).resolve().parents[2] / "manifest" / "slack" / "manifest.yaml"

_PUBLIC_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")


def render_manifest(public_url: str, template: Path | None = None, *, https_only: bool = False) -> str:
    """The manifest YAML with every request URL under ``public_url`` (``https://host[/prefix]``).

    Args:
        public_url: Handoff's public URL.
        template: the manifest template (the repository's ``manifest/slack/manifest.yaml``).
        https_only: refuse an http URL, as Slack does for the request URLs of an app it serves (an
            emulator takes http).

    Raises:
        ValueError: ``public_url`` is not an absolute http(s) URL (https with ``https_only``) without
            query or fragment; the message reads after the URL's name ("--public-url must be …").
        FileNotFoundError: the template is missing (a checkout without ``manifest/``).
    """
    url = public_url.strip().rstrip("/")
    if https_only and not (url.startswith("https://") and _PUBLIC_URL.fullmatch(url)):
        raise ValueError(
            "must be an https URL without query or fragment, such as https://handoff.contoso.com "
            f"(Slack sends its requests to https URLs only), not {public_url!r}"
        )
    if not _PUBLIC_URL.fullmatch(url):
        raise ValueError(f"expected an absolute http(s) URL such as https://handoff.contoso.com, not {public_url!r}")
    if https_only and urlsplit(url).hostname == urlsplit(PLACEHOLDER_URL).hostname:
        raise ValueError(
            f"still names the example's placeholder host {urlsplit(PLACEHOLDER_URL).hostname}: use Handoff's own "
            "public https URL, where Slack will send its requests"
        )
    text = (template or TEMPLATE).read_text(encoding="utf-8")
    return text.replace(PLACEHOLDER_URL, url)


def manifest_data(public_url: str, template: Path | None = None) -> dict[str, Any]:
    """The rendered manifest, parsed."""
    data: dict[str, Any] = yaml.safe_load(render_manifest(public_url, template))
    return data


def slash_commands(template: Path | None = None) -> list[str]:
    """The slash commands the manifest registers (``/handoff``, ``/retrain``, ``/integrate``)."""
    data = manifest_data(PLACEHOLDER_URL, template)
    return [str(c["command"]) for c in data.get("features", {}).get("slash_commands", [])]
