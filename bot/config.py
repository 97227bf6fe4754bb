"""Handoff's configuration: one YAML file, validated into typed settings.

Secrets never live in the file. A secret field holds a reference to an environment variable,
``${SLACK_SIGNING_SECRET}``, and is read into a :class:`Secret` that never prints its value. Other
strings may use ``${NAME}`` or ``${NAME:-default}`` too (a database URL with a password, a public URL).

:func:`load_settings` reports **every** problem at once, each with its key path, so that
``handoff check`` can list them all; a configured integration whose secret variable is unset is one
of those problems (fail closed), except for the commands that use no secret (``slack-manifest``,
``teams-package``, ``audit``, ``db upgrade``), which load with ``require_secrets=False``. Reading the
file (UTF-8, keys written twice) is :mod:`bot.config_yaml`; the names a document uses and the files it
points to are checked in :mod:`bot.config_references`.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import parse_qs, quote, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.config_problems import ConfigError as ConfigError
from bot.config_problems import ConfigProblem as ConfigProblem
from bot.config_problems import closest, masked_url
from bot.config_problems import did_you_mean as _did_you_mean
from bot.config_references import missing_file_problems, reference_problems
from bot.config_yaml import read_document
from bot.run_reasons import KINDS_WITH_REASON, reason_problem
from bot.text_patterns import compile_text_pattern

_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# a number of seconds, or one or more amounts with their units (``4h``, ``1h30m``, ``1d 12h``, any case)
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")
_DURATION = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w)\s*)+$", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Secret:
    """A secret read from an environment variable. ``str()`` and ``repr()`` never show the value."""

    __slots__ = ("_value", "variable")

    def __init__(self, variable: str, value: str | None) -> None:
        self.variable = variable
        self._value = value

    @property
    def is_set(self) -> bool:
        return bool(self._value)

    def reveal(self) -> str:
        """The secret's value; raises if the variable was not set."""
        if not self._value:
            raise LookupError(f"environment variable {self.variable} is not set")
        return self._value

    def __repr__(self) -> str:
        return f"Secret(${{{self.variable}}})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.variable == self.variable

    def __hash__(self) -> int:
        return hash(self.variable)


def _environ(info: ValidationInfo) -> Mapping[str, str]:
    context = info.context if isinstance(info.context, Mapping) else {}
    environ = context.get("environ")
    return environ if isinstance(environ, Mapping) else os.environ


def _to_secret(value: Any, info: ValidationInfo) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str) or not (match := _REFERENCE.match(value.strip())):
        raise ValueError("secrets are read from the environment: write a reference such as ${MY_SECRET}, not the value")
    variable = match.group(1)
    return Secret(variable, _environ(info).get(variable) or None)


def parse_duration(value: Any) -> timedelta:
    """``30s``, ``15m``, ``4h``, ``7d``, ``2w``, several of them together (``1h30m``, as Handoff writes 90
    minutes), in any case (``4H``), or a number of seconds; at most :data:`MAX_DURATION`."""
    if isinstance(value, timedelta):
        return _bounded(value.total_seconds())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _bounded(value)
    if isinstance(value, str) and (match := _SECONDS.match(value)):
        return _bounded(float(match.group(1)))
    if isinstance(value, str) and _DURATION.match(value):
        parts = _DURATION_PART.findall(value)
        return _bounded(sum(float(amount) * _DURATION_UNITS[unit.lower()] for amount, unit in parts))
    raise ValueError("expected a duration such as 30s, 15m, 4h, 1h30m, 7d or a number of seconds")


MAX_DURATION = timedelta(days=36500)
"""The longest duration anything takes (100 years): dates beyond it are past what a date can hold."""


def _bounded(seconds: float) -> timedelta:
    if not abs(seconds) <= MAX_DURATION.total_seconds():  # (NaN and infinity are refused too)
        raise ValueError("a duration is at most 36500d (100 years)")
    return timedelta(seconds=seconds)


SecretRef = Annotated[
    Secret, BeforeValidator(_to_secret), PlainSerializer(lambda s: f"${{{s.variable}}}", return_type=str)
]
Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(lambda d: d.total_seconds(), return_type=float)
]

_HTTP_URL = re.compile(r"^https?://[^/\s]+")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def https_url(value: str | None) -> str | None:
    """An absolute https URL as it is; plain http only for a host on this machine (an emulator, the demo),
    since what goes there (a token, a password, a signed request, a link people open) would otherwise cross
    the network in the clear. A ValueError for anything else (a host without its scheme, a path)."""
    if value is None:
        return None
    if not _HTTP_URL.match(value):
        raise ValueError("expected an absolute URL starting with https:// (or http:// for an emulator)")
    if value.startswith("http://"):
        try:
            host = urlsplit(value).hostname or ""
        except ValueError:  # an unclosed [ of an IPv6 address
            host = ""
        if not is_loopback_host(host):
            raise ValueError(
                "must be https (plain http only for an emulator on this machine: 127.0.0.1, ::1 or localhost)"
            )
    return value


HttpUrl = Annotated[str, AfterValidator(https_url)]
"""A URL Handoff sends credentials to or shows: https, or http to this machine only."""


def _positive(value: timedelta | None) -> timedelta | None:
    if value is not None and value <= timedelta(0):
        raise ValueError("must be longer than 0")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must not be negative")
    return value


NonNegativeDuration = Annotated[Duration, AfterValidator(_not_negative)]

