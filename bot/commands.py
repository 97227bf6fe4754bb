"""The command grammar: ``verb target key=value … flag``, the same on Slack and Teams.

The command table is the single source of the grammar, the help text and the examples. Parsing
returns a :class:`ParsedCommand` or raises :class:`UsageError` with a message that says what was
expected (and, for a mistyped verb, what was probably meant).
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from bot.interactions import bold

MAX_COMMAND_LENGTH = 2000
_OPTION = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)(?:\.([^=]+))?=(.*)$", re.DOTALL)


@dataclass(frozen=True)
class CommandSpec:
    """One command: its words, what it takes, and how it is explained."""

    verb: str
    summary: str
    target: str | None = None  # the name of the positional argument, if any
    target_required: bool = False
    extra_targets: int = 0  # further positional arguments (diff takes two)
    options: Mapping[str, str] = field(default_factory=dict)  # key → what it means
    flags: Mapping[str, str] = field(default_factory=dict)
    examples: tuple[str, ...] = ()
    starts_work: bool = False
    aliases: tuple[str, ...] = ()  # other words for the verb (``sub`` for ``subscribe``)
    # what a required target is, said to whoever leaves it out ("a subscription id"), and the command that
    # lists what it takes, if any
    needs: str = ""
    listed_by: str = ""
    # options whose value is a comma-separated list: given twice, their values are combined, and a space after
    # a comma is forgiven (``events=run, approval``); any other option given twice is refused
    lists: frozenset[str] = frozenset()
    # the command whose ``commands:`` roles apply to this one where the configuration gives it no entry of its
    # own (``unsubscribe`` changes what ``subscribe`` made: who may not subscribe may not unsubscribe either)
    roles_of: str = ""

    @property
    def usage(self) -> str:
        parts = [self.verb]
        if self.target:
            target = f"<{self.target}>"
            parts.append(target if self.target_required else f"[{target}]")
            parts.extend(target for _ in range(self.extra_targets))
        parts += [f"[{key}=…]" for key in self.options]
        parts += [f"[{flag}]" for flag in self.flags]
        return " ".join(parts)


# The filters of `subscribe` that take a list of values, in the order subscriptions show them.
LIST_FILTERS = (
    "events",
    "outcomes",
    "projects",
    "pipelines",
    "branches",
    "reasons",
    "stages",
    "models",
    "environments",
    "actors_include",
    "actors_exclude",
)

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        "retrain",
        "Start the retraining job of a model in Azure ML (or its training pipeline).",
        target="model",
        target_required=True,
        options={"data": "the data asset as name:version", "compute": "the compute target"},
        flags={"dry-run": "show what would start, start nothing"},
        examples=(
            "retrain model-x",
            "retrain model-x data=lake-data:8 compute=gpu-cluster",
            "retrain model-x dry-run",
        ),
        starts_work=True,
        needs="the name of a model",
    ),
    CommandSpec(
        "integrate",
        "Run an app's integration pipeline against a model version.",
        target="app",
        target_required=True,
        options={"model": "the model version as name:version", "branch": "the app's branch or ref"},
        examples=("integrate app-y", "integrate app-y model=model-x:8 branch=main"),
        starts_work=True,
        needs="the name of an app",
    ),
    CommandSpec(
        "status",
        "Show a model (versions, consumers, compatibility) or a run.",
        target="model or run",
        examples=("status", "status model-x", "status 1234"),
    ),
    CommandSpec(
        "runs",
        "List the recent runs Handoff started (from chat, or for a new model version); a model's include the "
        "integrations against its versions.",
        target="model or app",
        examples=("runs", "runs model-x", "runs app-y"),
    ),
    CommandSpec(
        "approvals", "List the pending release gates you can decide.", examples=("approvals",), aliases=("pending",)
    ),
    CommandSpec(
        "cancel",
        "Cancel a run Handoff started (`runs` lists them).",
        target="run",
        target_required=True,
        examples=("cancel 1234",),
        starts_work=True,
        needs="a run number",
        listed_by="runs",
    ),
    CommandSpec(
        "diff",
        "Compare the signatures of two model versions.",
        target="model:version",
        target_required=True,
        extra_targets=1,
        examples=("diff model-x:7 model-x:8",),
        needs="two model versions",
    ),
    CommandSpec(
        "subscribe",
        "Send events to this channel: failures, approvals and new models, unless events= or outcomes= say "
        "otherwise; other filters narrow what comes.",
        target="Azure DevOps URL",
        options={
            "events": "comma-separated kinds: run, stage, approval, model_registered, training_run, …",
            "outcomes": "comma-separated: failed, succeeded, canceled, pending, any; kinds without an outcome "
            "(model_registered, data_arrived, code_pushed, model_deployed) come only where events= names them",
            "projects": "Azure DevOps projects, by name or id (a pasted URL sets it)",
            "pipelines": "pipeline name globs",
            "branches": "branch name globs, e.g. main,release/* (a full ref such as refs/pull/* works too)",
            "reasons": "why a run started: manual, ci, pr, schedule, resource (or Azure DevOps' own: individualCI, "
            "pullRequest, …), for runs, their stages and approvals; e.g. manual,schedule hides pull requests and CI",
            "stages": "stage name globs: the stages' own events, their approvals and the runs that failed in them, "
            "e.g. Deploy*; a run named in events= comes while it says no stage (still going), and if it then fails "
            "in another stage its card is kept current quietly (no mention, no reply)",
            "environments": "environment globs, for approvals and classic releases' deployments; a kind named in "
            "events= that has no environment (run, stage) comes anyway",
            "models": "model name globs",
            "tags.<key>": "a glob for the value of a model's (or deployment's) tag, e.g. tags.stage=prod*",
            "actors_include": "only what these people did (emails; me is you), e.g. runs they asked for",
            "actors_exclude": "not what these people did, e.g. me: skip your own runs, registrations and gates",
            "text_include": "only events whose message matches this regular expression (RE2, any case), e.g. gpu|cuda",
            "text_exclude": 'not events whose message matches this one; quote one with spaces: text_exclude="dry run"',
            "repeat_limit": "at most one new card for the same thing in this long, e.g. 30m; repeats go in its thread",
            "card_format": "compact: cards without their facts and stage list; full (the default)",
            "broadcast": "on (the default): a failure in an earlier card's thread shows in the channel too; off",
            "mentions": "on (the default): @mentions who asked for a failed run, and a waiting gate's approvers; off",
        },
        flags={"dry-run": "show which of the events received last the filters would have sent here; subscribe nothing"},
        lists=frozenset(LIST_FILTERS),
        examples=(
            "subscribe",
            "subscribe events=run,approval pipelines=release-*",
            "subscribe models=model-*",
            "subscribe events=run outcomes=failed repeat_limit=1h card_format=compact",
            "subscribe events=run outcomes=failed actors_include=me",
            "subscribe events=run branches=main dry-run",
            "subscribe events=run reasons=manual,schedule",
            "subscribe events=stage,approval stages=Deploy*",
            "subscribe events=model_registered tags.stage=prod* text_exclude=experiment",
        ),
        aliases=("sub",),
    ),
    CommandSpec(
        "unsubscribe",
        "Remove one of this channel's subscriptions.",
        target="id",
        target_required=True,
        examples=("unsubscribe 3",),
        aliases=("unsub",),
        needs="a subscription id",
        listed_by="subscriptions",
        roles_of="subscribe",
    ),
    CommandSpec(
        "mute",
        "Silence one of this channel's subscriptions for a while, or until a time.",
        target="id",
        target_required=True,
        options={
            "for": "how long, e.g. 2h or 1d; an hour where neither for= nor until= is given",
            "until": "when it ends, in your time zone: 17:00 or 5pm (the next one), tomorrow (09:00), a date "
            "(09:00 that day) or a date and time such as 2026-12-01T09:00 (with Z or +01:00, that time anywhere)",
        },
        examples=("mute 3 for=4h", "mute 3 until=17:00", "mute 3 until=tomorrow"),
        needs="a subscription id",
        listed_by="subscriptions",
        roles_of="subscribe",
    ),
    CommandSpec(
        "unmute",
        "End a mute of one of this channel's subscriptions before its time.",
        target="id",
        target_required=True,
        examples=("unmute 3",),
        needs="a subscription id",
        listed_by="subscriptions",
        roles_of="subscribe",
    ),
    CommandSpec(
        "subscriptions",
        "List this channel's subscriptions, with those the configuration file routes here.",
        examples=("subscriptions",),
        aliases=("subs",),
    ),
    CommandSpec(
        "help",
        "Show the commands, or one command in detail.",
        target="command",
        examples=("help retrain",),
        aliases=("?",),
    ),
)
COMMANDS_BY_VERB: Mapping[str, CommandSpec] = {word: spec for spec in COMMANDS for word in (spec.verb, *spec.aliases)}


class UsageError(ValueError):
    """The text is not a valid command; ``message`` says what was expected."""

    def __init__(self, message: str, spec: CommandSpec | None = None, *, option: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.spec = spec
        self.option = option
        """The option (``key=``) the mistake is in, where it is in one."""


@dataclass(frozen=True)
class ParsedCommand:
    spec: CommandSpec
    targets: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()

    @property
    def verb(self) -> str:
        return self.spec.verb

    @property
    def target(self) -> str | None:
        return self.targets[0] if self.targets else None

    @property
    def canonical(self) -> str:
        """The command written in one normal form (for idempotency keys and the audit log)."""
        parts = [self.verb, *self.targets]
        parts += [f"{k}={v}" for k, v in sorted(self.options.items())]
        parts += sorted(self.flags)
        return " ".join(shlex.quote(p) for p in parts)


def _did_you_mean(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return f" Did you mean `{close[0]}`?" if close else ""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` Did you mean `x`?`` naming the choice closest to ``word`` (case aside), or nothing when none is close."""
    by_folded = {_folded(choice): choice for choice in choices}
    close = difflib.get_close_matches(_folded(word), list(by_folded), n=1, cutoff=0.6)
    return f" Did you mean `{by_folded[close[0]]}`?" if close else ""


