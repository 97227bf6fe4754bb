"""Reading a configuration file into a YAML document, refusing what YAML alone would let through.

A key written twice in one mapping is a problem (YAML keeps the last silently, which can drop a
restriction written first); a file that is not UTF-8 is named as such rather than failing on a byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.config_problems import ConfigError, ConfigProblem


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader; composing and constructing are called separately to look at the nodes between.
    A date stays the text it was written as (no setting takes a date; a tag's value may look like one, and
    ``2024-02-30`` would not even read)."""


_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass
class ConfigDocument:
    """A configuration file as YAML reads it, with what YAML alone does not keep: the keys written twice
    and the line of every key (by key path, such as ``server.port``; the last copy of a key written twice)."""

    content: Any
    duplicate_keys: list[ConfigProblem] = field(default_factory=list)
    key_lines: dict[str, int] = field(default_factory=dict)


def read_document(path: Path) -> ConfigDocument:
    """The parsed document of ``path``; raises :class:`ConfigError` when it cannot be read or is not YAML."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(source, [ConfigProblem("", "cannot read the file: it is not UTF-8")]) from None
    except OSError as exc:
        raise ConfigError(source, [ConfigProblem("", f"cannot read the file: {exc.strerror}")]) from None
    loader = _ConfigLoader(text)
    try:
        node = loader.get_single_node()
        document = ConfigDocument(None)
        if node is not None:
            document.duplicate_keys = _duplicate_keys(node, "", document.key_lines)
            document.content = loader.construct_document(node)
            if (looped := _inside_itself(document.content, "", set())) is not None:
                said = "an alias names the value it is in (`&a [*a]`), which never ends"
                raise ConfigError(source, [ConfigProblem(looped, said)])
    except ValueError as exc:  # a value YAML's own constructors refuse (an explicit !!timestamp that is no date)
        raise ConfigError(source, [ConfigProblem("", f"not valid YAML ({exc})")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        hint = _reference_hint(text, mark.line) if mark else ""
        raise ConfigError(source, [ConfigProblem("", f"{where}not valid YAML ({problem}){hint}")]) from None
    finally:
        loader.dispose()
    return document


def _inside_itself(value: Any, path: str, holding: set[int]) -> str | None:
    """The key path of the first mapping or list that contains itself (through an alias); None if none does."""
    if not isinstance(value, dict | list):
        return None
    if id(value) in holding:
        return path or "(the document)"
    holding.add(id(value))
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        where = f"{path}[{key}]" if isinstance(value, list) else (f"{path}.{key}" if path else str(key))
        if (found := _inside_itself(item, where, holding)) is not None:
            return found
    holding.discard(id(value))
    return None


def _duplicate_keys(
    node: yaml.Node, path: str, key_lines: dict[str, int], seen: set[int] | None = None
) -> list[ConfigProblem]:
    """Every key written again in the same mapping, at its key path, with the lines of both; notes the line
    of every key in ``key_lines`` on the way."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias of a node already looked at
        return []
    seen.add(id(node))
    problems: list[ConfigProblem] = []
    if isinstance(node, yaml.MappingNode):
        first_lines: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            where = f"{path}.{key.value}" if path else str(key.value)
            line = key.start_mark.line + 1
            key_lines[where] = line  # a later copy wins, as it does in the document
            if (first := first_lines.get((key.tag, key.value))) is not None:
                problems.append(ConfigProblem(where, f"duplicate key (line {line}; first at line {first})"))
            else:
                first_lines[(key.tag, key.value)] = line
            problems.extend(_duplicate_keys(value, where, key_lines, seen))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems.extend(_duplicate_keys(item, f"{path}[{i}]", key_lines, seen))
    return problems


def _reference_hint(text: str, line: int) -> str:
    """A hint for the line a YAML error is on, when it holds a ``${NAME}``: inside ``{ }`` or ``[ ]`` YAML
    reads its braces as a mapping of its own."""
    lines = text.splitlines()
    if line < len(lines) and "${" in lines[line]:
        return '; a ${NAME} inside { } or [ ] must be quoted, as in password: "${NAME}"'
    return ""
