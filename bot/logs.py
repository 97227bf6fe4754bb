"""Logging: plain text or one JSON object per line, with every secret-shaped string redacted.

Redaction happens in a filter on the handler, so it covers every logger, including the SDKs'. It
removes the configured secrets' values, Slack tokens, JWTs, Authorization header values, and
``password=``/``secret=``/``token=``-style pairs. The database drivers, which would log each statement's
values, are kept at WARNING even when the level is DEBUG.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

REDACTED = "[redacted]"

_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Slack tokens: bot, user, refresh (xoxe-), rotating (xoxe.xoxp-, xoxe.xoxb-), app-level (xapp-)
    re.compile(r"\bxox[a-z](?:\.xox[a-z])?-[A-Za-z0-9-]{6,}"),
    re.compile(r"\bxapp-[A-Za-z0-9-]{6,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),  # JWTs
    re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(
        r"(?i)((?:password|passwd|secret|token|api[_-]?key|signature|client_secret)"
        r"[\"']?\s*[=:]\s*[\"']?)([^\s\"'&,;]{4,})"
    ),
    # short names only where they start a name ("code=", "?sig="), not inside one ("validationCode: missing")
    re.compile(r"(?i)((?<![a-z])(?:sig|code|pat)[\"']?\s*[=:]\s*[\"']?)([^\s\"'&,;]{4,})"),
)

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class Redactor:
    """Removes secrets from text: known values first, then secret-shaped patterns."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Add values to redact (shorter than 4 characters are ignored: they would erase ordinary text)."""
        known = set(self._secrets) | {s for s in secrets if s and len(s) >= 4}
        self._secrets = sorted(known, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            if pattern.groups >= 2:
                text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
            else:
                text = pattern.sub(REDACTED, text)
        return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and exception text) through a :class:`Redactor`."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = self.redactor(message)
        record.args = None
        if record.exc_info:
            record.exc_text = self.redactor(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redactor(value))
        return True


def redact_also(secrets: Iterable[str]) -> None:
    """Redact ``secrets`` too in every log line from now on (a configuration read after logging was set up,
    such as the demo's, whose passwords are made when it starts)."""
    for handler in logging.getLogger().handlers:
        for found in handler.filters:
            if isinstance(found, RedactingFilter):
                found.redactor.add(secrets)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    level: str = "INFO", log_format: str = "text", secrets: Iterable[str] = (), stream: TextIO | None = None
) -> Redactor:
    """Send all logging to ``stream`` (stderr) through redaction; returns the redactor to extend later."""
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter(redactor))
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # the SDKs log request bodies and headers at DEBUG, and the database drivers each statement with its
    # values (installations' tokens, OAuth states; SQLAlchemy's engine at INFO), which no pattern can
    # tell apart: keep them at WARNING whatever the level
    quiet = ("azure", "msrest", "urllib3", "aiohttp.access", "slack_sdk", "slack_bolt", "alembic")
    for noisy in (*quiet, "aiosqlite", "asyncpg", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # azure-ai-ml warns about its own experimental classes whenever it loads a job
    logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)
    return redactor
