"""The people behind an approval's approvers, read from the Azure DevOps emulator's Identities API."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from azure.devops.connection import Connection
from msrest.authentication import BasicAuthentication

from adapters.azure_devops.approver_directory import CACHE_SECONDS, ApproverDirectory
from adapters.azure_devops.gateway import AzureDevOpsGateway
from adapters.azure_devops.pipelines import AzureDevOpsPipelines
from adapters.emulators.azure_devops import AzureDevOpsEmulator, load_default_world
from bot.events import Approver, Person
from bot.ports import ServiceRefused

IDENTITIES = "GET /contoso/_apis/identities"


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def gateway() -> Iterator[AzureDevOpsGateway]:
    running = AzureDevOpsGateway()
    yield running
    running.close()


def directory(ado: AzureDevOpsEmulator, gateway: AzureDevOpsGateway, clock: Ticks | None = None) -> ApproverDirectory:
    connection = Connection(base_url=ado.org_url, creds=BasicAuthentication("", ado.pat("handoff-bot@contoso.com")))
    return ApproverDirectory(connection, gateway, clock=clock or Ticks())


def by_id(ado: AzureDevOpsEmulator, ref: str) -> Approver:
    """An approver as a pipeline approval's hook names it: by id alone."""
    principal = ado.world.group(ref) or ado.identity(ref)
    return Approver(person=Person(id=principal.id))


async def test_a_person_named_by_id_gets_a_name_and_email_and_a_group_its_members(
    ado: AzureDevOpsEmulator, gateway: AzureDevOpsGateway
) -> None:
    named = Approver(person=Person(name="Bob", email="bob@contoso.com", id=ado.identity("bob@contoso.com").id))
    unknown = Approver(person=Person(id="00000000-0000-0000-0000-00000000dead"))
    approvers = (by_id(ado, "alice@contoso.com"), by_id(ado, "Release Managers"), named, unknown)
    alice, managers, bob, nobody = await directory(ado, gateway).completed(approvers)
    assert (alice.person.name, alice.person.email, alice.group) == ("Alice Martin", "alice@contoso.com", False)
    assert managers.group and managers.person.name == "Release Managers"
    assert [(p.name, p.email) for p in managers.members] == [("Carol Diaz", "carol@contoso.com")]
    assert bob == named and nobody == unknown  # an email needs no lookup; an unknown id stays as it was
    [lookup, members] = ado.recorder.matching(IDENTITIES)  # the approvers at once, then the group's members
    assert lookup.query["identityIds"].count(",") == 2 and lookup.query["queryMembership"] == "Direct"
    assert "descriptors" in members.query


async def test_nested_groups_are_flattened(gateway: AzureDevOpsGateway) -> None:
    world = copy.deepcopy(load_default_world())
    groups = world["groups"]
    groups.append({"displayName": "Release Leads", "members": ["bob@contoso.com", "Release Managers"]})
    groups.append({"displayName": "Approvers", "members": ["Release Leads", "alice@contoso.com"]})
    async with AzureDevOpsEmulator(world) as ado:
        [approvers] = await directory(ado, gateway).completed((by_id(ado, "Approvers"),))
    assert sorted(p.email or "" for p in approvers.members) == [
        "alice@contoso.com",
        "bob@contoso.com",
        "carol@contoso.com",
    ]


async def test_answers_are_cached_for_a_while(ado: AzureDevOpsEmulator, gateway: AzureDevOpsGateway) -> None:
    clock = Ticks()
    people = directory(ado, gateway, clock)
    approvers = (by_id(ado, "Release Managers"), by_id(ado, "alice@contoso.com"))
    first = await people.completed(approvers)
    calls = len(ado.recorder.matching(IDENTITIES))
    clock.now += CACHE_SECONDS - 1
    assert await people.completed(approvers) == first
    assert len(ado.recorder.matching(IDENTITIES)) == calls  # the second gate of a release asks nothing
    clock.now += 2
    assert await people.completed(approvers) == first
    assert len(ado.recorder.matching(IDENTITIES)) == 2 * calls


async def test_a_fresh_look_asks_again_and_sees_who_joined(
    ado: AzureDevOpsEmulator, gateway: AzureDevOpsGateway
) -> None:
    people = directory(ado, gateway)
    managers = (by_id(ado, "Release Managers"),)
    [before] = await people.completed(managers)
    calls = len(ado.recorder.matching(IDENTITIES))
    ado.world.add_member("Release Managers", "bob@contoso.com")
    assert await people.completed(managers) == (before,)  # from the cache: bob is not seen yet
    [after] = await people.completed(managers, fresh=True)
    assert [p.email for p in after.members] == ["carol@contoso.com", "bob@contoso.com"]
    assert len(ado.recorder.matching(IDENTITIES)) == 2 * calls
    assert await people.completed(managers) == (after,)  # and what it read is cached in turn


async def test_a_refused_lookup_is_a_refusal_that_names_the_scope(
    ado: AzureDevOpsEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    pipelines = AzureDevOpsPipelines(Connection(base_url=ado.org_url, creds=BasicAuthentication("", "not-a-pat")))
    try:
        with pytest.raises(ServiceRefused):
            await pipelines.approver_identities((by_id(ado, "Release Managers"),))
    finally:
        await pipelines.close()
    assert "vso.identity" in caplog.text and "not-a-pat" not in caplog.text


async def test_a_group_read_only_in_part_says_so(gateway: AzureDevOpsGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    world = copy.deepcopy(load_default_world())
    groups = world["groups"]
    groups.append({"displayName": "Release Leads", "members": ["bob@contoso.com"]})
    groups.append({"displayName": "Approvers", "members": ["Release Leads", "alice@contoso.com", "carol@contoso.com"]})
    async with AzureDevOpsEmulator(world) as ado:
        [whole] = await directory(ado, gateway).completed((by_id(ado, "Approvers"),))
        assert whole.members_complete and len(whole.members) == 3
        monkeypatch.setattr("adapters.azure_devops.approver_directory.MAX_MEMBERS", 1)
        [capped] = await directory(ado, gateway).completed((by_id(ado, "Approvers"),))
        monkeypatch.setattr("adapters.azure_devops.approver_directory.MAX_MEMBERS", 200)
        monkeypatch.setattr("adapters.azure_devops.approver_directory.MAX_DEPTH", 1)
        [shallow] = await directory(ado, gateway).completed((by_id(ado, "Approvers"),))
    assert not capped.members_complete and len(capped.members) == 1
    assert not shallow.members_complete and {p.email for p in shallow.members} == {
        "alice@contoso.com",
        "carol@contoso.com",
    }  # bob is in a group nested one level deeper than it read
