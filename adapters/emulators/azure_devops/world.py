"""The seeded world of the Azure DevOps emulator: organization, identities, pipelines, environments.

The world is the ``azure_devops`` section of a world YAML, given as a dict. Field names follow Azure DevOps
where it has one (``displayName``, ``uniqueName``, ``minRequiredApprovers``, ``requesterCannotBeApprover``,
``executionOrder``, ``instructions``, ``timeout`` in minutes, ``defaultBranch``); the rest are the
emulator's own (``pat``, ``duration`` in seconds, ``result``, ``environment``). ``default_world.yaml`` beside
this module is the documented example. Ids that the YAML leaves out are derived from names, so the same
world always yields the same ids.

A group's ``members`` name identities (id, uniqueName or displayName) and other groups (id or
displayName, before or after it in the list), so groups nest as in Azure DevOps. Whoever is in a group
directly or through nested groups may act for it; a cycle of groups is tolerated (each group in it
contains the others), a group that names itself is refused.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any, Literal

import yaml

WORLD_KEY = "azure_devops"
STAGE_RESULTS = ("succeeded", "succeededWithIssues", "failed", "canceled")
_NAMESPACE = uuid.UUID("5b0c7c5e-4a43-4e43-9d7e-2f6f0a1d0ade")

StageResult = Literal["succeeded", "succeededWithIssues", "failed", "canceled"]


class WorldError(ValueError):
    """The world section is malformed; the message names the offending key."""


def stable_id(*parts: object) -> str:
    """A UUID derived from ``parts``: the same world always gets the same ids."""
    return str(uuid.uuid5(_NAMESPACE, "|".join(str(p) for p in parts)))


@dataclass(frozen=True)
class Identity:
    """A user (or service identity) of the organization; ``pat`` authenticates it over basic auth."""

    id: str
    display_name: str
    unique_name: str
    pat: str | None = field(default=None, repr=False)
    role: str = ""
    is_container: bool = False
    scopes: tuple[str, ...] | None = None  # what its PAT may do; None: full access


@dataclass(frozen=True)
class Group:
    """A group of identities and other groups, usable as an approver.

    Any member, directly or through a nested group, may act on the group's step.
    """

    id: str
    display_name: str
    members: tuple[str, ...] = ()  # ids of the direct members: identities and groups
    description: str = ""

    @property
    def unique_name(self) -> str:
        return f"[{self.display_name}]"

    @property
    def is_container(self) -> bool:
        return True


Principal = Identity | Group


def reachable(start: Principal, step: Callable[[Principal], Iterable[Principal]]) -> tuple[Principal, ...]:
    """Everything ``step`` leads to from ``start``, at any depth: depth first, in order, each once.

    ``start`` itself is left out, and a cycle ends where it meets a principal already seen.
    """
    seen = {start.id}
    found: list[Principal] = []
    pending = list(reversed(tuple(step(start))))
    while pending:
        principal = pending.pop()
        if principal.id in seen:
            continue
        seen.add(principal.id)
        found.append(principal)
        pending.extend(reversed(tuple(step(principal))))
    return tuple(found)


@dataclass(frozen=True)
class Repository:
    """An Azure Repos Git repository of the project."""

    id: str
    name: str
    default_branch: str = "refs/heads/main"


@dataclass(frozen=True)
class ApprovalCheck:
    """The Approval check configured on an environment (``CheckConfiguration.settings``)."""

    id: int
    approvers: tuple[Principal, ...]
    min_required_approvers: int = 1
    requester_cannot_be_approver: bool = False
    execution_order: Literal["anyOrder", "inSequence"] = "anyOrder"
    instructions: str = ""
    timeout_minutes: float = 43200.0


@dataclass(frozen=True)
class Environment:
    """A deployment environment; a stage that targets it waits on its approval check, if any."""

    id: int
    name: str
    approval: ApprovalCheck | None = None


@dataclass(frozen=True)
class StageDef:
    """A stage of a pipeline: ``name`` is the YAML ``stage:`` id, ``display_name`` what people see."""

    name: str
    display_name: str
    duration: float = 3.0
    result: StageResult = "succeeded"
    environment: str | None = None
    job: str = "Job"


@dataclass(frozen=True)
class ParameterDef:
    """A YAML template parameter; one without a default must be given at queue time."""

    name: str
    default: str | None = None
    values: tuple[str, ...] | None = None


@dataclass(frozen=True)
class VariableDef:
    """A pipeline variable; only ``settable`` ones may be overridden when queueing a run."""

    name: str
    value: str = ""
    settable: bool = True


@dataclass(frozen=True)
class PipelineDef:
    """A YAML pipeline (its build definition has the same id)."""

    id: int
    name: str
    stages: tuple[StageDef, ...]
    folder: str = "\\"
    revision: int = 1
    repository: str | None = None
    yaml_path: str = "/azure-pipelines.yml"
    parameters: tuple[ParameterDef, ...] = ()
    variables: tuple[VariableDef, ...] = ()
    trigger_branches: tuple[str, ...] = ()

    def stage(self, name: str) -> StageDef | None:
        """The stage whose name or display name is ``name`` (case-insensitive)."""
        key = name.lower()
        return next((s for s in self.stages if key in (s.name.lower(), s.display_name.lower())), None)


@dataclass(frozen=True)
class WebhookDef:
    """A service-hook subscription seeded from the world."""

    url: str
    event_types: tuple[str, ...] | None = None
    basic: tuple[str, str] | None = None
    header: tuple[str, str] | None = None
    resource_version: str | None = None


@dataclass(frozen=True)
class ReleaseApprovalDef:
    """A classic release approval that already exists when the emulator starts."""

    id: int
    approver: Identity
    release_id: int = 1
    release_name: str = "Release-1"
    definition_id: int = 1
    definition_name: str = "release.CD"
    environment_id: int = 1
    environment_name: str = "Production"
    approval_type: Literal["preDeploy", "postDeploy"] = "preDeploy"


@dataclass(frozen=True)
class World:
    """Everything the emulator starts with."""

    organization: str
    project: str
    project_id: str
    collection_id: str
    account_id: str
    identities: tuple[Identity, ...]
    groups: tuple[Group, ...] = ()
    repositories: tuple[Repository, ...] = ()
    environments: tuple[Environment, ...] = ()
    pipelines: tuple[PipelineDef, ...] = ()
    webhooks: tuple[WebhookDef, ...] = ()
    release_approvals: tuple[ReleaseApprovalDef, ...] = ()
    first_run_id: int = 1
    resource_areas: Literal["empty", "listed"] = "empty"
    _by_pat: dict[str, Identity] = field(default_factory=dict, compare=False, repr=False)
    _by_id: dict[str, Principal] = field(default_factory=dict, compare=False, repr=False)
    # each group's direct members as they stand now: an administrator may add someone while the emulator runs
    _members_now: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    # the scopes each identity's PAT was given, when not all of them (see ``pat_allows``)
    _pat_scopes: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_pat.update({i.pat: i for i in self.identities if i.pat})
        self._by_id.update({p.id.lower(): p for p in self.principals})
        self._members_now.update({g.id.lower(): g.members for g in self.groups})
        self._pat_scopes.update({i.id.lower(): i.scopes for i in self.identities if i.scopes is not None})

    @property
    def principals(self) -> tuple[Principal, ...]:
        """Every identity, then every group."""
        return (*self.identities, *self.groups)

    def identity_for_pat(self, pat: str) -> Identity | None:
        """The identity a personal access token belongs to."""
        return self._by_pat.get(pat)

    def identity(self, ref: str) -> Identity | None:
        """An identity by id, uniqueName or displayName (case-insensitive)."""
        key = ref.lower()
        return next(
            (i for i in self.identities if key in (i.id.lower(), i.unique_name.lower(), i.display_name.lower())),
            None,
        )

    def principal(self, ref: str) -> Principal | None:
        """An identity, or a group by id or displayName."""
        found = self.identity(ref)
        if found is not None:
            return found
        return self.group(ref)

    def group(self, ref: str) -> Group | None:
        """A group by id or displayName (case-insensitive; ``[Name]`` works too)."""
        key = ref.strip("[]").lower()
        return next((g for g in self.groups if key in (g.id.lower(), g.display_name.lower())), None)

    def by_id(self, principal_id: str) -> Principal | None:
        """An identity or group by id (case-insensitive)."""
        return self._by_id.get(principal_id.lower())

    def direct_members(self, group: Group) -> tuple[Principal, ...]:
        """The identities and groups ``group`` lists itself."""
        return tuple(p for m in self._listed(group) if (p := self.by_id(m)) is not None)

    def add_member(self, group_ref: str, member_ref: str) -> Group:
        """Put an identity or group into a group, as an administrator does in the organization's settings."""
        group, member = self.group(group_ref), self.principal(member_ref)
        if group is None or member is None:
            raise KeyError(f"no group {group_ref!r}" if group is None else f"no identity or group {member_ref!r}")
        if member.id not in self._listed(group):
            self._members_now[group.id.lower()] = (*self._listed(group), member.id)
        return group

    def limit_pat(self, who: str, scopes: Sequence[str]) -> None:
        """Give ``who``'s PAT only these scopes (``vso.build_execute``…), as a PAT made with "Custom defined"."""
        self._pat_scopes[self._identity_id(who)] = tuple(scopes)

    def pat_allows(self, caller: Identity, scope: str) -> bool:
        """Whether ``caller``'s PAT has ``scope``, or one that includes it (``vso.identity_manage`` has
        ``vso.identity``); a PAT with full access has every scope."""
        granted = self._pat_scopes.get(caller.id.lower())
        return granted is None or any(g == scope or g.startswith(f"{scope}_") for g in granted)

    def _identity_id(self, ref: str) -> str:
        found = self.identity(ref)
        if found is None:
            raise KeyError(f"no identity {ref!r}")
        return found.id.lower()

    def _listed(self, group: Group) -> tuple[str, ...]:
        return self._members_now.get(group.id.lower(), group.members)

    def expanded_members(self, group: Group) -> tuple[Principal, ...]:
        """The members of ``group`` at any depth, nested groups included (as Azure DevOps expands them)."""
        return reachable(group, self._members_step)

    def direct_groups(self, principal: Principal) -> tuple[Group, ...]:
        """The groups that list ``principal`` as a member."""
        return tuple(g for g in self.groups if principal.id in self._listed(g))

    def expanded_groups(self, principal: Principal) -> tuple[Group, ...]:
        """The groups ``principal`` is in, directly or through nested groups."""
        return tuple(g for g in reachable(principal, self.direct_groups) if isinstance(g, Group))

    def _members_step(self, principal: Principal) -> tuple[Principal, ...]:
        return self.direct_members(principal) if isinstance(principal, Group) else ()

    def pipeline(self, ref: str | int) -> PipelineDef | None:
        """A pipeline by id or name (case-insensitive)."""
        key = str(ref).lower()
        return next((p for p in self.pipelines if key in (str(p.id), p.name.lower())), None)

    def environment(self, name: str) -> Environment | None:
        return next((e for e in self.environments if e.name.lower() == name.lower()), None)

    def repository(self, ref: str) -> Repository | None:
        key = ref.lower()
        return next((r for r in self.repositories if key in (r.id.lower(), r.name.lower())), None)

    def members(self, principal: Principal) -> tuple[str, ...]:
        """Identity ids that may act as ``principal``: a group's members at any depth, or the identity."""
        if isinstance(principal, Identity):
            return (principal.id,)
        return tuple(p.id for p in self.expanded_members(principal) if isinstance(p, Identity))


