"""The audit log: the entry a chat command leaves, and the log as people export it (CSV for spreadsheets, JSON
lines for tools)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime

from bot.interactions import CommandRequest
from bot.records import AuditEntry

COLUMNS = ("at", "actor", "action", "target", "outcome", "platform", "conversation", "comment")


def command_entry(request: CommandRequest, command: str, outcome: str, at: datetime) -> AuditEntry:
    """The audit entry of a chat command: who typed ``command`` where, and what came of it."""
    return AuditEntry(
        at=at,
        actor=request.user.display,
        action="command",
        target=command,
        outcome=outcome,
        platform=request.user.platform,
        conversation=request.conversation.conversation_id,
    )


def to_csv(entries: Iterable[AuditEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in entries:
        writer.writerow([entry.at.isoformat(), *(getattr(entry, c) for c in COLUMNS[1:])])
    return out.getvalue()


def to_json_lines(entries: Iterable[AuditEntry]) -> str:
    lines = []
    for entry in entries:
        row = {c: getattr(entry, c) for c in COLUMNS}
        row["at"] = entry.at.isoformat()
        row["details"] = entry.details
        lines.append(json.dumps(row, ensure_ascii=False))
    return "\n".join(lines) + ("\n" if lines else "")