# How long a sender's event id is remembered at least, a finished delivery, and a card no longer updated.
MIN_DEDUPE_RETENTION = timedelta(hours=72)
RETENTION_MINIMUMS = {
    "dedupe_retention": (MIN_DEDUPE_RETENTION, "72h, so that a sender's late redelivery is still recognised"),
    "delivery_retention": (timedelta(hours=1), "1h"),
    "card_retention": (timedelta(days=7), "7d, so that a run's card outlives the run and the reruns of its stages"),
    "audit_retention": (timedelta(days=30), "30d, so that a month of decisions and commands can be looked back on"),
}

# The shortest and longest repeat limit a subscription may have.
MIN_REPEAT_LIMIT = timedelta(minutes=1)
MAX_REPEAT_LIMIT = timedelta(hours=24)


class Section(BaseModel):
    """Base of every settings section: unknown keys are errors, values are immutable, and a number where
    text goes is that text (``pinned_version: 8``, ``params: {epochs: 10}``: YAML reads them as numbers)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, coerce_numbers_to_str=True)


class Integration(Section):
    """A section for an outside service; ``enabled: false`` keeps it in the file but unused."""

    enabled: bool = True


# --- server and store -------------------------------------------------------------------------------


HOOK_TIMEOUT = timedelta(seconds=10)
SENDERS_GIVE_UP = timedelta(seconds=30)  # Event Grid then counts a delivery as failed, whatever the answer


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(3978, ge=0, le=65535)
    public_url: HttpUrl | None = None
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    shutdown_timeout: NonNegativeDuration = timedelta(seconds=5)
    hook_timeout: PositiveDuration = Field(
        HOOK_TIMEOUT,
        description="how long an Azure DevOps or Event Grid hook waits for its events to be stored; past it, it is "
        "answered 503 with Retry-After and delivered again",
    )

    @field_validator("hook_timeout")
    @classmethod
    def _answered_before_senders_give_up(cls, value: timedelta) -> timedelta:
        if value >= SENDERS_GIVE_UP:
            raise ValueError("must be under 30s: Event Grid stops waiting for an answer at 30 s")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url_without_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value


class StoreSettings(Section):
    url: str = "sqlite:///.handoff/handoff.db"
    dedupe_retention: Duration = MIN_DEDUPE_RETENTION
    delivery_retention: Duration = timedelta(days=14)
    card_retention: Duration = Field(
        timedelta(days=90),
        description="how long a card no longer updated, and a decided gate, are kept; a later event posts a new card",
    )
    audit_retention: Duration | None = Field(
        None, description="how long an audit log entry is kept; unset, the audit log is kept for good"
    )

    @field_validator("dedupe_retention", "delivery_retention", "card_retention", "audit_retention")
    @classmethod
    def _long_enough(cls, value: timedelta | None, info: ValidationInfo) -> timedelta | None:
        least, why = RETENTION_MINIMUMS[str(info.field_name)]
        if value is not None and value < least:
            raise ValueError(f"must be at least {why}")
        return value

    @field_validator("url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgres|postgresql)(\+\w+)?://", value):
            raise ValueError("expected a sqlite:///path or postgresql://user@host/db URL")
        if value.startswith("sqlite"):
            _check_sqlite_url(value)
        else:
            try:
                _check_postgres_url(value)
            except ValueError as error:  # named, so that the user sees which URL (its password masked)
                raise ValueError(f"{masked_url(value)}: {error}") from None
            _check_postgres_parameters(parse_qs(urlsplit(value).query))
        return value


def _check_sqlite_url(url: str) -> None:
    """A SQLite store is a file: an in-memory database (``sqlite://``, ``:memory:``) would lose everything."""
    parts = urlsplit(url)
    if parts.netloc:
        raise ValueError("a SQLite URL has no host: sqlite:///relative/path.db or sqlite:////absolute/path.db")
    database = parts.path.removeprefix("/")
    if not database or database == ":memory:" or "mode=memory" in parts.query:
        raise ValueError(
            "a SQLite URL needs a file path, such as sqlite:///.handoff/handoff.db "
            "(an in-memory database loses everything when Handoff stops)"
        )


# What RFC 3986 lets a URL's user name and password hold as they are; anything else is percent-encoded.
_USERINFO = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*$")


def _check_postgres_url(url: str) -> None:
    """The user, password and port of a PostgreSQL URL can be told apart (the messages never show them:
    the password may be one)."""
    parts = urlsplit(url)
    userinfo, at, host_port = parts.netloc.rpartition("@")
    port = host_port.rpartition("]")[2] if host_port.startswith("[") else host_port
    port = port.partition(":")[2]
    bad_port = bool(port) and not port.isdigit()
    # an unencoded "/", "?" or "#" in the password ends the host part early, leaving its "@" behind
    cut_short = not at and ("@" in parts.path or (bad_port and "@" in url.partition("://")[2]))
    if cut_short or not _USERINFO.match(userinfo):
        part = "password" if ":" in (userinfo or parts.netloc) else "user name"
        raise ValueError(
            f"the {part} must be percent-encoded (@ as %40, / as %2F, ? as %3F, # as %23, % as %25); "
            "a ${VARIABLE} there is encoded for you"
        )
    if bad_port:
        raise ValueError("the port must be a number")


SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _check_postgres_parameters(parameters: Mapping[str, list[str]]) -> None:
    """The libpq parameters whose values can be checked before connecting (the server checks the rest)."""
    for mode in parameters.get("sslmode", []):
        if mode not in SSL_MODES:
            raise ValueError(f"sslmode must be one of {', '.join(SSL_MODES)}, not {mode!r}")
    for timeout in parameters.get("connect_timeout", []):
        connect_timeout_seconds(timeout)


def connect_timeout_seconds(value: str) -> float:
    """libpq's ``connect_timeout`` in seconds; a ValueError naming it when it is not a number of seconds."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # (also refuses NaN)
        raise ValueError(f"connect_timeout must be a number of seconds, not {value!r}")
    return seconds


# --- chat platforms ---------------------------------------------------------------------------------


class SlackOAuthSettings(Section):
    client_id: str
    client_secret: SecretRef
    scopes: list[str] = Field(
        default_factory=lambda: [
            "chat:write",
            "chat:write.public",
            "commands",
            "app_mentions:read",
            "users:read",
            "users:read.email",
            "channels:history",
            "groups:history",
            "im:history",
            "mpim:history",
            "channels:read",  # (for the events that say Handoff was removed from a channel, or it was archived)
            "groups:read",
        ]
    )


class SlackSettings(Integration):
    signing_secret: SecretRef
    bot_token: SecretRef | None = None
    oauth: SlackOAuthSettings | None = None
    api_base_url: HttpUrl = "https://slack.com/api/"

    @model_validator(mode="after")
    def _one_install_mode(self) -> SlackSettings:
        if self.bot_token is None and self.oauth is None:
            raise ValueError("set bot_token (one workspace) or oauth (distribution to several workspaces)")
        return self


class TeamsGraphSettings(Section):
    """Microsoft Graph, read for one thing: a card whose post Teams took but whose answer was lost.

    With ``find_lost_posts`` on, the outbox looks for such a post in the channel (or group chat) before it
    posts again, so the card is not shown twice. It needs the app's resource-specific consent to read
    messages (``ChannelMessage.Read.Group``, ``ChatMessage.Read.Chat``: ``handoff teams package`` puts them
    in the app manifest) and a token for the bot's app id from ``login_url``.
    """

    find_lost_posts: bool = False
    api_url: HttpUrl = "https://graph.microsoft.com/v1.0"  # gets the bot's tokens
    login_url: HttpUrl = "https://login.microsoftonline.com"  # gets the bot's secret

    @field_validator("api_url", "login_url")
    @classmethod
    def _without_slash(cls, value: str) -> str:
        return value.rstrip("/")


class TeamsSettings(Integration):
    app_id: str = ""
    app_password: SecretRef | None = None
    app_type: Literal["MultiTenant", "SingleTenant", "UserAssignedMSI"] = "MultiTenant"
    tenant_id: str | None = None
    allow_unauthenticated: bool = False
    openid_metadata_url: HttpUrl | None = None
    graph: TeamsGraphSettings = TeamsGraphSettings()

    @field_validator("app_id")
    @classmethod
    def _app_id_is_a_guid(cls, value: str) -> str:
        if value and not _GUID.match(value.strip()):
            raise ValueError(
                "expected the Azure Bot's Microsoft App ID, a GUID such as 5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b "
                "(or empty, with allow_unauthenticated: true, for local use)"
            )
        return value

    @model_validator(mode="after")
    def _credentials_fit_app_type(self) -> TeamsSettings:
        if not self.app_id and not self.allow_unauthenticated:
            raise ValueError(
                "set app_id (and app_password) from the Azure Bot registration; an empty app_id turns "
                "request authentication off and needs allow_unauthenticated: true (local use only)"
            )
        if self.app_id and self.allow_unauthenticated:
            # with an app_id, requests are authenticated whatever it says: refuse it rather than let it mislead
            raise ValueError(
                "allow_unauthenticated: true is for local use with an empty app_id; with an app_id set, "
                "requests are always authenticated: remove allow_unauthenticated"
            )
        if self.app_id and self.app_type != "UserAssignedMSI" and self.app_password is None:
            raise ValueError(f"app_type {self.app_type} needs app_password")
        if self.app_type in ("SingleTenant", "UserAssignedMSI") and not self.tenant_id:
            raise ValueError(f"app_type {self.app_type} needs tenant_id")
        if self.graph.find_lost_posts and self.app_id and self.app_type == "UserAssignedMSI":
            raise ValueError("graph.find_lost_posts needs the bot's app_password; UserAssignedMSI has none")
        return self


# --- Azure ------------------------------------------------------------------------------------------


class ServicePrincipalSettings(Section):
    tenant_id: str
    client_id: str
    client_secret: SecretRef


class ServiceHookBasicAuth(Section):
    username: str
    password: SecretRef


class ServiceHookHeaderAuth(Section):
    name: str = "X-Handoff-Token"
    value: SecretRef


class ServiceHookAuth(Section):
    """How Azure DevOps service hooks prove they are ours: basic auth and/or a shared header."""

    basic: ServiceHookBasicAuth | None = None
    header: ServiceHookHeaderAuth | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> ServiceHookAuth:
        if self.basic is None and self.header is None:
            raise ValueError("set basic (username, password) or header (name, value): hooks must authenticate")
        return self


class AzureDevOpsSettings(Integration):
    organization_url: HttpUrl
    projects: list[str] = Field(min_length=1)
    pat: SecretRef | None = None
    service_principal: ServicePrincipalSettings | None = None
    service_hooks: ServiceHookAuth

    @model_validator(mode="after")
    def _one_credential(self) -> AzureDevOpsSettings:
        if (self.pat is None) == (self.service_principal is None):
            raise ValueError("set exactly one of pat or service_principal")
        return self


class AzureMLCredentialSettings(Section):
    kind: Literal["default", "service_principal", "managed_identity", "emulator"] = "default"
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretRef | None = None

    @model_validator(mode="after")
    def _service_principal_complete(self) -> AzureMLCredentialSettings:
        if self.kind == "service_principal" and not (self.tenant_id and self.client_id and self.client_secret):
            raise ValueError("kind service_principal needs tenant_id, client_id and client_secret")
        return self


class AzureMLSettings(Integration):
    subscription_id: str
    resource_group: str
    workspace: str
    credential: AzureMLCredentialSettings = AzureMLCredentialSettings()
    endpoint: HttpUrl | None = Field(None, description="an emulator's base URL; the Azure cloud when unset")
    studio_url: HttpUrl = Field(
        "https://ml.azure.com",
        description="Azure ML studio, for the links on cards (a sovereign cloud's, an emulator's)",
    )


class DataLakePath(Section):
    storage_account: str
    filesystem: str
    path: str = ""


class EventGridSettings(Integration):
    delivery_secret: SecretRef
    previous_delivery_secrets: list[SecretRef] = Field(
        default_factory=list,
        description="secrets still accepted while a new delivery_secret rolls out to the subscriptions (Event "
        "Grid drops a delivery answered 401): remove each once no delivery carries it",
    )
    secret_query_parameter: str = "code"  # noqa: S105 (a parameter name)
    secret_header: str = "X-Handoff-Secret"  # noqa: S105 (a header name)
    allowed_topics: list[str] = Field(default_factory=list)
    data_lake_paths: list[DataLakePath] = Field(default_factory=list)
    portal_url: HttpUrl = Field(
        "https://portal.azure.com",
        description="the Azure portal, for the links to new data on cards (a sovereign cloud's, an emulator's)",
    )
    allowed_origins: list[str] = Field(
        default_factory=lambda: ["eventgrid.azure.net"],
        description="the senders (WebHook-Request-Origin) whose CloudEvents handshake Handoff grants: Azure Event "
        "Grid's own; add a sovereign cloud's if its handshake is refused, or \"*\" for any",
    )

    @field_validator("allowed_origins")
    @classmethod
    def _host_names(cls, origins: list[str]) -> list[str]:
        cleaned = [origin.strip() for origin in origins]
        if not cleaned or not all(cleaned):
            raise ValueError('list the senders\' host names (eventgrid.azure.net), or "*" for any')
        return cleaned


# --- who, where, what -------------------------------------------------------------------------------


class ChannelSettings(Section):
    """A named conversation, on Slack and/or Teams."""

    slack: str | None = Field(None, description="Slack channel id, e.g. C0123ABCD")
    teams: str | None = Field(None, description="Teams channel conversation id, e.g. 19:...@thread.tacv2")
    description: str = ""

    @model_validator(mode="after")
    def _somewhere(self) -> ChannelSettings:
        if not self.slack and not self.teams:
            raise ValueError("a channel needs a slack channel id, a teams conversation id, or both")
        return self


EventKind = Literal[
    "run",
    "stage",
    "approval",
    "release",
    "code_pushed",
    "pull_request",
    "model_registered",
    "model_deployed",
    "training_run",
    "data_drift",
    "data_arrived",
]

# Kinds whose events have no success or failure. An outcome filter keeps them out, unless the subscription
# names them in ``events``: ``events=run,model_registered outcomes=failed`` is failed runs and every new model,
# while ``outcomes=failed`` alone is failures only.
KINDS_WITHOUT_OUTCOME = frozenset({"model_registered", "model_deployed", "data_arrived", "code_pushed"})


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def _actor_email(identity: str) -> str:
    if not _EMAIL.match(identity.strip()):
        raise ValueError("expected an email; a bare name matches nobody")
    return identity


ActorEmail = Annotated[str, AfterValidator(_actor_email)]
"""Who caused an event, as an actor filter names them: an email (``me`` is typed in chat, and stands for the
email of whoever subscribes)."""


def _run_reason(name: str) -> str:
    if (problem := reason_problem(name)) is not None:
        raise ValueError(problem)
    return name


RunReason = Annotated[str, AfterValidator(_run_reason)]
"""Why a run started, as a ``reasons`` filter names it: manual, ci, pr, schedule, resource, or Azure DevOps' own
name (``individualCI``, ``pullRequest``…), in any case (see :mod:`bot.run_reasons`)."""


class SubscriptionFilters(Section):
    """Which events a subscription takes. Every filter narrows; an empty filter matches everything."""

    events: list[EventKind] = Field(default_factory=list)
    outcomes: list[Literal["succeeded", "failed", "canceled", "pending", "any"]] = Field(default_factory=list)
    projects: list[str] = Field(default_factory=list)
    pipelines: list[str] = Field(default_factory=list)
    branches: list[str] = Field(default_factory=list)
    stages: list[str] = Field(default_factory=list)
    environments: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    # why a run started: runs, their stages and their approvals only (manual, ci, pr, schedule, resource…)
    reasons: list[RunReason] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    actors_include: list[ActorEmail] = Field(default_factory=list)
    actors_exclude: list[ActorEmail] = Field(default_factory=list)
    text_include: list[str] = Field(default_factory=list)
    text_exclude: list[str] = Field(default_factory=list)
    # at most one new card per repeat key (the same pipeline failing again, ...) in this long; the repeats
    # become thread replies under that card
    repeat_limit: Duration | None = None
    # compact: cards without their facts and stage list (title, status, summary, links and buttons)
    card_format: Literal["full", "compact"] | None = None
    # a thread reply that reports a failure or a breaking change under a card posted earlier is also shown
    # in the channel (Slack's "Also send to channel"); on unless set to false
    broadcast: bool | None = None
    # a failure's reply @mentions the person who asked for the run, a waiting gate's card its approvers; false
    # names them without a mention
    mentions: bool | None = None

    @field_validator("text_include", "text_exclude")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            compile_text_pattern(pattern)
        return patterns

    @field_validator("repeat_limit")
    @classmethod
    def _repeat_limit_in_range(cls, limit: timedelta | None) -> timedelta | None:
        if limit is not None and not MIN_REPEAT_LIMIT <= limit <= MAX_REPEAT_LIMIT:
            raise ValueError("a repeat limit is between 1m and 24h")
        return limit


class SubscriptionSettings(SubscriptionFilters):
    """Which events go to a channel."""

    channel: str
    # the subscription sends nothing until then (a card it showed is kept current, silently); an ISO time with
    # its offset, such as 2026-12-01T09:00:00Z or 2026-12-01T10:00:00+01:00
    muted_until: datetime | None = None

    @field_validator("muted_until", mode="before")
    @classmethod
    def _muted_until_is_written_as_a_time(cls, value: Any) -> Any:
        # a number is no time here: YAML reads an unquoted 17:00 as 1020 (base 60), which would be a moment of 1970
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError(
                f"{value!r} is no date and time: write one in ISO form with its offset, such as "
                "2026-12-01T17:00:00+01:00 or 2026-12-01T16:00:00Z (a time of day alone, such as 17:00, is for "
                "`mute … until=` in chat)"
            )
        return value

    @field_validator("muted_until")
    @classmethod
    def _muted_until_says_its_offset(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError(
                f"{value.isoformat()} says no time zone: add Z for UTC, or an offset such as +01:00 "
                f"({value.isoformat()}Z)"
            )
        return value

    @field_validator("models", "outcomes", "reasons")
    @classmethod
    def _filter_means_something(cls, value: list[str], info: ValidationInfo) -> list[str]:
        """What chat refuses as matching nothing or meaning nothing (a model's version in ``models``, outcomes
        of kinds that have none, reasons of kinds without a run) is a problem of the configuration file too, at the
        filter's key."""
        key = info.field_name or ""
        for named, problem in _meaningless_filters({"events": info.data.get("events") or [], key: value}):
            if named == key:
                raise ValueError(problem.removeprefix(f"`{key}`: "))
        return value


def subscription_filter_problems(filters: Mapping[str, Any]) -> list[str]:
    """What is wrong with filters typed in chat (``subscribe events=run outcomes=failed``), one line each,
    naming the filter; empty when they can be used."""
    try:
        SubscriptionFilters.model_validate(filters)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            key = str(item["loc"][0]) if item["loc"] else ""
            if item["type"] == "extra_forbidden":
                problems.append(f"`{key}` is not a filter{_did_you_mean(key, SubscriptionFilters.model_fields)}")
            elif item["type"] in ("bool_parsing", "bool_type"):
                problems.append(f"`{key}` takes on or off, not `{item['input']}`")
            elif item["type"] == "literal_error" and key in SubscriptionFilters.model_fields:
                choices = _literals(SubscriptionFilters.model_fields[key].annotation)
                close = difflib.get_close_matches(str(item["input"]), choices, n=1, cutoff=0.6)
                hint = f"; did you mean `{close[0]}`?" if close else ""
                problems.append(f"`{key}`: `{item['input']}` is not one of {', '.join(choices)}{hint}")
            elif key in ("actors_include", "actors_exclude") and len(item["loc"]) > 1:
                problems.append(
                    f"`{key}`: `{item['input']}` is a bare name, which matches nobody: "
                    "write their email, or me for yourself"
                )
            else:
                problems.append(f"`{key}`: {item['msg'].removeprefix('Value error, ')}")
        return problems
    return [problem for _, problem in _meaningless_filters(filters)]


def _meaningless_filters(filters: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Filters of the right shape that would match nothing, or mean nothing: (the filter, what is wrong, as
    chat says it)."""
    found = []
    if versioned := [m for m in filters.get("models") or () if ":" in str(m)]:
        # (a model's events name it without its version: such a filter would match nothing)
        name = str(versioned[0]).partition(":")[0] or "model-x"
        found.append(
            ("models", f"`models`: `{versioned[0]}` names a version; `models` takes model names, such as {name}")
        )
    included = {str(a).lower() for a in filters.get("actors_include") or ()}
    if included and included <= {str(a).lower() for a in filters.get("actors_exclude") or ()}:
        # (whoever did an event, one filter or the other leaves it out)
        named = ", ".join(sorted(included))
        found.append(
            (
                "actors_exclude",
                f"`actors_include` and `actors_exclude` both name {named}, so nothing would ever come. "
                "Leave one of them out",
            )
        )
    tag_keys: dict[str, list[str]] = {}
    for key in filters.get("tags") or {}:
        tag_keys.setdefault(str(key).lower(), []).append(str(key))
    for keys in tag_keys.values():
        if len(keys) > 1:
            # (tag names are matched in any case: both values would have to hold for one tag)
            said = " and ".join(f"`tags.{key}`" for key in keys)
            found.append(("tags", f"{said} name the same tag (tag names go without case): give it once"))
    events, outcomes = list(filters.get("events") or ()), list(filters.get("outcomes") or ())
    if events and outcomes and "any" not in outcomes and set(events) <= KINDS_WITHOUT_OUTCOME:
        # (each such event would be sent whatever the outcomes say: the filter would mean nothing)
        found.append(
            (
                "outcomes",
                f"`outcomes={','.join(outcomes)}` never applies to {', '.join(events)}: "
                f"{'it has' if len(events) == 1 else 'they have'} no outcome, so every one would be sent. Leave "
                "`outcomes` out, or add a kind that has one, such as run",
            )
        )
    reasons = list(filters.get("reasons") or ())
    if events and reasons and not KINDS_WITH_REASON.intersection(events):
        # (as with outcomes: each such event would be sent whatever started a run)
        found.append(
            (
                "reasons",
                f"`reasons={','.join(reasons)}` never applies to {', '.join(events)}: "
                f"{'it has' if len(events) == 1 else 'they have'} no run, so every one would be sent. Leave "
                "`reasons` out, or add a kind that has one, such as run",
            )
        )
    return found


class AzureMLJobTarget(Section):
    job_file: str
    params: dict[str, str] = Field(default_factory=dict)


class PipelineTarget(Section):
    project: str
    pipeline: str
    branch: str | None = None
    parameters: dict[str, str] = Field(default_factory=dict)


class RetrainTarget(Section):
    azure_ml_job: AzureMLJobTarget | None = None
    azure_devops_pipeline: PipelineTarget | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RetrainTarget:
        if (self.azure_ml_job is None) == (self.azure_devops_pipeline is None):
            raise ValueError("set exactly one of azure_ml_job or azure_devops_pipeline")
        return self


class PromotionGateSettings(Section):
    release: PipelineTarget
    policy: str = "default"


class ModelSettings(Section):
    retrain: RetrainTarget | None = None
    consumers: list[str] = Field(default_factory=list, description="names of apps that use this model")
    channels: list[str] = Field(default_factory=list)
    promotion_gate: PromotionGateSettings | None = None


_PERSON = re.compile(r"^([^@\s]+@[^@\s]+|(?i:aad):\S+|(slack|teams):\S+)$")


def _person(identity: str) -> str:
    if not _PERSON.match(identity.strip()):
        raise ValueError(
            "expected an email, aad:<object id>, slack:<user id> or teams:<user id>; a bare name matches nobody"
        )
    return identity


PersonIdentity = Annotated[str, AfterValidator(_person)]
"""A person as the configuration names them (a role's members, an app's owners): an email, an AAD object id
(``aad:<id>``) or a chat user id (``slack:<id>``, ``teams:<id>``)."""


class AppSettings(Section):
    integration: PipelineTarget
    model: str | None = None
    pinned_version: str | None = None
    channels: list[str] = Field(default_factory=list)
    owners: list[PersonIdentity] = Field(
        default_factory=list, description="who is called on when the app's integration with a new version fails"
    )
    contract_file: str | None = Field(
        None, description="a JSON or YAML file (relative to the configuration's folder): what the app sends"
    )
    contract: dict[str, Any] | list[dict[str, Any]] | None = Field(
        None, description="the same, written here: a JSON schema, an MLflow column list or signature"
    )

    @model_validator(mode="after")
    def _one_contract(self) -> AppSettings:
        if self.contract_file and self.contract is not None:
            raise ValueError("set contract_file or contract, not both")
        return self


class GatePolicySettings(Section):
    approver_roles: list[str] = Field(default_factory=list)
    min_approvers: int = Field(1, ge=1, le=10)
    requester_cannot_approve: bool = True
    reject_needs_reason: bool = True
    expire_after: PositiveDuration = timedelta(hours=72)
    remind_every: PositiveDuration | None = timedelta(hours=4)
    override_roles: list[str] = Field(default_factory=list)


class CommandPolicySettings(Section):
    """Who may run a command and where; empty lists mean anyone, anywhere."""

    roles: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    confirm: bool = False
    confirm_expires: PositiveDuration = timedelta(minutes=5)
    dedupe_window: NonNegativeDuration = timedelta(minutes=10)  # 0: every command starts a run of its own


class RoleSettings(Section):
    """Members are emails, AAD object ids (``aad:<id>``) or chat user ids (``slack:<id>``, ``teams:<id>``),
    the identities a chat user is known by (:attr:`bot.interactions.ChatUser.identities`)."""

    members: list[PersonIdentity] = Field(default_factory=list)
    description: str = ""


class Settings(Section):
    """The whole validated configuration. Read it with :func:`parse_settings` or :func:`load_settings`, which
    also check that every name it uses (a channel, a role, a gate policy, a command) is defined."""

    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    slack: SlackSettings | None = None
    teams: TeamsSettings | None = None
    azure_devops: AzureDevOpsSettings | None = None
    azure_ml: AzureMLSettings | None = None
    eventgrid: EventGridSettings | None = None
    channels: dict[str, ChannelSettings] = Field(default_factory=dict)
    subscriptions: list[SubscriptionSettings] = Field(default_factory=list)
    models: dict[str, ModelSettings] = Field(default_factory=dict)
    apps: dict[str, AppSettings] = Field(default_factory=dict)
    gates: dict[str, GatePolicySettings] = Field(default_factory=lambda: {"default": GatePolicySettings()})
    roles: dict[str, RoleSettings] = Field(default_factory=dict)
    commands: dict[str, CommandPolicySettings] = Field(default_factory=dict)
    ops_channel: str | None = None

    @model_validator(mode="after")
    def _unauthenticated_teams_only_on_this_machine(self) -> Settings:
        if problem := unauthenticated_teams_problem(self, self.server.host):
            raise ValueError(problem)
        return self


def unauthenticated_teams_problem(settings: Settings, host: str) -> str | None:
    """Why ``settings`` may not serve on ``host``: Teams requests unauthenticated (``allow_unauthenticated``)
    would let anyone who reaches that address act as any Teams user (start runs, decide gates); None where
    they may (Teams off or authenticated, or a host only this machine reaches)."""
    teams = settings.teams
    if teams is None or not teams.enabled or not teams.allow_unauthenticated or is_loopback_host(host):
        return None
    return (
        f"teams.allow_unauthenticated: true takes Teams requests from anyone, and {host!r} is reachable from "
        "other machines: it is for local use, on 127.0.0.1, ::1 or localhost (set app_id and app_password "
        "from the Azure Bot registration to serve Teams elsewhere)"
    )


# --- loading ----------------------------------------------------------------------------------------


def _literals(annotation: Any) -> list[str]:
    """The words a field such as ``list[Literal["run", "stage"]] | None`` takes, in their order."""
    if get_origin(annotation) is Literal:
        return [str(arg) for arg in get_args(annotation)]
    return [word for arg in get_args(annotation) for word in _literals(arg)]


def _mentions(annotation: Any, kind: type) -> bool:
    if annotation is kind:
        return True
    return any(_mentions(arg, kind) for arg in getattr(annotation, "__args__", ()) or ())


def _child_schema(model: Any, key: str) -> tuple[Any, bool]:
    """For a key inside ``model``: the schema of its value, and whether it is a secret."""
    if model is None:
        return None, False
    if isinstance(model, _DictOf):
        return model.value, False
    field = model.model_fields.get(key)
    if field is None:
        return None, False
    if _mentions(field.annotation, Secret):
        return None, True
    annotation = field.annotation
    origin = get_origin(annotation)
    inner = _unwrap_model(annotation)
    if origin is dict and inner is not None:
        return _DictOf(inner), False
    return inner, False


@dataclass(frozen=True)
class _DictOf:
    """Schema marker: a mapping of names to sections of ``value``."""

    value: type[BaseModel]


# Where a variable's value is percent-encoded as it is put in: the user name and password of the store URL,
# so that a password variable (PGPASSWORD, as psql reads it) holds the password as it is.
_URL_ENCODED_VARIABLES = {"store.url"}


def _interpolate(
    node: Any,
    environ: Mapping[str, str],
    path: str,
    problems: list[ConfigProblem],
    disabled: bool,
    schema: Any = None,
    secret: bool = False,
    sources: dict[str, str] | None = None,
) -> Any:
    """Expand ``${NAME}`` and ``${NAME:-default}`` in plain strings; secret references stay as they are.

    ``sources`` receives, for each key path whose value was expanded, the text written in the file, so that
    a problem with the value can name where it came from instead of showing it.
    """
    sources = {} if sources is None else sources
    if isinstance(node, dict):
        off = disabled or node.get("enabled") is False
        out = {}
        for key, value in node.items():
            child, is_secret = _child_schema(schema, str(key))
            where = f"{path}.{key}" if path else str(key)
            out[key] = _interpolate(value, environ, where, problems, off, child, is_secret, sources)
        return out
    if isinstance(node, list):
        return [
            _interpolate(v, environ, f"{path}[{i}]", problems, disabled, schema, secret, sources)
            for i, v in enumerate(node)
        ]
    if not isinstance(node, str) or secret or "${" not in node:
        return node
    sources[path] = node
    encoded_until = _userinfo_end(node) if path in _URL_ENCODED_VARIABLES else 0

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            value = environ[name]
        elif default is not None:
            value = default
        else:
            if not disabled:
                problems.append(ConfigProblem(path, f"environment variable {name} is not set"))
            value = ""
        return quote(value, safe="") if match.start() < encoded_until else value

    return _INTERPOLATION.sub(replace, node)


def _userinfo_end(template: str) -> int:
    """Where the user name and password of a URL written with ``${NAME}`` parts end (0 when it has none)."""
    masked = _INTERPOLATION.sub(lambda match: "x" * len(match.group(0)), template)
    scheme_end = masked.find("://")
    if scheme_end < 0:
        return 0
    authority = scheme_end + 3
    authority_end = min((i for c in "/?#" if (i := masked.find(c, authority)) >= 0), default=len(masked))
    return max(masked.rfind("@", authority, authority_end), 0)


def _model_fields(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the section at ``loc`` (for did-you-mean on unknown keys)."""
    schema: Any = Settings
    for part in loc:
        if not isinstance(part, int):
            schema, _ = _child_schema(schema, str(part))
    return list(schema.model_fields) if isinstance(schema, type) and issubclass(schema, BaseModel) else []


def _may_hold_secret(loc: tuple[Any, ...]) -> bool:
    """Whether the value at ``loc`` is a secret, or a section or list that holds one."""
    schema: Any = Settings
    for part in loc:
        if not isinstance(part, int):
            schema, secret = _child_schema(schema, str(part))
            if secret:
                return True
    return _holds_secret(schema, set())


def _holds_secret(schema: Any, seen: set[Any]) -> bool:
    if isinstance(schema, _DictOf):
        schema = schema.value
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)) or schema in seen:
        return False
    seen.add(schema)
    return any(
        _mentions(field.annotation, Secret) or _holds_secret(_unwrap_model(field.annotation), seen)
        for field in schema.model_fields.values()
    )


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "tagged-union")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


