"""The Azure DevOps emulator's Identities API (area IMS), read by the real SDK's ``IdentityClient``."""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsServiceError
from azure.devops.v7_1.identity.identity_client import IdentityClient
from azure.devops.v7_1.identity.models import Identity
from msrest.authentication import BasicAuthentication

from adapters.emulators.azure_devops import AzureDevOpsEmulator, WorldError, load_default_world, parse_world
from adapters.emulators.azure_devops.world import Group
from bot.clock import FakeClock

T = TypeVar("T")
IDENTITIES = "GET /contoso/_apis/identities"
IMS_AREA = "8a3d49b8-91f0-46ef-b33d-dda338c25db3"


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The SDK is synchronous: run it in a thread so the in-loop emulator can answer."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def identity_client(ado: AzureDevOpsEmulator, who: str = "alice@contoso.com") -> IdentityClient:
    connection = Connection(base_url=ado.org_url, creds=BasicAuthentication("", ado.pat(who)))
    client: IdentityClient = await call(connection.clients_v7_1.get_identity_client)
    return client


async def read(client: IdentityClient, **query: str) -> list[Identity | None]:
    found: list[Identity | None] = await call(client.read_identities, **query)
    return found


def group(ado: AzureDevOpsEmulator, name: str) -> Group:
    found = ado.world.group(name)
    assert found is not None
    return found


def nested_world(**changes: Any) -> dict[str, Any]:
    """The default world plus Production Approvers = [Release Managers (carol), bob]."""
    world = copy.deepcopy(load_default_world())
    world["groups"].append({"displayName": "Production Approvers", "members": ["Release Managers", "bob@contoso.com"]})
    world.update(changes)
    return world


def session_as(ado: AzureDevOpsEmulator, who: str) -> aiohttp.ClientSession:
    """A plain HTTP session that authenticates as ``who``, for what the SDK does not send."""
    token = base64.b64encode(f":{ado.pat(who)}".encode()).decode()
    return aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"})


def prop(identity: Identity, name: str) -> Any:
    return identity.properties[name]["$value"]


# reading by ids and by descriptors --------------------------------------------------------------------


async def test_read_by_ids_with_direct_membership(ado: AzureDevOpsEmulator) -> None:
    managers, carol = group(ado, "Release Managers"), ado.identity("carol@contoso.com")
    client = await identity_client(ado)
    found = await read(client, identity_ids=f"{managers.id.upper()},{carol.id}", query_membership="Direct")
    assert [i.id for i in found if i is not None] == [managers.id, carol.id]
    team, person = found
    assert team is not None and person is not None
    assert (team.is_container, team.meta_type_id, team.provider_display_name) == (True, 255, "Release Managers")
    assert team.members == [person.descriptor] and team.member_ids == [carol.id]
    assert prop(team, "SchemaClassName") == "Group"
    assert team.properties["Description"] == {
        "$type": "System.String",
        "$value": "Decide the production releases of app-y.",
    }
    assert team.descriptor.startswith("Microsoft.TeamFoundation.Identity;S-1-9-")
    assert team.subject_descriptor == ado.shapes.identity(managers)["descriptor"]  # type: ignore[index]
    assert (person.is_container, person.meta_type_id, person.members, person.member_ids) == (False, 0, [], [])
    assert person.member_of == [team.descriptor]
    assert (prop(person, "Mail"), prop(person, "Account"), prop(person, "SchemaClassName")) == (
        "carol@contoso.com",
        "carol@contoso.com",
        "User",
    )
    assert person.descriptor.startswith("Microsoft.IdentityModel.Claims.ClaimsIdentity;")
    assert person.descriptor.endswith("\\carol@contoso.com")
    assert person.subject_descriptor == ado.shapes.identity(carol)["descriptor"]  # type: ignore[index]
    calls = ado.recorder.matching(IDENTITIES)
    assert [(c.status, c.query["queryMembership"]) for c in calls] == [(200, "Direct")]


async def test_membership_is_left_out_unless_asked(ado: AzureDevOpsEmulator) -> None:
    managers = group(ado, "Release Managers")
    client = await identity_client(ado)
    (team,) = await read(client, identity_ids=managers.id)
    assert team is not None and team.is_container
    assert (team.members, team.member_of, team.member_ids) == ([], [], [])


async def test_read_by_descriptors_in_the_order_asked(ado: AzureDevOpsEmulator) -> None:
    managers, carol = group(ado, "Release Managers"), ado.identity("carol@contoso.com")
    client = await identity_client(ado)
    team, person = await read(client, identity_ids=f"{managers.id},{carol.id}")
    assert team is not None and person is not None
    found = await read(client, descriptors=f"{person.descriptor},{team.descriptor}", query_membership="direct")
    assert [(i.id, i.descriptor) for i in found if i is not None] == [
        (carol.id, person.descriptor),
        (managers.id, team.descriptor),
    ]
    assert found[1] is not None and found[1].member_ids == [carol.id]
    by_subject = await read(client, descriptors=f"{team.subject_descriptor},{person.descriptor.upper()}")
    assert [i.id for i in by_subject if i is not None] == [managers.id, carol.id]
    assert len(ado.recorder.matching(IDENTITIES)) == 3


