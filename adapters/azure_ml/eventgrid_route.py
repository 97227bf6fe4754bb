"""``POST|OPTIONS /hooks/eventgrid``: Event Grid deliveries of Azure ML and data-lake events.

Event Grid drops or dead-letters a delivery answered 400, 401, 403 or 413, and retries anything else
that is not 2xx (reference/azure-ml.md §2.4). So those four codes mean "the sender is wrong" here, never
"we have a problem":

- 200 with ``{"accepted", "duplicates", "ignored"}`` once the events are stored (events Handoff does not
  take, and the items of a batch that are not events, count as ignored: one bad event must not cost the
  others); 200 with ``{"validationResponse": code}`` for the subscription handshake, once the other events
  of its delivery, if any, are stored;
- 401 without the delivery secret (in the query string, URL-encoded or as written, or the configured
  header), or one of the previous secrets still accepted while a new one rolls out (§2.5: rotate by
  accepting old and new for a while);
- 400 for a body that is not events (not JSON, not an object or an array of them, an array of more items
  than the 5,000 events of Event Grid's largest batch, or no event in it); 413 over the cap;
- 503 with ``Retry-After`` when the core cannot store the events, or not within ``server.hook_timeout``
  (Event Grid stops waiting at 30 s): Event Grid retries the whole batch, and the events already stored
  come back as duplicates.

``OPTIONS`` answers the CloudEvents abuse-protection handshake (§2.2): it allows delivery from the origins in
``eventgrid.allowed_origins`` (Azure Event Grid's, ``eventgrid.azure.net``, unless configured) and answers any
other 403 without allowing it. It is not authentication, and it asks for none.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from aiohttp import web

from adapters.azure_ml.eventgrid import (
    Delivery,
    EventSelector,
    Ignored,
    IgnoreReason,
    Malformed,
    is_validation,
    parse_delivery,
    validation_code,
)
from adapters.web.answers import json_answer
from adapters.web.health import METRICS
from adapters.web.hook_deadline import HOOK_TIMEOUT, NotStoredInTime, stored_within
from adapters.web.limits import set_body_limit
from adapters.web.metrics import is_doctor_probe
from adapters.web.payloads import PayloadError, decode_json
from bot.config import AzureMLSettings, EventGridSettings
from bot.events import DomainEvent
from bot.ports import EventSink
from bot.trouble import RefusalStreak

PATH = "/hooks/eventgrid"
BODY_LIMIT = 3 * 1024 * 1024 // 2  # 1.5 MiB
RETRY_AFTER_SECONDS = 5
ALLOW = "POST, OPTIONS"
LOGGED_EVENTS = 5  # a batch can hold thousands; its log line names the first few
SHOWN_RESOURCE = 300  # resource ids and paths run long, and their last segments say the most
PREVIOUS_SECRET_TOLD_EVERY = 600.0  # seconds
OFF_LOOP_FROM = 16 * 1024
"""Bytes from which a delivery is read in a worker thread. Reading costs tens of microseconds an event (the
Event Grid model's, mostly): a batch of thousands would hold the event loop, and every other request, for
a good part of a second. One event, the usual delivery, is read where it is answered."""

log = logging.getLogger("handoff.ingest.eventgrid")


def _error(status: int, error: str, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return json_answer({"error": error, "message": message}, status=status, headers=headers)


def _shown(value: object, limit: int = 80) -> str:
    """A sender's value, safe for one log line: quoted, escaped, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _why(ignored: Ignored) -> str:
    detail = ignored.detail
    return f"{ignored.reason}: {_shown(detail, SHOWN_RESOURCE)}" if detail else str(ignored.reason)


def _item(malformed: Malformed) -> str:
    return f"[{malformed.index}] {_shown(malformed.event_id) if malformed.event_id else 'without an id'}"


def _undecoded_query_values(request: web.Request, name: str) -> list[str]:
    """The values of the query parameter ``name`` as the URL writes them, undecoded.

    A secret pasted into the endpoint URL as it is (``openssl rand -base64 32`` makes ``+`` and ``/``) reaches
    Handoff so: decoding reads its ``+`` as a space, and Event Grid does not retry a 401, so the subscription
    would fail its handshake. Accepting the value as written takes nothing from the check: it is the secret.
    """
    values: list[str] = []
    for pair in request.rel_url.raw_query_string.split("&"):
        key, _, value = pair.partition("=")
        if unquote_plus(key) == name:
            values.append(value)
    return values


def _header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable()


class EventGridRoute:
    """The request handlers; see :func:`add_eventgrid_route`."""

    def __init__(
        self, settings: EventGridSettings, sink: EventSink, selector: EventSelector, hook_timeout: float = HOOK_TIMEOUT
    ) -> None:
        self._secret = settings.delivery_secret.reveal().encode("utf-8")
        self._previous = [secret.reveal().encode("utf-8") for secret in settings.previous_delivery_secrets]
        self._previous_told_at: float | None = None
        self._query_parameter = settings.secret_query_parameter
        self._header = settings.secret_header
        self._origins = frozenset(origin.casefold() for origin in settings.allowed_origins)
        self._any_origin = "*" in self._origins
        self._sink = sink
        self._selector = selector
        self._hook_timeout = hook_timeout
        self._refusals = RefusalStreak(log, "event grid delivery")

    def _authentic(self, request: web.Request) -> bool:
        """Whether the query parameter or the header carries the delivery secret, or a previous one still
        accepted (each compared in constant time)."""
        written = (
            *request.query.getall(self._query_parameter, []),
            *_undecoded_query_values(request, self._query_parameter),
            *request.headers.getall(self._header, []),
        )
        given = [value.encode("utf-8", "surrogatepass") for value in written]
        current = previous = False
        for value in given:
            current |= hmac.compare_digest(value, self._secret)
            for secret in self._previous:
                previous |= hmac.compare_digest(value, secret)
        if previous and not current:
            self._tell_previous_secret()
        return current or previous

    def _tell_previous_secret(self) -> None:
        """Say, at most every ten minutes, that deliveries still come with a previous secret (so it is kept)."""
        now = time.monotonic()
        if self._previous_told_at is None or now - self._previous_told_at >= PREVIOUS_SECRET_TOLD_EVERY:
            self._previous_told_at = now
            log.info(
                "event grid deliveries still carry a previous delivery secret: keep it in "
                "eventgrid.previous_delivery_secrets until every subscription has the new one"
            )

    def _allows(self, origin: str) -> bool:
        return self._any_origin or origin.strip().casefold() in self._origins

    async def options(self, request: web.Request) -> web.Response:
        """The CloudEvents webhook abuse-protection handshake: allow the requesting origin when it is one of
        ``eventgrid.allowed_origins``; refuse any other with a 403 that does not name it allowed."""
        headers = {"Allow": ALLOW}
        origin = request.headers.get("WebHook-Request-Origin")
        if origin is not None:
            if not _header_safe(origin):
                return _error(400, "invalid_origin", "WebHook-Request-Origin is not a host name", headers)
            if not self._allows(origin):
                # only the header consents (the spec: "the handshake cannot rely on status codes"); the 403
                # tells a person trying the URL what is wrong
                log.warning(
                    "event grid webhook handshake from origin %s: refused, not in eventgrid.allowed_origins",
                    _shown(origin),
                )
                return _error(403, "origin_not_allowed", "this origin may not deliver events here", headers)
            headers["WebHook-Allowed-Origin"] = origin
            rate = (request.headers.get("WebHook-Request-Rate") or "").strip()
            if rate:  # grant the rate asked for; anything but a number of requests per minute gets "*"
                headers["WebHook-Allowed-Rate"] = rate if rate.isascii() and rate.isdigit() else "*"
            log.info("event grid webhook handshake: allowed origin %s", _shown(origin))
        return web.Response(status=200, headers=headers)

    def _select(self, delivery: Delivery, subscription: str | None) -> tuple[list[DomainEvent], list[str]]:
        """The events Handoff takes from a delivery (its handshake aside), and a log phrase for each of the first
        few items. What is wrong with the items it does not take is logged once for the delivery, naming the
        first few: a batch can hold thousands."""
        events: list[DomainEvent] = []
        outcomes: list[str] = []
        not_events = _Tally("ignored, not an event", "ignored, not events")
        incomplete = _Tally("skipped", "skipped, incomplete data")
        deleted: dict[tuple[str | None, str], None] = {}  # (subscription, topic), the first few
        for malformed in delivery.malformed:
            if not_events.count():
                not_events.name(_item(malformed), malformed.reason)
                outcomes.append(f"{_item(malformed)} ignored (not an event)")
        for envelope in delivery.envelopes:
            if is_validation(envelope):
                continue  # the handshake, answered as such
            try:
                selected = self._selector.domain_event(envelope)
            except PayloadError as exc:  # one bad event must not cost the batch: Event Grid would drop it
                if incomplete.count():
                    incomplete.name(f"{_shown(envelope.type)} {_shown(envelope.id)}", str(exc))
                if len(outcomes) < LOGGED_EVENTS:
                    outcomes.append(f"{_shown(envelope.type)} {_shown(envelope.id)} ignored (incomplete data)")
                continue
            if not isinstance(selected, Ignored):
                events.append(selected)
                continue
            if selected.reason is IgnoreReason.SUBSCRIPTION_DELETED and len(deleted) < LOGGED_EVENTS:
                deleted[(selected.detail or subscription, envelope.source)] = None
            if len(outcomes) < LOGGED_EVENTS:
                outcomes.append(f"{_shown(envelope.type)} {_shown(envelope.id)} ignored ({_why(selected)})")
        not_events.log()
        incomplete.log()
        for name, topic in deleted:
            log.warning(
                "event grid subscription %s of topic %s was deleted: Handoff will stop receiving its events",
                _shown(name, SHOWN_RESOURCE) if name else "(not named)",
                _shown(topic, SHOWN_RESOURCE),
            )
        return events, outcomes

    def _read(self, body: bytes, subscription: str | None) -> _Read:
        """The delivery in ``body``, its handshake code if any, and the events Handoff takes from it (see
        :meth:`_select`); runs in a worker thread for a large body, so shares nothing but the log and the
        (unchanging) selector.

        Raises:
            PayloadError: the body is not a delivery.
        """
        delivery = parse_delivery(decode_json(body))
        code = validation_code(delivery.envelopes)
        # the events of a batch that also holds the handshake are stored before the handshake is answered
        events, outcomes = self._select(delivery, subscription)
        return _Read(delivery, code, events, outcomes)

    async def post(self, request: web.Request) -> web.Response:
        if not self._authentic(request):
            log.warning("event grid delivery from %s: unauthorized", request.remote)
            return _error(401, "unauthorized", "the delivery secret is missing or wrong")
        body = await request.read()
        subscription = request.headers.get("aeg-subscription-name")
        try:
            if len(body) < OFF_LOOP_FROM:
                read = self._read(body, subscription)
            else:  # (thousands of events: their reading must not hold up every other request meanwhile)
                read = await asyncio.to_thread(self._read, body, subscription)
        except PayloadError as exc:
            log.warning("event grid delivery: rejected (%s)", exc)
            return _error(400, "invalid_payload", str(exc))
        delivery, code, events, outcomes = read.delivery, read.code, read.events, read.outcomes
        try:
            stored = await stored_within(self._hook_timeout, self._sink.accept_all(events)) if events else []
        except Exception as exc:
            # (running out of time says all there is: no traceback)
            self._refusals.refused(f"of {len(delivery)} event(s)", exc, traceback=not isinstance(exc, NotStoredInTime))
            return _error(
                503,
                "temporarily_unavailable",
                "Handoff could not store the events; retry",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if events:  # (a delivery of nothing Handoff takes asked nothing of the store)
            self._refusals.stored()
        accepted = sum(stored)
        duplicates = len(stored) - accepted
        for event, new in zip(events[: max(0, LOGGED_EVENTS - len(outcomes))], stored, strict=False):
            outcomes.append(f"{event.kind} {_shown(event.event_id)} {'accepted' if new else 'duplicate'}")
        ignored = len(delivery) - len(events) - (code is not None)
        if (metrics := request.app.get(METRICS)) is not None:
            # what doctor's probe (sent with the delivery secret) ignored is no news; what it stored would be
            counted_ignored = 0 if is_doctor_probe(request) else ignored
            metrics.hook_events_counted("eventgrid", accepted, duplicates, counted_ignored)
        if code is not None:
            log.info("event grid subscription %s: validation answered", _shown(subscription))
            if len(delivery) > 1:
                log.info("event grid delivery beside the handshake: %s", "; ".join(outcomes) or "none")
            return json_answer({"validationResponse": code})
        shown = "; ".join(outcomes) + ("; ..." if len(delivery) > LOGGED_EVENTS else "")
        log.info("event grid delivery of %d event(s): %s", len(delivery), shown or "none")
        return json_answer({"accepted": accepted, "duplicates": duplicates, "ignored": ignored})


@dataclass(frozen=True)
class _Read:
    """What :meth:`EventGridRoute._read` makes of a delivery's body."""

    delivery: Delivery
    code: str | None  # the subscription handshake's validation code, when the delivery holds it
    events: list[DomainEvent]  # what Handoff takes
    outcomes: list[str]  # a log phrase for each of the first few items


@dataclass
class _Tally:
    """The items of a delivery that one thing is wrong with: how many, and the first few, for one log line."""

    one: str  # what the line says of one item
    several: str  # of several
    counted: int = 0
    named: list[tuple[str, str]] = field(default_factory=list)  # (item, what is wrong with it)

    def count(self) -> bool:
        """Count one more item; whether it is one of the first few, which the line names (see :meth:`name`)."""
        self.counted += 1
        return self.counted <= LOGGED_EVENTS

    def name(self, item: str, reason: str) -> None:
        self.named.append((item, reason))

    def log(self) -> None:
        """One warning for them all, if there are any."""
        if self.counted == 1:
            [(item, reason)] = self.named
            log.warning("event grid event %s: %s (%s)", item, self.one, reason)
        elif self.counted > 1:
            shown = "; ".join(f"{item} ({reason})" for item, reason in self.named)
            more = "; ..." if self.counted > len(self.named) else ""
            log.warning("event grid delivery: %d items %s: %s%s", self.counted, self.several, shown, more)


def add_eventgrid_route(
    app: web.Application,
    settings: EventGridSettings,
    sink: EventSink,
    workspace: AzureMLSettings | None = None,
    hook_timeout: float = HOOK_TIMEOUT,
) -> None:
    """Register ``POST`` and ``OPTIONS /hooks/eventgrid`` (body cap 1.5 MiB) on ``app``.

    Args:
        app: Handoff's application (:func:`bot.app.create_app`).
        settings: the ``eventgrid`` section: the delivery secret (read now, so an unset variable fails
            here), where it travels, the allowed topics and the watched data-lake paths.
        sink: where parsed events go; it raises on internal trouble, which answers 503.
        workspace: when given, Azure ML events from any other workspace are ignored.
        hook_timeout: seconds a delivery waits for its events to be stored; past them it is answered 503.
    """
    route = EventGridRoute(settings, sink, EventSelector.from_settings(settings, workspace), hook_timeout)
    app.router.add_post(PATH, route.post)
    app.router.add_route("OPTIONS", PATH, route.options)
    set_body_limit(app, PATH, BODY_LIMIT)
