"""The demo's emulators describe one company: whoever a world names by an email, every world names alike."""

from __future__ import annotations

from adapters.demo import local_world
from adapters.emulators.suite import EmulatorSuite


def test_each_person_has_one_name_in_azure_devops_slack_and_teams() -> None:
    suite = EmulatorSuite(local_world())
    names_by_world = {
        "Azure DevOps": {i.unique_name.lower(): i.display_name for i in suite.ado.world.identities},
        "Slack": {u.email.lower(): u.real_name for u in suite.slack.world.users},
        "Teams": {u.email.lower(): u.name for u in suite.teams.world.users},
    }
    everyone = {email for names in names_by_world.values() for email in names}
    shown = {
        email: {world: names[email] for world, names in names_by_world.items() if email in names}
        for email in sorted(everyone)
    }

    assert {email: set(names.values()) for email, names in shown.items() if len(names) > 1} == {
        "alice@contoso.com": {"Alice Martin"},
        "bob@contoso.com": {"Bob Chen"},
        "carol@contoso.com": {"Carol Diaz"},
    }
