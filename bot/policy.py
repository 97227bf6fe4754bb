"""Who may run which command where, and who may decide which gate.

People are matched by every identity the platform gives (email, AAD object id, platform user id)
against role members and against the approvers Azure DevOps assigned. A refusal always says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.commands import CommandSpec
from bot.config import GatePolicySettings, Settings
from bot.events import GateTerms
from bot.handoff_cards import named_and_counted
from bot.interactions import ChatUser
from bot.records import CommandRun, ConversationAddress, Gate, GateDecision


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""

    @classmethod
    def allow(cls) -> Verdict:
        return cls(True)

    @classmethod
    def refuse(cls, reason: str) -> Verdict:
        return cls(False, reason)


def _identity(name: str) -> str:
    name = name.strip()
    return name.lower() if "@" in name or name.lower().startswith("aad:") else name


class Policy:
    """Reads roles, command rules and gate policies from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._members = {role: {_identity(m) for m in spec.members} for role, spec in settings.roles.items()}

    def roles_of(self, user: ChatUser) -> set[str]:
        identities = {_identity(i) for i in user.identities}
        return {role for role, members in self._members.items() if members & identities}

    def _channel_names(self, conversation: ConversationAddress) -> set[str]:
        names = set()
        for name, channel in self.settings.channels.items():
            if conversation.conversation_id in (channel.slack, channel.teams):
                names.add(name)
        return names

    def may_run(self, user: ChatUser, spec: CommandSpec, conversation: ConversationAddress | None = None) -> Verdict:
        """Whether ``user`` may run ``spec`` in ``conversation``, as its ``commands:`` entry says. A command
        without an entry whose spec names another (``unsubscribe``, ``mute``, ``unmute``: ``subscribe``) is for
        the roles of that one's entry."""
        rule = self.settings.commands.get(spec.verb)
        if rule is None and spec.roles_of and (followed := self.settings.commands.get(spec.roles_of)) is not None:
            if followed.roles and not self.roles_of(user) & set(followed.roles):
                return Verdict.refuse(
                    f"`{spec.verb}` is for {', '.join(followed.roles)}, as `{spec.roles_of}` is; "
                    "you are not in that role."
                )
            return Verdict.allow()
        if rule is None:
            return Verdict.allow()
        if rule.roles and not self.roles_of(user) & set(rule.roles):
            return Verdict.refuse(f"`{spec.verb}` is for {', '.join(rule.roles)}; you are not in that role.")
        if rule.channels and conversation is not None and not self._channel_names(conversation) & set(rule.channels):
            where = ", ".join(f"#{c}" for c in rule.channels)
            return Verdict.refuse(f"`{spec.verb}` runs only in {where}.")
        return Verdict.allow()

    def may_cancel(self, user: ChatUser, spec: CommandSpec, run: CommandRun, asker: str) -> Verdict:
        """Whether ``user`` may cancel ``run``, a run of ``spec`` (``retrain``, ``integrate``) that ``asker``
        (as chat names them) asked for.

        The person who asked for a run may cancel it, wherever they type ``cancel``: it is theirs, and the
        run's card tells its channel who canceled it. Anyone else may cancel it who may run its command where
        it was asked for (a run Handoff started for a new model version: anywhere), as they could have
        started it there. A refusal names who may.
        """
        asked_in_chat = run.platform in ("slack", "teams")
        if asked_in_chat and self.asked_for(user, run):
            return Verdict.allow()
        where = ConversationAddress("slack" if run.platform == "slack" else "teams", run.conversation)
        if self.may_run(user, spec, where if asked_in_chat else None).allowed:
            return Verdict.allow()
        who = [f"{asker}, who asked for it,"] if asked_in_chat else []
        rule = self.settings.commands.get(spec.verb)
        if rule is not None and rule.roles:
            who.append(f"people in {', '.join(rule.roles)}")
        if not who:
            return Verdict.refuse(f"Only someone who may run `{spec.verb}` there may cancel it.")
        return Verdict.refuse(f"Only {' or '.join(who)} may cancel it.")

    @staticmethod
    def asked_for(user: ChatUser, run: CommandRun) -> bool:
        """Whether ``user`` asked for ``run`` from chat: the same person on the same platform (as the run keeps
        them: :attr:`ChatUser.key`), or as the run records them (:meth:`is_person`)."""
        return run.details.get("asker") == user.key or Policy.is_person(user, run.actor)

    @staticmethod
    def is_person(user: ChatUser, actor: str) -> bool:
        """Whether ``actor``, as a run records who asked for it (their email, else their chat name), is ``user``."""
        return actor == user.display or _identity(actor) in {_identity(i) for i in user.identities}

    def gate_policy(self, gate: Gate) -> GatePolicySettings:
        name = str(gate.policy.get("name", "default"))
        return self.settings.gates.get(name) or self.settings.gates.get("default") or GatePolicySettings()

    @staticmethod
    def is_assigned(user: ChatUser, gate: Gate) -> bool:
        """Whether Azure DevOps assigned ``gate`` to ``user``: to them, or to a group they are known to be in."""
        assigned = {_identity(a) for a in gate.details.get("approvers", [])}
        return not assigned.isdisjoint(_identity(i) for i in user.identities)

    def in_approver_role(self, user: ChatUser, gate: Gate) -> bool:
        """Whether one of ``user``'s roles may decide ``gate`` (its policy's ``approver_roles``)."""
        allowed = set(self.gate_policy(gate).approver_roles) | set(gate.policy.get("approver_roles", []))
        return bool(self.roles_of(user) & allowed)

    def approver_roles(self, gate: Gate) -> list[str]:
        """The roles that may decide ``gate`` (its policy's ``approver_roles``)."""
        return list(dict.fromkeys([*self.gate_policy(gate).approver_roles, *gate.policy.get("approver_roles", [])]))

    def role_members(self, roles: list[str]) -> list[str]:
        """The members of ``roles`` (whom a card calls on: by email, or by chat id on its platform), each once,
        those known by email first."""
        members = dict.fromkeys(m for r in roles for m in sorted(self._members.get(r, ())))
        return sorted(members, key=lambda m: "@" not in m)

    def barred(self, gate: Gate) -> list[str]:
        """The identities that may not approve ``gate``: its requester's, where its policy says the requester
        may not approve it."""
        policy = self.gate_policy(gate)
        if not (policy.requester_cannot_approve or gate.policy.get("requester_cannot_approve")):
            return []
        return [str(r) for r in gate.details.get("requesters", [])]

    def terms(self, gate: Gate, needed: int) -> GateTerms:
        """What an Azure DevOps approval's card shows of ``gate``'s policy, ``needed`` being how many approvals
        from chat decide it."""
        members = self.role_members(self.approver_roles(gate))
        return GateTerms(needed, tuple(members), tuple(self.barred(gate)), gate.expires_at)

    def _approvers_named(self, gate: Gate, names: list[str], roles: list[str], no_self_approval: bool) -> str:
        """``Carol Diaz, alice@contoso.com and 1 more approver``: Azure DevOps' approvers (``names``), then the
        members of ``roles`` who may approve ``gate`` (not its requester, where ``no_self_approval``), by the
        name chat gave them where they decided before, else by email; those known by a chat id only counted."""
        assigned = {_identity(a) for a in gate.details.get("approvers", [])}
        barred = {_identity(r) for r in gate.details.get("requesters", [])} if no_self_approval else set()
        members = [m for m in self.role_members(roles) if _identity(m) not in assigned | barred]
        if not names and not members:
            return ""
        chat_names: dict[str, str] = {str(k): str(v) for k, v in (gate.details.get("names") or {}).items()}
        known = dict(chat_names)
        for person, ids in (gate.details.get("chat_ids") or {}).items():
            known |= {str(i): chat_names[person] for i in ids if person in chat_names}
        return named_and_counted(members, "approver", "approvers", known, named=names)

    def may_decide(
        self,
        user: ChatUser,
        gate: Gate,
        decision: str,
        comment: str | None,
        decisions: list[GateDecision],
    ) -> Verdict:
        """Whether ``user`` may approve or reject ``gate`` now (state and expiry are checked elsewhere).

        ``comment`` None: the person has not been asked for one yet, so what a comment would settle (a reason
        an override or a rejection needs) is not held against them.
        """
        policy = self.gate_policy(gate)
        identities = {_identity(i) for i in user.identities}
        in_role = self.in_approver_role(user, gate)
        if decision == "override":
            if not policy.override_roles:
                return Verdict.refuse("Nobody may override this gate: its gate policy names no override_roles.")
            if not self.roles_of(user) & set(policy.override_roles):
                return Verdict.refuse(f"Only {', '.join(policy.override_roles)} may override.")
            if comment is not None and not comment.strip():
                return Verdict.refuse("An override needs a reason.")
            return Verdict.allow()
        no_self_approval = policy.requester_cannot_approve or bool(gate.policy.get("requester_cannot_approve"))
        if decision == "approve" and identities & {_identity(b) for b in gate.details.get("blocked", [])}:
            # Azure DevOps sees only Handoff's identity, so it cannot refuse them itself
            return Verdict.refuse(
                "Azure DevOps does not let the person who started this run approve it, so Handoff will not approve "
                "it for you. Someone else among its approvers can."
            )
        if not (self.is_assigned(user, gate) or in_role):
            barred = set(gate.details.get("blocked_names", []))
            if no_self_approval:
                barred |= set(gate.details.get("requester_names", []))
            roles = self.approver_roles(gate)
            # Azure DevOps' approvers by name (a promotion gate's details name its roles there: not people)
            names = sorted(n for n in gate.details.get("approver_names", []) if n not in barred and n not in roles)
            who = self._approvers_named(gate, names, roles, no_self_approval) or "the assigned approvers"
            refusal = f"You are not an approver of this gate. It can be decided by {who}."
            unknown = []
            if groups := sorted(gate.details.get("unseen_groups", [])):
                unknown.append(f"who is in {', '.join(groups)}")
            if people := sorted(gate.details.get("unmatched", [])):
                unknown.append(f"which chat account is {', '.join(people)}")
            if unknown:
                refusal += (
                    f" Handoff cannot tell {' or '.join(unknown)}: if you are among them, decide it in Azure DevOps."
                )
            return Verdict.refuse(refusal)
        requester = {_identity(r) for r in gate.details.get("requesters", [])}
        if decision == "approve" and no_self_approval and identities & requester:
            if gate.details.get("approval_kind") == "release":
                return Verdict.refuse("You created this release, and its policy says its creator may not approve it.")
            return Verdict.refuse("You started this run, and its policy says the requester may not approve it.")
        if decision == "approve" and no_self_approval and (creator := gate.details.get("requester_unresolved")):
            # who created it cannot be told from who clicks: nobody approves it from chat until it can
            who = str(creator.get("name") or "its creator")
            return Verdict.refuse(
                f"Handoff cannot tell yet whether you created this release (Azure DevOps has not said who {who} is), "
                "and its policy says its creator may not approve it. Try again in a few minutes, or decide it in "
                "Azure DevOps."
            )
        if decision == "reject" and policy.reject_needs_reason and comment is not None and not comment.strip():
            return Verdict.refuse("A rejection needs a reason.")
        if any(identities & {_identity(d.actor)} and d.decision == decision for d in decisions):
            return Verdict.refuse("You have already approved this gate; it needs another approver.")
        return Verdict.allow()
