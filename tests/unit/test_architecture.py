"""The core knows no platform: only the composition root may import adapters or platform SDKs."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

# the composition root, and the command line that hands over to it and to the local demo
COMPOSITION_ROOT = {"bot/app.py", "bot/cli.py"}
FORBIDDEN = (
    "adapters",
    "slack_bolt",
    "slack_sdk",
    "botbuilder",
    "botframework",
    "azure",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "alembic",
    "aiohttp",
)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def core_violations() -> dict[str, list[str]]:
    violations: dict[str, list[str]] = {}
    for path in sorted((REPO_ROOT / "bot").rglob("*.py")):
        relative = path.relative_to(REPO_ROOT).as_posix()
        if relative in COMPOSITION_ROOT:
            continue
        bad = sorted(m for m in imported_modules(path) if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
        if bad:
            violations[relative] = bad
    return violations


def test_core_imports_no_adapter_or_platform_library() -> None:
    assert core_violations() == {}


def test_the_check_itself_catches_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom adapters.sql import SqlStore\nimport slack_sdk.web\nfrom . import x\n")
    assert imported_modules(sample) == {"os", "adapters.sql", "slack_sdk.web"}
