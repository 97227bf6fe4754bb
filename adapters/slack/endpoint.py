"""The aiohttp routes in front of Bolt: ``POST /slack/events`` and, with OAuth, the install pages.

``/slack/events`` reads the raw body (capped at 1 MiB), verifies it (:mod:`adapters.slack.verification`),
checks that Bolt can read it (:mod:`adapters.slack.envelope`), and only then dispatches. Bad input is a
400 or 401 before Bolt sees it, and a request no listener takes (Bolt's 404) a 400 too; trouble inside
Bolt is a 503 with ``Retry-After`` (Slack retries events), never a 500.
"""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from .envelope import to_bolt_request as to_verified_bolt_request
from .tasks import AfterResponse, BackgroundTasks
from .verification import RequestVerifier

log = logging.getLogger("handoff.slack")

BODY_LIMIT = 1024 * 1024


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


class SlackEndpoint:
    """The request handlers.

    Args:
        bolt: the Bolt app (its own request verification off: this check replaces it).
        verifier: checks signature and timestamp.
        tasks: where the listeners' follow-up work runs once the answer has gone.
        body_limit: the largest body accepted, in bytes.
    """

    def __init__(
        self,
        bolt: AsyncApp,
        verifier: RequestVerifier,
        tasks: BackgroundTasks,
        body_limit: int = BODY_LIMIT,
    ) -> None:
        self.bolt = bolt
        self.verifier = verifier
        self.tasks = tasks
        self.body_limit = body_limit

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Events API, slash commands and interactivity, all on one URL."""
        if request.content_length is not None and request.content_length > self.body_limit:
            return _too_large(self.body_limit)
        try:
            body = await request.read()  # bounded by the app's client_max_size
        except web.HTTPRequestEntityTooLarge:
            return _too_large(self.body_limit)
        if len(body) > self.body_limit:
            return _too_large(self.body_limit)
        verdict = self.verifier.verify(body, request.headers)
        if not verdict.ok or verdict.text is None:
            log.info("Slack request refused (%s): %s", verdict.status, verdict.reason)
            if verdict.status == 400:
                return _error(400, "invalid_body", verdict.reason)
            return _error(401, "invalid request", "the request is not signed by Slack, or is too old")
        headers = {k.lower(): v for k, v in request.headers.items()}
        after = AfterResponse(self.tasks)
        try:
            context = {AfterResponse.CONTEXT_KEY: after}
            bolt_request = to_verified_bolt_request(verdict.text, headers, request.query_string, context)
            if bolt_request is None:
                log.info("Slack request refused (400): signed but not a readable Slack payload")
                return _error(400, "invalid_body", "not a readable Slack payload")
            response = await self.bolt.async_dispatch(bolt_request)
            if response.status >= 500:
                log.warning("Bolt answered %s; telling Slack to retry", response.status)
                answer = _error(503, "temporarily_unavailable", "retry later", headers={"Retry-After": "5"})
            elif response.status == 404:  # no listener took it: a kind of payload or command Handoff has no use for
                log.info("Slack request refused (400): signed, but not a kind of request Handoff handles")
                answer = _error(400, "invalid_body", "not a kind of Slack request Handoff handles")
            else:
                answer = await to_aiohttp_response(response)
            try:
                await answer.prepare(request)  # send the acknowledgement now...
                await answer.write_eof()
            except ConnectionError:
                log.info("Slack hung up before the acknowledgement was sent")
            return answer
        finally:
            after.release()  # ...then start the work that follows it

    async def install(self, request: web.Request) -> web.Response:
        """``GET /slack/install``: the "Add to Slack" page (sets the OAuth state cookie)."""
        flow = self.bolt.oauth_flow
        if flow is None:
            raise web.HTTPNotFound()
        return await to_aiohttp_response(await flow.handle_installation(await to_bolt_request(request)))

    async def oauth_redirect(self, request: web.Request) -> web.Response:
        """``GET /slack/oauth_redirect``: Slack sends the installer back here with a code."""
        flow = self.bolt.oauth_flow
        if flow is None:
            raise web.HTTPNotFound()
        return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))


def _too_large(limit: int) -> web.Response:
    return _error(413, "payload_too_large", f"the body is over {limit} bytes")
