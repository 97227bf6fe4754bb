"""Patterns on an event's text (``text_include`` / ``text_exclude``), from the configuration or typed in
chat, matched with RE2: in time linear in the text whatever the pattern, so that no pattern can stall
the ingest of every event (Python's ``re`` backtracks exponentially on patterns such as ``(a|a)*b``).

RE2 has no backreferences or lookaround; a pattern that uses them is refused when it is configured.
"""

from __future__ import annotations

from typing import Protocol

import re2


class TextPattern(Protocol):
    """A compiled pattern: ``search`` returns a match or None."""

    def search(self, text: str) -> object | None: ...


def compile_text_pattern(pattern: str) -> TextPattern:
    """``pattern`` compiled case-insensitively; :class:`ValueError` saying why when it cannot be."""
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # the error is raised here, not written to stderr
    try:
        compiled: TextPattern = re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0].decode(errors="replace") if error.args and isinstance(error.args[0], bytes) else error
        raise ValueError(f"not a pattern Handoff can match: {reason}") from None
    return compiled