# the dashes a phone, an editor or a chat client's autocorrect types for a hyphen
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d", "-"))


def _folded(name: str) -> str:
    return name.translate(_DASHES).casefold()


def configured_name(typed: str, names: Iterable[str]) -> str | None:
    """The configured name ``typed`` stands for: itself, else the only one it equals once case and the dash typed
    for a hyphen (``APP-Y``, ``app-y`` typed with a non-breaking hyphen) are set aside; None when none or several do."""
    choices = list(names)
    if typed in choices:
        return typed
    folded = [name for name in choices if _folded(name) == _folded(typed)]
    return folded[0] if len(folded) == 1 else None


def with_configured_target(command: ParsedCommand, names: Iterable[str]) -> ParsedCommand:
    """``command`` naming its target as configured (see :func:`configured_name`), so that the run, its card, its
    idempotency key and the audit log name what the configuration does; as it is when no name matches."""
    typed = command.target
    name = configured_name(typed, names) if typed is not None else None
    if name is None or name == typed:
        return command
    return replace(command, targets=(name, *command.targets[1:]))


def closest_option(spec: CommandSpec, key: str) -> str:
    """`` Did you mean `…`?`` naming the option of ``spec`` closest to ``key`` (or the command it names, as
    ``mute`` does), or nothing when none comes close."""
    typed = key.lower()
    other = COMMANDS_BY_VERB.get(typed)
    if other is not None and other is not spec:
        example = f", such as `{other.examples[0]}`" if other.examples else ""
        return f" Did you mean the command `{other.verb}`{example}?"
    # a family (``tags.<key>``) is compared by its name, and a key typed with a dot (``tag.stage``) only with them
    base, dotted, _ = typed.partition(".")
    family = [option for option in spec.options if not dotted or option.endswith(".<key>")]
    names = {option.removesuffix(".<key>"): option for option in family}
    started = [option for name, option in names.items() if name.startswith(base)]  # `tag` is short for `tags.<key>`
    if started:
        return " Did you mean " + " or ".join(f"`{option}`" for option in started) + "?"
    close = difflib.get_close_matches(base, list(names), n=1, cutoff=0.6)
    return f" Did you mean `{names[close[0]]}`?" if close else ""


