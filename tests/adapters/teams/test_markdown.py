"""Escaping text from outside Handoff for the markdown Teams reads in Adaptive Cards."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.teams.markdown import escape, link, message, opens

from .conftest import shown


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("Release app-y 2.3 with model-x:7 to prod", "Release app-y 2.3 with model-x:7 to prod"),
        ("fix *all* the_things", r"fix \*all\* the\_things"),
        ("**bold** and __strong__", r"\*\*bold\*\* and \_\_strong\_\_"),
        ("[click](https://evil.example)", r"\[click\]\(https://evil.example\)"),
        ("![img](https://evil.example/x.png)", r"!\[img\]\(https://evil.example/x.png\)"),
        ("<https://evil.example>", r"\<https://evil.example\>"),
        ("~~gone~~ and `code`", r"\~\~gone\~\~ and \`code\`"),
        ("C:\\temp\\*", r"C:\\temp\\\*"),
        ("{{DATE(2017-02-14T06:00:00Z, SHORT)}}", r"{{DATE\(2017-02-14T06:00:00Z, SHORT\)}}"),
        # line starts: list items, rules, headings, quotes
        ("1. first\n2) second", "1\\. first\n2\\) second"),
        ("- one\n+ two\n* three", "\\- one\n\\+ two\n\\* three"),
        ("  - indented\r- after a carriage return", "  \\- indented\r\\- after a carriage return"),
        ("---", r"\---"),
        ("# Title\n### smaller", "\\# Title\n\\### smaller"),
        ("> quoted", r"\> quoted"),
        # the same characters where they are not markup stay as they are
        ("Run #412 on main", "Run #412 on main"),
        ("-rf and +1", "-rf and +1"),
        ("2026.1 release", "2026.1 release"),
        ("a - b + c, 1. d", "a - b + c, 1. d"),
        ("#hashtag", "#hashtag"),
        ("", ""),
    ],
)
def test_escape(text: str, escaped: str) -> None:
    assert escape(text) == escaped


@given(st.text())
def test_escaping_adds_only_backslashes_that_teams_removes(text: str) -> None:
    assert shown(escape(text)) == text


@pytest.mark.parametrize(
    ("url", "label", "markdown"),
    [
        (
            "https://dev.azure.com/contoso/ml/_build?buildId=412",
            "Run #412",
            "[Run #412](https://dev.azure.com/contoso/ml/_build?buildId=412)",
        ),
        ("https://x.example/a b)(c", "a [b] *c*", r"[a \[b\] \*c\*](https://x.example/a%20b%29%28c)"),
        ("javascript:alert(1)", "click_me", r"click\_me"),
        ("mailto:ops@contoso.com", "ops", "[ops](mailto:ops@contoso.com)"),
    ],
)
def test_a_link_escapes_its_label_and_keeps_its_url_inside_the_parentheses(url: str, label: str, markdown: str) -> None:
    assert link(url, label) == markdown


def test_only_web_and_mail_addresses_open() -> None:
    assert opens("https://a.example") and opens("HTTP://a.example") and opens("mailto:a@b.example")
    assert not opens("javascript:alert(1)") and not opens("file:///etc/passwd") and not opens("/relative")


@pytest.mark.parametrize(
    ("text", "markdown"),
    [
        ("Subscribed.", "Subscribed."),
        ("**model_x** is *new*", r"**model\_x** is \*new\*"),
        ("Usage: `retrain <model> [data=…]`", "Usage: `retrain <model> [data=…]`"),
        ("[Run #412](https://a.example/r?id=412) by _Bob_", r"[Run #412](https://a.example/r?id=412) by \_Bob\_"),
        ("[x](javascript:alert(1))", r"\[x\]\(javascript:alert\(1\)\)"),
        ("** not bold **", r"\*\* not bold \*\*"),
    ],
)
def test_a_reply_keeps_the_cores_markup_and_escapes_the_rest(text: str, markdown: str) -> None:
    assert message(text) == markdown