# Pydantic's words for a value of the wrong shape, which name its classes, in the words of the file.
_SHAPES = {
    "model_type": "expected a mapping of settings",
    "model_attributes_type": "expected a mapping of settings",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "string_type": "expected text",
}


def _in_our_words(kind: str, message: str, loc: tuple[Any, ...]) -> str:
    """What pydantic says of a value, in the words of the configuration file."""
    if kind == "missing":
        parent = loc[:-1]
        if len(parent) == 1:
            return f"missing (required when {parent[0]} is configured)"
        return f"missing (required in {_format_loc(parent)})" if parent else "missing"
    return _SHAPES.get(kind, message.removeprefix("Value error, "))


def _validation_problems(
    error: ValidationError, sources: Mapping[str, str], key_lines: Mapping[str, int]
) -> list[ConfigProblem]:
    """Pydantic's errors as problems at key paths (an unknown key with its line, when known); a value
    expanded from ``${NAME}`` is named by what the file says (it may be a secret), never shown."""
    problems: list[ConfigProblem] = []
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not str(p).startswith("function-"))
        if item["type"] == "extra_forbidden":
            parent, key = loc[:-1], loc[-1]
            path = _format_loc(loc)
            close = closest(str(key), _model_fields(parent))
            said = [f"line {key_lines[path]}"] if path in key_lines else []
            said += [f"did you mean {close!r}?"] if close is not None else []
            problems.append(ConfigProblem(path, f"unknown key ({'; '.join(said)})" if said else "unknown key"))
            continue
        message = _in_our_words(item["type"], item["msg"], loc)
        path = _format_loc(loc)
        written = sources.get(path)
        if written is not None and item["type"] != "missing":
            message += f" (from {written})"
        elif item["type"] not in ("value_error", "missing") and not _may_hold_secret(loc):
            # (a secret written in the file itself, where a ${NAME} should be, is not shown back)
            message += f" (got {item.get('input')!r})"
        problems.append(ConfigProblem(path, message))
    return problems