_DOUBLE_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"'})
_SINGLE_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'"})


def _words(text: str) -> list[str]:
    """The words of a command, with typographic quotes (as phones and chat apps type them) read as quotes; a
    lone closing single quote is an apostrophe (``bob\u2019s``), as it was typed. Raises ValueError for a quote left
    open."""
    text = text.translate(_DOUBLE_QUOTES)
    try:
        return shlex.split(text.translate(_SINGLE_QUOTES))
    except ValueError:
        return shlex.split(text)


def parse(text: str) -> ParsedCommand:
    """Parse one command; raise :class:`UsageError` saying what was expected."""
    if len(text) > MAX_COMMAND_LENGTH:
        raise UsageError(f"That command is too long (over {MAX_COMMAND_LENGTH} characters).")
    try:
        words = _words(text.strip())
    except ValueError:
        raise UsageError('A quote is not closed. Put quotes around values with spaces: key="two words".') from None
    if not words:
        raise UsageError("Type a command, for example `help`.")
    typed, *rest = words
    verb = typed.lower().lstrip("/")
    spec = COMMANDS_BY_VERB.get(verb)
    if spec is None:  # named as typed: `@Carol Diaz` (a mention the platform's adapter wrote so) as the person saw it
        raise UsageError(f"`{typed.lstrip('/')}` is not a command.{_did_you_mean(verb, COMMANDS_BY_VERB)}")
    targets: list[str] = []
    options: dict[str, str] = {}
    flags: set[str] = set()
    listing = ""  # the list option just typed, which a word after ``,`` or starting with one continues
    for word in rest:
        continues = options[listing].endswith(",") or word.startswith(",") if listing else False
        if listing and continues and not _OPTION.match(word) and word.lower() not in spec.flags:
            options[listing] += word
            continue
        listing = ""
        if match := _OPTION.match(word):
            name, part, value = match.group(1).lower(), match.group(2), match.group(3)
            # ``tags.stage=prod``: an option of the family ``tags.<key>``, its key kept as typed
            key, declared = (f"{name}.{part}", f"{name}.<key>") if part is not None else (name, name)
            if declared not in spec.options:
                known = ", ".join(spec.options) or "none"
                hint = _did_you_mean(declared, spec.options)
                raise UsageError(f"`{spec.verb}` has no option `{key}`.{hint} Options: {known}.", spec, option=key)
            if not value:
                raise UsageError(f"`{key}=` needs a value.", spec, option=key)
            if key in spec.lists:
                options[key] = f"{options[key]},{value}" if key in options else value
                listing = key
            elif key in options:
                raise UsageError(
                    f"`{key}` is given twice (`{key}={options[key]}` and `{key}={value}`); give it once.",
                    spec,
                    option=key,
                )
            else:
                options[key] = value
        elif word.lower() in spec.flags:
            flags.add(word.lower())
        elif spec.target and len(targets) < 1 + spec.extra_targets:
            targets.append(word)
        else:
            raise UsageError(f"Unexpected `{word}`. Usage: `{spec.usage}`.", spec)
    needed = (1 + spec.extra_targets) if spec.target_required else 0
    if len(targets) < needed:
        raise UsageError(_needs(spec), spec)
    return ParsedCommand(spec, tuple(targets), options, frozenset(flags))


