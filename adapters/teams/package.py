"""``handoff teams-package``: the Teams app package (a zip of ``manifest.json`` and the two icons).

The manifest in ``manifest/teams/`` is a template: the bot's app id, the app's id (the same GUID) and
the domain of Handoff's public URL are filled in here; the developer links are pointed at the public
URL while they still name the placeholder host. Upload the zip in Teams (Apps → Manage your apps →
Upload an app) or in the Teams admin center.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot import __version__
from bot.config import TeamsSettings

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "manifest" / "teams"
PLACEHOLDER_HOST = "handoff.example.com"
ICONS = {"color.png": (192, 192), "outline.png": (32, 32)}
RSC_READ_MESSAGES = ("ChannelMessage.Read.Group", "ChatMessage.Read.Chat")
"""The resource-specific permissions that let Handoff find a post whose answer was lost."""

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_ZIP_TIME = (2026, 1, 1, 0, 0, 0)


class PackageError(ValueError):
    """The package cannot be built from these settings; the message says what to fix."""


def build_teams_package(
    settings: TeamsSettings,
    public_url: str | None,
    out_path: str | Path,
    *,
    template_dir: Path | None = None,
    version: str | None = None,
) -> Path:
    """Write the Teams app package for these settings to ``out_path``; returns its path.

    Args:
        settings: the ``teams`` section (its ``app_id`` is the bot's Microsoft App ID).
        public_url: Handoff's public https URL (``server.public_url``), whose host becomes the valid domain.
        out_path: where the zip goes (its folder is created).
        template_dir: the folder with ``manifest.json`` and the icons (the repository's ``manifest/teams``).
        version: the app version (semver); Handoff's version by default.
    """
    source = template_dir or TEMPLATE_DIR
    manifest = fill_manifest(_read_json(source / "manifest.json"), settings, public_url, version)
    icons = {name: _read_icon(source / name, size) for name, size in ICONS.items()}
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _add(archive, "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"))
        for name, data in icons.items():
            _add(archive, name, data)
    return out


def fill_manifest(
    template: dict[str, Any], settings: TeamsSettings, public_url: str | None, version: str | None = None
) -> dict[str, Any]:
    """The manifest for these settings (the template is not changed)."""
    app_id = settings.app_id.strip()
    if not _GUID.match(app_id):
        raise PackageError(
            "teams.app_id must be the bot's Microsoft App ID, a GUID such as "
            "00000000-0000-0000-0000-000000000000 (see the Azure Bot resource's Configuration page)"
        )
    app_version = version or __version__
    if not _SEMVER.match(app_version):
        raise PackageError(f"the app version must be semver (major.minor.patch), not {app_version!r}")
    manifest: dict[str, Any] = json.loads(json.dumps(template))
    manifest["id"] = app_id
    manifest["version"] = app_version
    for bot in manifest.get("bots", []):
        bot["botId"] = app_id
    if settings.graph.find_lost_posts:
        _ask_to_read_messages(manifest, app_id)
    host = _host(public_url)
    if host is None:
        manifest.pop("validDomains", None)
        return manifest
    manifest["validDomains"] = [host]
    origin = public_url.rstrip("/") if public_url and public_url.startswith("https://") else None
    developer = manifest.get("developer", {})
    for key in ("websiteUrl", "privacyUrl", "termsOfUseUrl"):
        url = developer.get(key)
        if origin and isinstance(url, str) and urlsplit(url).hostname == PLACEHOLDER_HOST:
            developer[key] = origin + urlsplit(url).path
    return manifest


def _ask_to_read_messages(manifest: dict[str, Any], app_id: str) -> None:
    """Resource-specific consent to read the messages of the teams and group chats the app is added to
    (``teams.graph.find_lost_posts``): whoever adds the app grants it for that team or chat alone."""
    manifest["webApplicationInfo"] = {"id": app_id, "resource": f"api://{app_id}"}
    permissions = manifest.setdefault("authorization", {}).setdefault("permissions", {})
    wanted = permissions.setdefault("resourceSpecific", [])
    for name in RSC_READ_MESSAGES:
        if not any(p.get("name") == name for p in wanted):
            wanted.append({"name": name, "type": "Application"})


def _host(public_url: str | None) -> str | None:
    if not public_url:
        return None
    host = urlsplit(public_url).hostname
    if not host:
        raise PackageError(f"server.public_url must be an absolute URL, not {public_url!r}")
    return host


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PackageError(f"cannot read the manifest template {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise PackageError(f"{path} is not a JSON object")
    return data


def _read_icon(path: Path, size: tuple[int, int]) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PackageError(f"cannot read the icon {path}: {exc}") from exc
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise PackageError(f"{path} is not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    if (width, height) != size:
        raise PackageError(f"{path} is {width}x{height}; Teams needs {size[0]}x{size[1]}")
    return data


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)