def _unset_secrets(node: Any, path: str) -> Iterator[ConfigProblem]:
    """Secrets referenced by enabled sections whose variables are not set."""
    if isinstance(node, Integration) and not node.enabled:
        return
    if isinstance(node, Secret):
        if not node.is_set:
            yield ConfigProblem(path, f"environment variable {node.variable} is not set")
        return
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _unset_secrets(getattr(node, name), f"{path}.{name}" if path else name)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _unset_secrets(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _unset_secrets(value, f"{path}[{i}]")


def parse_settings(
    raw: Any,
    environ: Mapping[str, str] | None = None,
    source: str = "<config>",
    *,
    base_dir: Path | None = None,
    found: list[ConfigProblem] | None = None,
    key_lines: Mapping[str, int] | None = None,
    require_secrets: bool = True,
) -> Settings:
    """Validate an already-parsed YAML document; raise :class:`ConfigError` listing every problem.

    ``base_dir`` is the folder relative job and contract files are read from (when given, a missing one
    is a problem); ``found`` holds problems already found in the file, listed first; ``key_lines`` the line
    of each key path, for the problems to give. With
    ``require_secrets=False`` an unset secret variable is no problem (its :class:`Secret` is simply not set),
    for a command that uses no secret; every other ``${NAME}`` must still be set.
    """
    environ = os.environ if environ is None else environ
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, [*(found or []), ConfigProblem("", "the file must hold a mapping of sections")])
    problems: list[ConfigProblem] = []
    sources: dict[str, str] = {}
    expanded = _interpolate(raw, environ, "", problems, False, Settings, sources=sources)
    unset = {p.path for p in problems}  # an unset variable explains its key's invalid value
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(expanded, context={"environ": environ})
    except ValidationError as exc:
        problems.extend(p for p in _validation_problems(exc, sources, key_lines or {}) if p.path not in unset)
    problems.extend(reference_problems(expanded))
    if base_dir is not None:
        problems.extend(missing_file_problems(expanded, base_dir))
    # unset secrets: in the settings, or in the raw document when validation failed somewhere
    if require_secrets:
        problems.extend(
            _unset_secrets(settings, "") if settings is not None else _unset_secrets_in_raw(expanded, environ)
        )
    problems = [*(found or []), *problems]
    if problems or settings is None:
        raise ConfigError(source, _unique(problems))
    return settings


