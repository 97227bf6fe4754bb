"""The audit log as people export it: CSV for spreadsheets, JSON lines for tools."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from bot.records import AuditEntry

COLUMNS = ("at", "actor", "action", "target", "outcome", "platform", "conversation", "comment")


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
