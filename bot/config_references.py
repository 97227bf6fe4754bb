"""What a configuration names elsewhere: channels, roles, apps, models, gate policies, commands and files.

These checks read the document as written (after ``${NAME}`` interpolation), not the validated settings,
so that they run in the same pass as the field checks and a broken field elsewhere hides none of them.
A section of the wrong shape is reported by the field checks; what refers into it is not checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bot.commands import COMMANDS, COMMANDS_BY_VERB
from bot.config_problems import ConfigProblem, did_you_mean

DEFAULT_GATE_POLICY = "default"  # always usable: it falls back to the built-in policy when not configured


def _mapping(node: Any) -> Mapping[str, Any]:
    return node if isinstance(node, dict) else {}


def _names(document: Mapping[str, Any], section: str, default: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The names a section defines; None when the section is not a mapping (so references to it go unchecked)."""
    if section not in document:
        return default
    node = document[section]
    return node if isinstance(node, dict) else None


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        yield from (item for item in node if isinstance(item, str))


def reference_problems(document: Mapping[str, Any]) -> list[ConfigProblem]:
    """Every name the document uses that it does not define, at the key path that uses it."""
    channels = _names(document, "channels", {})
    roles = _names(document, "roles", {})
    apps = _names(document, "apps", {})
    models = _names(document, "models", {})
    gates = _names(document, "gates", {DEFAULT_GATE_POLICY: {}})
    problems: list[ConfigProblem] = []

    def need(kind: str, name: Any, known: Mapping[str, Any] | None, where: str) -> None:
        if known is not None and isinstance(name, str) and name not in known:
            problems.append(ConfigProblem(where, f"unknown {kind} {name!r}{did_you_mean(name, known)}"))

    subscriptions = document.get("subscriptions")
    for i, subscription in enumerate(subscriptions if isinstance(subscriptions, list) else []):
        need("channel", _mapping(subscription).get("channel"), channels, f"subscriptions[{i}].channel")
    for name, model in _mapping(document.get("models")).items():
        model = _mapping(model)
        for channel in _strings(model.get("channels")):
            need("channel", channel, channels, f"models.{name}.channels")
        for app in _strings(model.get("consumers")):
            need("app", app, apps, f"models.{name}.consumers")
        policy = _mapping(model.get("promotion_gate")).get("policy")
        if policy != DEFAULT_GATE_POLICY:
            need("gate policy", policy, gates, f"models.{name}.promotion_gate.policy")
    for name, app_settings in _mapping(document.get("apps")).items():
        app_settings = _mapping(app_settings)
        for channel in _strings(app_settings.get("channels")):
            need("channel", channel, channels, f"apps.{name}.channels")
        need("model", app_settings.get("model"), models, f"apps.{name}.model")
    for name, gate in _mapping(document.get("gates")).items():
        for key in ("approver_roles", "override_roles"):
            for role in _strings(_mapping(gate).get(key)):
                need("role", role, roles, f"gates.{name}.{key}")
    for verb, command in _mapping(document.get("commands")).items():
        problems.extend(_command_name_problems(str(verb)))
        command = _mapping(command)
        for role in _strings(command.get("roles")):
            need("role", role, roles, f"commands.{verb}.roles")
        for channel in _strings(command.get("channels")):
            need("channel", channel, channels, f"commands.{verb}.channels")
    need("channel", document.get("ops_channel"), channels, "ops_channel")
    return problems


def _command_name_problems(verb: str) -> list[ConfigProblem]:
    """A rule under ``commands:`` is looked up by the command's full name: any other key would leave the
    command it meant open to anyone."""
    if verb in {spec.verb for spec in COMMANDS}:
        return []
    if (spec := COMMANDS_BY_VERB.get(verb)) is not None:
        hint = f" (did you mean {spec.verb!r}? {verb!r} is its short form; rules use the full name)"
    else:
        hint = did_you_mean(verb, (spec.verb for spec in COMMANDS))
    return [ConfigProblem(f"commands.{verb}", f"unknown command{hint}")]


def missing_file_problems(document: Mapping[str, Any], base_dir: Path) -> list[ConfigProblem]:
    """Job and contract files that are not there; a relative path is read from ``base_dir``, the
    configuration file's folder. Job files are read by Azure ML only, so they count only while it is enabled."""
    problems: list[ConfigProblem] = []

    def need_file(name: Any, where: str) -> None:
        if not isinstance(name, str) or not name:
            return
        path = Path(name) if Path(name).is_absolute() else base_dir / name
        if not path.exists():
            problems.append(ConfigProblem(where, f"file not found ({path})"))
        elif not path.is_file():
            problems.append(ConfigProblem(where, f"not a file ({path})"))

    azure_ml = document.get("azure_ml")
    if isinstance(azure_ml, dict) and azure_ml.get("enabled") is not False:
        for name, model in _mapping(document.get("models")).items():
            job = _mapping(_mapping(_mapping(model).get("retrain")).get("azure_ml_job"))
            need_file(job.get("job_file"), f"models.{name}.retrain.azure_ml_job.job_file")
    for name, app_settings in _mapping(document.get("apps")).items():
        need_file(_mapping(app_settings).get("contract_file"), f"apps.{name}.contract_file")
    return problems