async def test_an_unknown_key_answers_none_in_its_place(ado: AzureDevOpsEmulator) -> None:
    carol = ado.identity("carol@contoso.com")
    client = await identity_client(ado)
    found = await read(client, identity_ids=f"00000000-0000-0000-0000-000000000001,{carol.id}")
    assert found[0] is None and found[1] is not None and found[1].id == carol.id
    unknown = await read(client, descriptors="Microsoft.TeamFoundation.Identity;S-1-9-1")
    assert unknown == [None]


# nested groups ----------------------------------------------------------------------------------------


async def test_nested_group_expanded_down_and_up(clock: FakeClock) -> None:
    async with AzureDevOpsEmulator(nested_world(), clock=clock) as ado:
        outer, inner = group(ado, "Production Approvers"), group(ado, "Release Managers")
        carol, bob = ado.identity("carol@contoso.com"), ado.identity("bob@contoso.com")
        client = await identity_client(ado)
        (direct,) = await read(client, identity_ids=outer.id, query_membership="Direct")
        (expanded,) = await read(client, identity_ids=outer.id, query_membership="Expanded")
        assert direct is not None and expanded is not None
        assert direct.member_ids == [inner.id, bob.id]
        assert expanded.member_ids == [inner.id, carol.id, bob.id]  # the nested group itself is a member too
        (team,) = await read(client, identity_ids=inner.id)
        assert team is not None and team.descriptor in expanded.members
        (up,) = await read(client, identity_ids=carol.id, query_membership="ExpandedUp")
        (down,) = await read(client, identity_ids=carol.id, query_membership="ExpandedDown")
        assert up is not None and down is not None
        assert up.member_of == [team.descriptor, direct.descriptor]
        assert down.member_of == [team.descriptor]


def test_a_cycle_of_groups_is_tolerated() -> None:
    world = copy.deepcopy(load_default_world())
    world["groups"] = [
        {"displayName": "Red", "members": ["Blue", "alice@contoso.com"]},
        {"displayName": "Blue", "members": ["Red", "bob@contoso.com"]},
    ]
    parsed = parse_world(world)
    red, blue = parsed.groups
    assert [p.display_name for p in parsed.expanded_members(red)] == ["Blue", "Bob Chen", "Alice Martin"]
    assert [g.display_name for g in parsed.expanded_groups(red)] == ["Blue"]
    assert set(parsed.members(blue)) == {parsed.identities[0].id, parsed.identities[1].id}


def test_a_group_cannot_list_itself_or_an_unknown_member() -> None:
    world = copy.deepcopy(load_default_world())
    world["groups"] = [{"displayName": "Loop", "members": ["Loop"]}]
    with pytest.raises(WorldError, match=r"groups\[0\]\.members: a group cannot be its own member"):
        parse_world(world)
    world["groups"] = [{"displayName": "Ghosts", "members": ["nobody"]}]
    with pytest.raises(WorldError, match=r"groups\[0\]\.members: unknown identity or group 'nobody'"):
        parse_world(world)


async def production_waiting_for(ado: AzureDevOpsEmulator, clock: FakeClock) -> str:
    """Start a release of app-y and run it to production's approval; the approval's id."""
    run = ado.start_run(
        "release-app-y", requested_by="alice@contoso.com", parameters={"modelName": "m", "modelVersion": "1"}
    )
    for _ in range(2):  # Build (2 s), Deploy to staging (3 s)
        await ado.settled()
        await clock.advance(3)
    return (await ado.wait_for_approval(run.id)).id


async def approve_as(ado: AzureDevOpsEmulator, who: str, approval_id: str) -> tuple[int, Any]:
    """PATCH an approval as ``who``: the status and the answer's JSON."""
    decision = [{"approvalId": approval_id, "status": "approved", "comment": "ok"}]
    accept = {"Accept": "application/json;api-version=7.1-preview.1"}
    async with (
        session_as(ado, who) as session,
        session.patch(f"{ado.org_url}/mlops/_apis/pipelines/approvals", json=decision, headers=accept) as resp,
    ):
        return resp.status, await resp.json()


async def test_a_member_of_a_nested_group_decides_the_outer_groups_approval(clock: FakeClock) -> None:
    world = nested_world()
    production = next(e for e in world["environments"] if e["name"] == "production")
    production["approval"]["approvers"] = ["Production Approvers"]
    async with AzureDevOpsEmulator(world, clock=clock) as ado:
        approval_id = await production_waiting_for(ado, clock)
        # carol is in Release Managers, itself in Production Approvers
        status, answer = await approve_as(ado, "carol@contoso.com", approval_id)
        assert status == 200, answer
        assert answer["value"][0]["status"] == "approved"