def load_default_world() -> dict[str, Any]:
    """The ``azure_devops`` section of the shipped ``default_world.yaml``, as a dict."""
    text = resources.files(__package__).joinpath("default_world.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return dict(data[WORLD_KEY])


def parse_world(data: Mapping[str, Any]) -> World:
    """Validate a world section (or a whole world file that has an ``azure_devops`` key)."""
    if WORLD_KEY in data and isinstance(data[WORLD_KEY], Mapping):
        data = data[WORLD_KEY]
    org = _str(data, "organization", "azure_devops")
    project = _str(data, "project", "azure_devops")
    identities = tuple(_identity(d, f"identities[{n}]") for n, d in enumerate(_list(data, "identities")))
    if not identities:
        raise WorldError("azure_devops.identities: at least one identity is needed")
    pats = [i.pat for i in identities if i.pat]
    if len(pats) != len(set(pats)):
        raise WorldError("azure_devops.identities: two identities share a pat")
    partial = World(
        organization=org,
        project=project,
        project_id=str(data.get("projectId") or stable_id("project", org, project)),
        collection_id=str(data.get("collectionId") or stable_id("collection", org)),
        account_id=str(data.get("accountId") or stable_id("account", org)),
        identities=identities,
    )
    partial = World(**{**_fields(partial), "groups": _groups(_list(data, "groups"), partial)})
    repositories = tuple(_repository(d, org, f"repositories[{n}]") for n, d in enumerate(_list(data, "repositories")))
    environments = tuple(
        _environment(d, n + 1, partial, f"environments[{n}]") for n, d in enumerate(_list(data, "environments"))
    )
    pipelines = tuple(_pipeline(d, n + 1, f"pipelines[{n}]") for n, d in enumerate(_list(data, "pipelines")))
    env_names = {e.name.lower() for e in environments}
    repo_names = {r.name.lower() for r in repositories}
    for p in pipelines:
        for s in p.stages:
            if s.environment and s.environment.lower() not in env_names:
                raise WorldError(f"azure_devops.pipelines.{p.name}.stages.{s.name}: unknown environment")
        if p.repository and p.repository.lower() not in repo_names:
            raise WorldError(f"azure_devops.pipelines.{p.name}.repository: unknown repository {p.repository!r}")
    if len({p.id for p in pipelines}) != len(pipelines):
        raise WorldError("azure_devops.pipelines: two pipelines share an id")
    areas = str(data.get("resource_areas", "empty"))
    if areas not in ("empty", "listed"):
        raise WorldError("azure_devops.resource_areas: expected 'empty' or 'listed'")
    return World(
        **{
            **_fields(partial),
            "repositories": repositories,
            "environments": environments,
            "pipelines": pipelines,
            "webhooks": tuple(_webhook(d, f"webhooks[{n}]") for n, d in enumerate(_list(data, "webhooks"))),
            "release_approvals": tuple(
                _release_approval(d, partial, f"release_approvals[{n}]")
                for n, d in enumerate(_list(data, "release_approvals"))
            ),
            "first_run_id": int(data.get("first_run_id", 1)),
            "resource_areas": areas,
        }
    )


def _fields(world: World) -> dict[str, Any]:
    return {k: getattr(world, k) for k in world.__dataclass_fields__ if not k.startswith("_")}


def _str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise WorldError(f"{where}.{key}: a non-empty string is required")
    return value


def _list(data: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise WorldError(f"azure_devops.{key}: a list is required")
    return value


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WorldError(f"azure_devops.{where}: a mapping is required")
    return value


def _identity(value: Any, where: str) -> Identity:
    d = _mapping(value, where)
    unique = _str(d, "uniqueName", f"azure_devops.{where}")
    display = str(d.get("displayName") or unique.split("@")[0].title())
    return Identity(
        id=str(d.get("id") or stable_id("identity", unique.lower())),
        display_name=display,
        unique_name=unique,
        pat=str(d["pat"]) if d.get("pat") else None,
        role=str(d.get("role", "")),
        scopes=tuple(str(x) for x in _list(d, "scopes")) if d.get("scopes") is not None else None,
    )


def _groups(items: Sequence[Any], world: World) -> tuple[Group, ...]:
    """The groups, their members resolved once every group is known (a member may come later)."""
    specs = [(_mapping(d, f"groups[{n}]"), f"groups[{n}]") for n, d in enumerate(items)]
    bare = tuple(_group(d, where) for d, where in specs)
    known = World(**{**_fields(world), "groups": bare})
    ids = [p.id.lower() for p in known.principals]
    if len(ids) != len(set(ids)):
        raise WorldError("azure_devops.groups: two identities or groups share an id")
    return tuple(
        replace(g, members=_group_members(d, g, known, where)) for g, (d, where) in zip(bare, specs, strict=True)
    )


def _group(d: Mapping[str, Any], where: str) -> Group:
    name = _str(d, "displayName", f"azure_devops.{where}")
    return Group(
        id=str(d.get("id") or stable_id("group", name.lower())),
        display_name=name,
        description=str(d.get("description") or ""),
    )


def _group_members(d: Mapping[str, Any], group: Group, world: World, where: str) -> tuple[str, ...]:
    members: list[str] = []
    for ref in d.get("members") or []:
        principal = world.principal(str(ref))
        if principal is None:
            raise WorldError(f"azure_devops.{where}.members: unknown identity or group {ref!r}")
        if principal.id == group.id:
            raise WorldError(f"azure_devops.{where}.members: a group cannot be its own member")
        members.append(principal.id)
    return tuple(dict.fromkeys(members))


def _repository(value: Any, org: str, where: str) -> Repository:
    d = _mapping(value, where)
    name = _str(d, "name", f"azure_devops.{where}")
    return Repository(
        id=str(d.get("id") or stable_id("repository", org, name)),
        name=name,
        default_branch=str(d.get("defaultBranch", "refs/heads/main")),
    )


def _environment(value: Any, default_id: int, world: World, where: str) -> Environment:
    d = _mapping(value, where)
    name = _str(d, "name", f"azure_devops.{where}")
    env_id = int(d.get("id", default_id))
    approval = None
    if d.get("approval") is not None:
        a = _mapping(d["approval"], f"{where}.approval")
        approvers = []
        for ref in a.get("approvers") or []:
            principal = world.principal(str(ref))
            if principal is None:
                raise WorldError(f"azure_devops.{where}.approval.approvers: unknown identity or group {ref!r}")
            approvers.append(principal)
        if not approvers:
            raise WorldError(f"azure_devops.{where}.approval.approvers: at least one approver is needed")
        order = str(a.get("executionOrder", "anyOrder"))
        if order not in ("anyOrder", "inSequence"):
            raise WorldError(f"azure_devops.{where}.approval.executionOrder: anyOrder or inSequence")
        approval = ApprovalCheck(
            id=int(a.get("id", env_id)),
            approvers=tuple(approvers),
            min_required_approvers=int(a.get("minRequiredApprovers", 1)),
            requester_cannot_be_approver=bool(a.get("requesterCannotBeApprover", False)),
            execution_order=order,  # type: ignore[arg-type]
            instructions=str(a.get("instructions", "")),
            timeout_minutes=float(a.get("timeout", 43200)),
        )
    return Environment(id=env_id, name=name, approval=approval)


def _identifier(display: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "", display.title().replace(" ", "")) or "Stage"


def _stage(value: Any, where: str) -> StageDef:
    if isinstance(value, str):
        value = {"name": value}
    d = _mapping(value, where)
    display = str(d.get("displayName") or d.get("name") or "")
    if not display:
        raise WorldError(f"azure_devops.{where}: a stage needs a name or displayName")
    name = str(d.get("name") or _identifier(display))
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        name, display = _identifier(name), str(d.get("displayName") or name)
    result = str(d.get("result", "succeeded"))
    if result not in STAGE_RESULTS:
        raise WorldError(f"azure_devops.{where}.result: one of {', '.join(STAGE_RESULTS)}")
    return StageDef(
        name=name,
        display_name=display,
        duration=float(d.get("duration", 3.0)),
        result=result,  # type: ignore[arg-type]
        environment=str(d["environment"]) if d.get("environment") else None,
        job=str(d.get("job", "Job")),
    )


def _parameter(value: Any, where: str) -> ParameterDef:
    if isinstance(value, str):
        value = {"name": value}
    d = _mapping(value, where)
    values = d.get("values")
    return ParameterDef(
        name=_str(d, "name", f"azure_devops.{where}"),
        default=None if d.get("default") is None else str(d["default"]),
        values=tuple(str(v) for v in values) if values else None,
    )


def _variables(value: Any, where: str) -> tuple[VariableDef, ...]:
    if not value:
        return ()
    d = _mapping(value, where)
    out = []
    for name, spec in d.items():
        if isinstance(spec, Mapping):
            out.append(VariableDef(str(name), str(spec.get("value", "")), bool(spec.get("settable", True))))
        else:
            out.append(VariableDef(str(name), "" if spec is None else str(spec), True))
    return tuple(out)


def _pipeline(value: Any, default_id: int, where: str) -> PipelineDef:
    d = _mapping(value, where)
    name = _str(d, "name", f"azure_devops.{where}")
    stages = tuple(_stage(s, f"{where}.stages[{n}]") for n, s in enumerate(d.get("stages") or []))
    if not stages:
        raise WorldError(f"azure_devops.{where}.stages: at least one stage is needed")
    if len({s.name.lower() for s in stages}) != len(stages):
        raise WorldError(f"azure_devops.{where}.stages: stage names must be unique")
    trigger = d.get("trigger") or []
    return PipelineDef(
        id=int(d.get("id", default_id)),
        name=name,
        stages=stages,
        folder=str(d.get("folder", "\\")),
        revision=int(d.get("revision", 1)),
        repository=str(d["repository"]) if d.get("repository") else None,
        yaml_path=str(d.get("yamlPath", "/azure-pipelines.yml")),
        parameters=tuple(_parameter(p, f"{where}.parameters[{n}]") for n, p in enumerate(d.get("parameters") or [])),
        variables=_variables(d.get("variables"), f"{where}.variables"),
        trigger_branches=tuple(b if b.startswith("refs/") else f"refs/heads/{b}" for b in map(str, trigger)),
    )


def _pair(value: Any, keys: tuple[str, str], where: str) -> tuple[str, str] | None:
    if value is None:
        return None
    d = _mapping(value, where)
    return (str(d.get(keys[0], "")), str(d.get(keys[1], "")))


def _webhook(value: Any, where: str) -> WebhookDef:
    d = _mapping(value, where)
    types = d.get("event_types")
    return WebhookDef(
        url=_str(d, "url", f"azure_devops.{where}"),
        event_types=tuple(str(t) for t in types) if types else None,
        basic=_pair(d.get("basic"), ("username", "password"), f"{where}.basic"),
        header=_pair(d.get("header"), ("name", "value"), f"{where}.header"),
        resource_version=str(d["resource_version"]) if d.get("resource_version") else None,
    )


def _release_approval(value: Any, world: World, where: str) -> ReleaseApprovalDef:
    d = _mapping(value, where)
    approver = world.identity(_str(d, "approver", f"azure_devops.{where}"))
    if approver is None:
        raise WorldError(f"azure_devops.{where}.approver: unknown identity")
    kind = str(d.get("approvalType", "preDeploy"))
    if kind not in ("preDeploy", "postDeploy"):
        raise WorldError(f"azure_devops.{where}.approvalType: preDeploy or postDeploy")
    return ReleaseApprovalDef(
        id=int(d["id"]),
        approver=approver,
        release_id=int(d.get("releaseId", 1)),
        release_name=str(d.get("releaseName", "Release-1")),
        definition_id=int(d.get("definitionId", 1)),
        definition_name=str(d.get("definitionName", "release.CD")),
        environment_id=int(d.get("environmentId", 1)),
        environment_name=str(d.get("environmentName", "Production")),
        approval_type=kind,  # type: ignore[arg-type]
    )