MAX_RUN_NUMBER = 10**18 - 1
"""No run is numbered higher (the store's integers go to 2**63 - 1): a higher number names no run."""


def run_number(text: str | None) -> int | None:
    """The run a person means by ``12`` or ``#12`` (as `runs` and the cards number them); None for other text.

    A number no run can have (above :data:`MAX_RUN_NUMBER`) is a run number all the same: one of no run, as
    :func:`may_be_run` tells before anything looks it up.
    """
    digits = (text or "").strip().removeprefix("#")
    return int(digits) if digits.isascii() and digits.isdigit() else None


def may_be_run(number: int) -> bool:
    """Whether a run may have ``number`` (not above :data:`MAX_RUN_NUMBER`); look up only those."""
    return 0 <= number <= MAX_RUN_NUMBER


def _needs(spec: CommandSpec) -> str:
    """What a command typed without its required target needs, with an example, such as: `unsubscribe` needs
    a subscription id, for example `unsubscribe 3` (`subscriptions` lists them)."""
    what = spec.needs or f"a {spec.target}"
    example = f", for example `{spec.examples[0]}`" if spec.examples else f". Usage: `{spec.usage}`"
    lists = f" (`{spec.listed_by}` lists them)" if spec.listed_by else ""
    return f"`{spec.verb}` needs {what}{example}{lists}."


def help_text(refused: Callable[[CommandSpec], str] = lambda _: "", verb: str | None = None) -> str:
    """Help generated from the command table. ``refused`` says why the asking person may not run a command
    ("" when they may): the list hides those, and one command's help says who may run it."""
    if verb is not None:
        spec = COMMANDS_BY_VERB.get(verb.lower().lstrip("/"))
        if spec is None:
            return f"`{verb}` is not a command.{_did_you_mean(verb, COMMANDS_BY_VERB)} Type `help` to see the commands."
        lines = [f"{bold(spec.verb)}: {spec.summary}", f"Usage: `{spec.usage}`"]
        if spec.aliases:
            lines.append("Also: " + ", ".join(f"`{alias}`" for alias in spec.aliases))
        lines += [f"  `{key}=`: {meaning}" for key, meaning in spec.options.items()]
        lines += [f"  `{flag}`: {meaning}" for flag, meaning in spec.flags.items()]
        if spec.lists:
            example = next(key for key in spec.options if key in spec.lists)
            lines.append(
                f"A list given twice adds up (`{example}=a {example}=b` is `{example}=a,b`); any other option is given"
                " once."
            )
        lines += ["Examples:", *(f"  `{example}`" for example in spec.examples)]
        if reason := refused(spec):
            lines.append(f"You can't run it here: {reason}")
        return "\n".join(lines)
    lines = ["Commands (`help <command>` for details):"]
    lines += [f"  `{spec.usage}`: {spec.summary}" for spec in COMMANDS if not refused(spec)]
    return "\n".join(lines)
