"""The commands about model versions: ``diff <model>:<a> <model>:<b>`` and ``status [<model>]``.

``diff`` compares the signatures of any two versions; ``status`` shows, per consuming app, the version
it runs and whether the latest version is compatible with it. Both read Azure ML and answer the person
who asked; the comparison is :mod:`bot.contracts`', the same as on the model handoff's cards.
"""

from __future__ import annotations

import asyncio

from bot.chat_handler import ChatHandler
from bot.commands import ParsedCommand, configured_name, did_you_mean, may_be_run, run_number
from bot.config import Settings
from bot.consumers import Consumers
from bot.contracts import ContractError, compare, parse_signature
from bot.handoff_cards import MAX_DIFFERENCES
from bot.interactions import CommandRequest, Reply, bold
from bot.lookups import INTERACTIVE_SECONDS, answered_within
from bot.ports import ModelVersion, ServiceRefused, ServiceUnavailable, Store
from bot.records import CONFIRMATION_KEY_PREFIX
from bot.runner import asker, in_service, standing


def _model_and_version(text: str, default_model: str | None = None) -> tuple[str, str] | None:
    model, sep, version = text.rpartition(":")
    if not sep:
        return (default_model, text) if default_model and text else None
    return (model, version) if model and version else None


class ModelCommands:
    """Adds ``diff`` and ``status`` to a :class:`ChatHandler`."""

    def __init__(self, settings: Settings, store: Store, consumers: Consumers) -> None:
        self.settings = settings
        self.store = store
        self.consumers = consumers
        self.lookup_seconds = INTERACTIVE_SECONDS  # the most an answer waits for Azure ML's reads

    def register(self, chat: ChatHandler) -> None:
        chat.add_command("diff", self.diff)
        chat.add_command("status", self.status)

    async def diff(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        first = _model_and_version(command.targets[0])
        second = _model_and_version(command.targets[1], first[0] if first else None) if first else None
        if first is None or second is None:
            return Reply("Write two versions as model:version, for example `diff model-x:7 model-x:8`.")
        try:
            both = asyncio.gather(self.consumers.version(*first), self.consumers.version(*second))
            old, new = await answered_within(both, "Azure ML", self.lookup_seconds)
        except ServiceRefused as error:
            return Reply(error.reason)
        except ServiceUnavailable as error:
            return Reply(f"Azure ML is not answering, try again in a moment ({error}).")
        labels = f"{first[0]}:{first[1]}", f"{second[0]}:{second[1]}"
        try:
            comparison = compare(parse_signature(old.signature), parse_signature(new.signature), *labels)
        except ContractError as error:
            return Reply(f"A signature could not be read: {error}")
        lines = [f"{labels[0]} → {labels[1]}: {bold(comparison.verdict.value)}"]
        lines += [f"• {text}" for text in comparison.texts] or ["• the signatures are the same"]
        return Reply("\n".join(lines))

    async def status(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        target = command.target
        if target is None:
            return Reply(self._overview())
        if (number := run_number(target)) is not None:
            return await self._run(number)
        if target.startswith("#"):
            return Reply(f"`{target}` is no run number: `status 12` or `status #12` shows run 12 (`runs` lists them).")
        target = configured_name(target, self.settings.models) or target
        if target not in self.settings.models and not self.consumers.of(target):
            known = ", ".join(self.settings.models) or "none configured"
            return Reply(
                f"There is no model called `{target}`.{did_you_mean(target, self.settings.models)} Models: {known}."
            )
        try:
            latest = await answered_within(self.consumers.version(target), "Azure ML", self.lookup_seconds)
            # (what each app runs is read from Azure ML too)
            return Reply(await answered_within(self._model_status(target, latest), "Azure ML", self.lookup_seconds))
        except ServiceRefused as error:
            return Reply(error.reason)
        except ServiceUnavailable as error:
            return Reply(f"Azure ML is not answering, try again in a moment ({error}).")

    def _overview(self) -> str:
        if not self.settings.models:
            return "No models are configured. `status <model>` shows a model that apps consume."
        lines = ["Models (`status <model>` for versions and compatibility):"]
        for name in self.settings.models:
            apps = ", ".join(self.consumers.of(name)) or "no consuming apps"
            lines.append(f"• {name}: {apps}")
        return "\n".join(lines)

    async def _model_status(self, model: str, latest: ModelVersion) -> str:
        label = f"{model}:{latest.version}"
        apps = self.consumers.of(model)
        if not apps:
            return f"The latest version is {label}. No app consumes {model}."
        lines = [f"The latest version of {model} is {latest.version}."]
        for check in await self.consumers.check(model, latest, apps):
            runs = f"v{check.baseline} ({check.baseline_source})" if check.baseline else "no known version"
            if check.baseline == latest.version:
                lines.append(f"• {check.app} runs {runs}: it runs the latest.")
            else:
                shown = "; ".join(check.differences[:MAX_DIFFERENCES]) or "no differences"
                more = (
                    f"; and {len(check.differences) - MAX_DIFFERENCES} more"
                    if len(check.differences) > MAX_DIFFERENCES
                    else ""
                )
                lines.append(f"• {check.app} runs {runs}; {label} is {check.verdict.value}: {shown}{more}")
        return "\n".join(lines)

    async def _run(self, run_id: int) -> Reply:
        run = await self.store.get_command_run(run_id) if may_be_run(run_id) else None
        if run is None or run.idempotency_key.startswith(CONFIRMATION_KEY_PREFIX):
            return Reply(f"Handoff started no run {run_id}. `runs` lists the runs it started.")
        where = in_service(run)
        shown = f" ({where})" if where else ""
        return Reply(f"Run {run.id}{shown}: `{run.command}` by {asker(run)}, {standing(run)}.")