def _unset_secrets_in_raw(raw: dict[str, Any], environ: Mapping[str, str]) -> Iterator[ConfigProblem]:
    """Unset secret variables, found in the raw document when validation failed elsewhere."""

    def walk(node: Any, path: str, disabled: bool, schema: Any, secret: bool) -> Iterator[ConfigProblem]:
        if isinstance(node, dict):
            off = disabled or node.get("enabled") is False
            for key, value in node.items():
                child, is_secret = _child_schema(schema, str(key))
                yield from walk(value, f"{path}.{key}" if path else str(key), off, child, is_secret)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, f"{path}[{i}]", disabled, schema, secret)
        elif (
            secret
            and not disabled
            and isinstance(node, str)
            and (match := _REFERENCE.match(node.strip()))
            and not environ.get(match.group(1))
        ):
            yield ConfigProblem(path, f"environment variable {match.group(1)} is not set")

    return walk(raw, "", False, Settings, False)


def _unique(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return out


def load_settings(
    path: str | Path, environ: Mapping[str, str] | None = None, *, require_secrets: bool = True
) -> Settings:
    """Read and validate a ``handoff.yaml`` file; raise :class:`ConfigError` listing every problem.

    Relative job and contract files are looked for in the file's folder. ``require_secrets=False`` is for
    commands that use no secret (see :func:`parse_settings`)."""
    path = Path(path)
    document = read_document(path)
    return parse_settings(
        document.content,
        environ,
        str(path),
        base_dir=path.parent,
        found=document.duplicate_keys,
        key_lines=document.key_lines,
        require_secrets=require_secrets,
    )


def configured_secrets(settings: Settings) -> list[str]:
    """The values of every secret that is set, for log redaction."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Secret):
            if node.is_set:
                found.append(node.reveal())
        elif isinstance(node, BaseModel):
            for name in type(node).model_fields:
                walk(getattr(node, name))
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(settings)
    return found
