"""Messages as Handoff's renderers post them (Block Kit and Adaptive Cards), for the console's tests."""

from __future__ import annotations

from typing import Any

SLACK_MODELS = "C0MLM0DELS1"
SLACK_RELEASES = "C0APPRELS01"
TEAMS_RELEASES = "19:appReleases00000000@thread.tacv2"
TEAMS_MODELS = "19:mlModels0000000000@thread.tacv2"
ALICE_SLACK, BOB_SLACK, CAROL_SLACK = "U0A11CE0001", "U0B0B000002", "U0CA201003"
ALICE_TEAMS, CAROL_TEAMS = "29:1a1iceContosoMlUserMri", "29:1ca201ContosoMlUserMri"
ADAPTIVE = "application/vnd.microsoft.card.adaptive"


def slack_gate(status: str = "Waiting", *, buttons: bool = True) -> list[dict[str, Any]]:
    """A release gate as Block Kit: header, status, facts, steps, links, Approve / Reject, context."""
    emoji = {"Waiting": ":raised_hand:", "Approved": ":heavy_check_mark:", "Rejected": ":no_entry:"}[status]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Release app-y 2.4.0 to production", "emoji": True}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"{emoji} *{status}*\nIntegration tests passed against `model-x:7`."},
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": "*Pipeline*\nrelease-app-y #104"},
                {"type": "mrkdwn", "text": "*Model*\nmodel-x:7 (AUC 0.92)"},
                {"type": "mrkdwn", "text": "*Requested by*\nBob Chen"},
                {"type": "mrkdwn", "text": "*Expires*\nin 60 min"},
            ],
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "<http://127.0.0.1/ado/contoso/mlops/_build/results?buildId=104|Run in Azure DevOps>  ·  "
                "<http://127.0.0.1/aml/models/model-x/7|Model card>",
            },
        },
    ]
    if buttons:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "approve",
                        "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                        "value": '{"gate":"g-1"}',
                        "style": "primary",
                    },
                    {
                        "type": "button",
                        "action_id": "reject",
                        "text": {"type": "plain_text", "text": "Reject", "emoji": True},
                        "value": '{"gate":"g-1"}',
                        "style": "danger",
                    },
                ],
            }
        )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Can decide: <@{CAROL_SLACK}>"}]})
    return blocks


def slack_job(status: str = "Running") -> list[dict[str, Any]]:
    """A training job card as Block Kit."""
    emoji = {"Queued": ":hourglass_flowing_sand:", "Running": ":arrows_counterclockwise:"}.get(
        status, ":white_check_mark:"
    )
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "Retrain model-x", "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} *{status}*\nAzure ML job on cpu-cluster"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": "*Job*\nquiet_lamp_4k2"},
                {"type": "mrkdwn", "text": "*Started by*\nAlice Martin"},
            ],
        },
        {"type": "divider"},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "Asked for by <@U0A11CE0001> with `/retrain`"}]},
    ]


def teams_gate(
    status: str = "Waiting", *, buttons: bool = True, refresh_for: list[str] | None = None
) -> dict[str, Any]:
    """A release gate as an Adaptive Card 1.5 with Action.Execute buttons (Reject asks for a comment)."""
    color = {"Waiting": "Warning", "Approved": "Good", "Rejected": "Attention"}[status]
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [
            {
                "type": "TextBlock",
                "text": "Release app-y 2.4.0 to production",
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
            },
            {"type": "TextBlock", "text": f"⏸️ {status}", "color": color, "spacing": "None", "wrap": True},
            {
                "type": "ColumnSet",
                "columns": [
                    {
                        "type": "Column",
                        "width": "auto",
                        "items": [{"type": "Image", "url": "http://x/y.png", "altText": "app-y"}],
                    },
                    {
                        "type": "Column",
                        "width": "stretch",
                        "items": [
                            {
                                "type": "TextBlock",
                                "text": "Integration tests **passed** against model-x:7",
                                "wrap": True,
                            }
                        ],
                    },
                ],
            },
            {
                "type": "Container",
                "style": "emphasis",
                "items": [
                    {
                        "type": "FactSet",
                        "facts": [
                            {"title": "Pipeline", "value": "release-app-y #104"},
                            {"title": "Model", "value": "model-x:7 (AUC 0.92)"},
                            {"title": "Requested by", "value": "Bob Chen"},
                        ],
                    }
                ],
            },
            {
                "type": "TextBlock",
                "text": "Needs 1 of Release Managers",
                "isSubtle": True,
                "size": "Small",
                "wrap": True,
            },
        ],
    }
    actions: list[dict[str, Any]] = []
    if buttons:
        actions += [
            {
                "type": "Action.Execute",
                "id": "approve",
                "title": "Approve",
                "verb": "approve",
                "data": {"gate": "g-1"},
                "style": "positive",
            },
            {
                "type": "Action.ShowCard",
                "id": "reject-form",
                "title": "Reject",
                "style": "destructive",
                "card": {
                    "type": "AdaptiveCard",
                    "body": [
                        {
                            "type": "Input.Text",
                            "id": "comment",
                            "label": "Why reject?",
                            "isRequired": True,
                            "isMultiline": True,
                            "errorMessage": "A comment is required.",
                        }
                    ],
                    "actions": [
                        {
                            "type": "Action.Execute",
                            "id": "reject",
                            "title": "Reject",
                            "verb": "reject",
                            "data": {"gate": "g-1"},
                        }
                    ],
                },
            },
        ]
    actions.append({"type": "Action.OpenUrl", "title": "Run in Azure DevOps", "url": "http://127.0.0.1/ado/run/104"})
    card["actions"] = actions
    if refresh_for is not None:
        card["refresh"] = {
            "action": {
                "type": "Action.Execute",
                "title": "Refresh",
                "verb": "refresh",
                "data": {"card": {"title": "g"}},
            },
            "userIds": refresh_for,
        }
    return card


def adaptive(card: dict[str, Any]) -> dict[str, Any]:
    return {"contentType": ADAPTIVE, "content": card}
