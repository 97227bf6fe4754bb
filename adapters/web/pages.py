"""``GET /about``, ``GET /privacy`` and ``GET /terms``: the short static pages the Teams app's details
link to (``developer.websiteUrl``, ``privacyUrl`` and ``termsOfUseUrl`` in the package ``handoff
teams-package`` writes), so that those links open a page of this installation, not someone else's site.

They say what Handoff does and keeps, and nothing about this installation's configuration.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

ABOUT_PATH = "/about"
PRIVACY_PATH = "/privacy"
TERMS_PATH = "/terms"

_ABOUT = (
    "About Handoff",
    [
        "Handoff is a chat bot for MLOps teams. It posts Azure Machine Learning and Azure DevOps events to "
        "Microsoft Teams and Slack channels as cards that update in place, turns release gates into Approve "
        "and Reject buttons for the people allowed to decide, and starts Azure ML jobs and Azure DevOps "
        "pipeline runs from chat commands.",
        "This installation is run by your organization, on its own servers; ask its administrators about it.",
    ],
)
_PRIVACY = (
    "Handoff: privacy",
    [
        "This Handoff installation is run by your organization, which decides how long what it keeps is "
        "kept and who may read it. Handoff itself sends nothing to its authors or to anyone else.",
        "What it keeps, in your organization's database: the events Azure DevOps and Azure ML send it, the "
        "cards it posted and the ids of their messages (so that it can update them), the channels and chats "
        "it was added to and what each subscribed to, the runs started from chat, and an audit log of "
        "release decisions, refusals and commands: who acted (as Teams or Slack names them, with their email "
        "address when the platform gives it), where, when, and the comment given.",
        "Whom it talks to: the Azure DevOps organization and the Azure ML workspace it is configured for, "
        "Microsoft Teams (the Bot Framework, and Microsoft Graph when it looks for a post whose answer was "
        "lost) and Slack. It reads a chat message when it is mentioned or sent a command, and a "
        "conversation's recent messages only to find a post of its own whose answer was lost.",
    ],
)
_TERMS = (
    "Handoff: terms of use",
    [
        "Handoff is provided by your organization, for its own teams' work, under your organization's "
        "policies for the tools it runs. It is provided as is.",
        "Commands and decisions made through Handoff act in Azure DevOps and Azure ML with the identity your "
        "organization gave it, and are recorded with your name in its audit log. Use them as you would use "
        "those services directly.",
    ],
)


def _page(title: str, paragraphs: list[str]) -> str:
    body = "\n".join(f"<p>{escape(text)}</p>" for text in paragraphs)
    return (
        '<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>\n<body>\n<h1>{escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def add_app_pages(app: web.Application) -> None:
    """Serve the three pages on ``app``."""
    for path, (title, paragraphs) in ((ABOUT_PATH, _ABOUT), (PRIVACY_PATH, _PRIVACY), (TERMS_PATH, _TERMS)):
        html = _page(title, paragraphs)

        async def page(request: web.Request, html: str = html) -> web.Response:
            return web.Response(text=html, content_type="text/html")

        app.router.add_get(path, page)
