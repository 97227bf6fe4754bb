"""What is wrong with a configuration file: problems at key paths, and the error that lists them."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration file, at a key path such as ``slack.signing_secret``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


def did_you_mean(name: str, candidates: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the candidate closest to ``name``, or nothing when none is close."""
    close = closest(name, candidates)
    return f" (did you mean {close!r}?)" if close is not None else ""


def closest(name: str, candidates: Iterable[object]) -> str | None:
    """The candidate closest to ``name``, None when none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.6)
    return close[0] if close else None


def masked_url(url: str) -> str:
    """``url`` with its password masked, however malformed: everything from the first ``:`` of its user part
    up to the last ``@`` (a password may hold unencoded ``@``, ``:``, ``/``, ``?`` or ``#``), and any
    ``password=`` parameter. What is masked may be more than the password, never less."""
    scheme, separator, rest = url.partition("://")
    user_end = rest.rfind("@")
    if separator and user_end >= 0:
        user, colon, _ = rest[:user_end].partition(":")
        rest = f"{user}:***{rest[user_end:]}" if colon else rest
    return re.sub(r"(?i)(password=)[^&#]*", r"\1***", f"{scheme}{separator}{rest}")