async def test_someone_added_to_a_group_is_in_it_at_once(clock: FakeClock) -> None:
    world = copy.deepcopy(load_default_world())
    production = next(e for e in world["environments"] if e["name"] == "production")
    production["approval"]["approvers"] = ["Release Managers"]  # carol alone in it
    async with AzureDevOpsEmulator(world, clock=clock) as ado:
        approval_id = await production_waiting_for(ado, clock)
        status, answer = await approve_as(ado, "bob@contoso.com", approval_id)
        assert (status, answer["typeKey"]) == (403, "ApprovalUnauthorizedException")

        managers = ado.world.add_member("Release Managers", "bob@contoso.com")
        (team,) = await read(await identity_client(ado), identity_ids=managers.id, query_membership="Direct")
        bob = ado.identity("bob@contoso.com")
        assert team is not None and team.member_ids == [ado.identity("carol@contoso.com").id, bob.id]
        status, answer = await approve_as(ado, "bob@contoso.com", approval_id)
        assert status == 200, answer
        assert answer["value"][0]["status"] == "approved"
        with pytest.raises(KeyError, match="no group 'Nobody'"):
            ado.world.add_member("Nobody", "bob@contoso.com")


# refusals and discovery -------------------------------------------------------------------------------


async def test_a_pat_without_identity_read_is_refused_but_may_say_whose_it_is(ado: AzureDevOpsEmulator) -> None:
    client = await identity_client(ado, "bob@contoso.com")
    location = await call(
        Connection(
            base_url=ado.org_url, creds=BasicAuthentication("", ado.pat("bob@contoso.com"))
        ).clients_v7_1.get_location_client
    )
    ado.world.limit_pat("bob@contoso.com", ["vso.build_execute"])
    me = (await call(location.get_connection_data)).authenticated_user
    assert (me.id, me.provider_display_name) == (ado.identity("bob@contoso.com").id, "Bob Chen")
    with pytest.raises(AzureDevOpsServiceError, match="TF400813") as refused:
        await read(client, identity_ids=me.id)
    assert refused.value.type_key == "UnauthorizedRequestException"
    assert ado.recorder.matching(IDENTITIES)[-1].status == 401
    ado.world.limit_pat("bob@contoso.com", ["vso.build_execute", "vso.identity_manage"])  # includes Identity: Read
    assert [i.id for i in await read(client, identity_ids=me.id) if i is not None] == [me.id]


def test_a_world_may_give_a_pat_some_scopes_only() -> None:
    world = copy.deepcopy(load_default_world())
    world["identities"][1]["scopes"] = ["vso.build", "vso.identity"]
    parsed = parse_world(world)
    alice, bob = parsed.identities[:2]
    assert (alice.scopes, bob.scopes) == (None, ("vso.build", "vso.identity"))
    assert parsed.pat_allows(alice, "vso.release_execute") and parsed.pat_allows(bob, "vso.identity")
    assert not parsed.pat_allows(bob, "vso.build_execute")  # Build: Read does not include Read & execute


@pytest.mark.parametrize(
    "query",
    [
        {"query_membership": "Direct"},
        {"identity_ids": "a", "descriptors": "b"},
        {"search_filter": "General", "filter_value": "carol"},
        {"identity_ids": " , "},
        {"identity_ids": "a", "query_membership": "Sideways"},
    ],
)
async def test_a_bad_query_is_a_400(ado: AzureDevOpsEmulator, query: dict[str, str]) -> None:
    client = await identity_client(ado)
    with pytest.raises(AzureDevOpsServiceError) as err:
        await read(client, **query)
    assert err.value.type_key == "ArgumentException"
    assert [c.status for c in ado.recorder.matching(IDENTITIES)] == [400]


async def test_listed_resource_areas_resolve_identities_on_the_emulator(clock: FakeClock) -> None:
    """Without IMS among the areas, the SDK would ask app.vssps.visualstudio.com (the loopback guard fails it)."""
    async with AzureDevOpsEmulator(nested_world(resource_areas="listed"), clock=clock) as ado:
        client = await identity_client(ado, "carol@contoso.com")
        carol = ado.identity("carol@contoso.com")
        found = await read(client, identity_ids=carol.id, query_membership="Direct")
        assert found[0] is not None and found[0].id == carol.id
        assert client.config.base_url.rstrip("/") == ado.org_url
        assert {r.path for r in ado.recorder.requests} <= {
            "/contoso/_apis",
            "/contoso/_apis/ResourceAreas",
            "/contoso/_apis/identities",
        }
        assert len(ado.recorder.matching(IDENTITIES)) == 1
        async with session_as(ado, "carol@contoso.com") as session:
            async with session.get(f"{ado.org_url}/_apis/ResourceAreas") as resp:
                areas = {a["id"]: a["locationUrl"] for a in (await resp.json())["value"]}
            async with session.options(f"{ado.org_url}/_apis") as resp:
                locations = {loc["id"]: loc for loc in (await resp.json())["value"]}
        assert areas[IMS_AREA] == f"{ado.org_url}/"
        identities = locations["28010c54-d0c0-4c89-a5b0-1c9e188b9fb7"]
        assert (identities["area"], identities["routeTemplate"]) == ("IMS", "_apis/identities/{identityId}")
