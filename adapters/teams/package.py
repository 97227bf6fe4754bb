"""``handoff teams-package``: the Teams app package (a zip of ``manifest.json`` and the two icons).

The manifest in ``manifest/teams/`` is a template: the bot's app id, the app's id (the same GUID) and
the domain of Handoff's public URL are filled in here, and the developer links (website, privacy,
terms of use) point at the pages Handoff serves there (:mod:`adapters.web.pages`). A package is only
built for a registered bot (not the example's all-zero app id) and an https public URL: nothing of the
template's placeholder host is ever shipped. Upload the zip in Teams (Apps → Manage your apps →
Upload an app) or in the Teams admin center.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import struct
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from adapters.web.pages import ABOUT_PATH, PRIVACY_PATH, TERMS_PATH
from bot import __version__
from bot.config import TeamsSettings

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "manifest" / "teams"
PLACEHOLDER_HOST = "handoff.example.com"
PLACEHOLDER_APP_ID = "00000000-0000-0000-0000-000000000000"
DEVELOPER_PAGES = {"websiteUrl": ABOUT_PATH, "privacyUrl": PRIVACY_PATH, "termsOfUseUrl": TERMS_PATH}
"""The manifest's developer links, and the pages Handoff serves for them under its public URL."""
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
        public_url: Handoff's public https URL (``server.public_url``): its host becomes the valid domain,
            and the developer links point at its ``/about``, ``/privacy`` and ``/terms`` pages.
        out_path: where the zip goes (its folder is created; a file there is replaced).
        template_dir: the folder with ``manifest.json`` and the icons (the repository's ``manifest/teams``).
        version: the app version (semver); Handoff's version by default.
    """
    source = template_dir or TEMPLATE_DIR
    manifest = fill_manifest(_read_json(source / "manifest.json"), settings, public_url, version)
    icons = {name: _read_icon(source / name, size) for name, size in ICONS.items()}
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _add(archive, "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"))
        for name, data in icons.items():
            _add(archive, name, data)
    out = Path(out_path)
    _write(out, package.getvalue())
    return out


def _write(out: Path, data: bytes) -> None:
    """Write ``data`` to ``out`` whole or not at all (through a file beside it, then renamed)."""
    partial = out.with_name(f".{out.name}.partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.is_dir():
            raise IsADirectoryError(21, "is a folder", str(out))
        if out.exists() and not out.is_file():  # a device or a pipe (/dev/null): replacing it would remove it
            raise PackageError(f"cannot write the package to {out}: it is not a file")
        partial.write_bytes(data)
        os.replace(partial, out)
    except OSError as error:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise PackageError(f"cannot write the package to {out}: {_why_not_written(error)}") from None


def _why_not_written(error: OSError) -> str:
    if isinstance(error, (FileExistsError, NotADirectoryError)) and error.filename:
        return f"{error.filename} is a file, not a folder"
    if isinstance(error, IsADirectoryError):
        return f"{error.filename or 'it'} is a folder"
    return error.strerror or str(error)


def fill_manifest(
    template: dict[str, Any], settings: TeamsSettings, public_url: str | None, version: str | None = None
) -> dict[str, Any]:
    """The manifest for these settings (the template is not changed)."""
    app_id = settings.app_id.strip()
    if not _GUID.match(app_id):
        raise PackageError(
            "teams.app_id must be the bot's Microsoft App ID, a GUID such as "
            "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b (see the Azure Bot resource's Configuration page)"
        )
    if app_id == PLACEHOLDER_APP_ID:
        raise PackageError(
            "teams.app_id is still the example's all-zero placeholder: register the bot first (an Azure Bot "
            "resource, docs/deploy.md section 3) and set teams.app_id to its Microsoft App ID"
        )
    origin = _https_origin(public_url)
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
    manifest["validDomains"] = [urlsplit(origin).hostname]
    developer = manifest.setdefault("developer", {})
    for key, path in DEVELOPER_PAGES.items():
        developer[key] = origin + path
    if PLACEHOLDER_HOST in json.dumps(manifest):
        raise PackageError(f"the manifest template still names {PLACEHOLDER_HOST} outside the links Handoff fills")
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


def _https_origin(public_url: str | None) -> str:
    """``public_url`` without its trailing slash, once it is an https URL of Handoff's own host."""
    if not public_url:
        raise PackageError(
            "set server.public_url to Handoff's public https URL: the package names its domain, and its "
            "website, privacy and terms links are pages Handoff serves there"
        )
    parts = urlsplit(public_url.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise PackageError(
            f"server.public_url must be an https URL such as https://handoff.contoso.com (Teams opens only "
            f"https links, and the Bot Framework calls only https endpoints), not {public_url!r}"
        )
    if parts.hostname == PLACEHOLDER_HOST:
        raise PackageError(
            f"server.public_url still names the example's placeholder host {PLACEHOLDER_HOST}: set it to "
            "Handoff's own public https URL"
        )
    return public_url.strip().rstrip("/")


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
