"""Handoff's Prometheus metrics, in a registry of their own (one per application)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from bot import __version__
from bot.outbox import UnsentReason

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# From an event's arrival to its message in chat: coalescing alone waits a second, a platform's rate limit
# or an outage of it minutes.
DELIVERY_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 300, 900)


@dataclass
class _Timings:
    """Observations by bucket (the last: over the largest bound), and their total seconds."""

    counts: list[int]
    seconds: float = 0.0

    @classmethod
    def observe(cls, by_key: dict[str, _Timings], key: str, buckets: tuple[float, ...], seconds: float) -> None:
        """Count ``seconds`` under ``key`` in ``by_key``."""
        timings = by_key.get(key)
        if timings is None:
            timings = by_key[key] = cls([0] * (len(buckets) + 1))
        timings.counts[bisect_left(buckets, seconds)] += 1  # a bucket counts observations up to its bound
        timings.seconds += seconds


def _histogram(
    name: str, documentation: str, label: str, buckets: tuple[float, ...], by_key: Mapping[str, _Timings]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=[label])
    bounds = [*(str(float(b)) for b in buckets), "+Inf"]
    for key, timings in sorted(by_key.items()):
        cumulative, running = [], 0
        for bound, count in zip(bounds, timings.counts, strict=True):
            running += count
            cumulative.append((bound, running))
        family.add_metric([key], cumulative, timings.seconds)
    return family


def _counter(
    name: str, documentation: str, labels: list[str], counts: Mapping[tuple[str, str], int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in sorted(counts.items()):
        family.add_metric(list(values), count)
    return family


class _Families(Collector):
    """A collector whose metric families are built afresh at each scrape by :meth:`_families`."""

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        return iter(self._families())

    def _families(self) -> list[Metric]:
        raise NotImplementedError


class HttpAnswers(_Families):
    """``handoff_http_requests_total``, ``handoff_http_request_seconds``, ``handoff_hook_events_total`` and
    ``handoff_doctor_probes_total``.

    Counted by the event loop's thread only (the answers and the scrape both run there).
    """

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, _Timings] = {}
        self.hook_events: dict[tuple[str, str], int] = {}
        self.probes: dict[tuple[str, str], int] = {}

    def answered(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        _Timings.observe(self.latency, route, self.buckets, seconds)

    def probed(self, route: str, status: int) -> None:
        key = (route, str(status))
        self.probes[key] = self.probes.get(key, 0) + 1

    def hook_events_counted(self, source: str, accepted: int, duplicates: int, ignored: int) -> None:
        for outcome, count in (("accepted", accepted), ("duplicate", duplicates), ("ignored", ignored)):
            if count:
                key = (source, outcome)
                self.hook_events[key] = self.hook_events.get(key, 0) + count

    def _families(self) -> list[Metric]:
        requests = CounterMetricFamily(
            "handoff_http_requests", "HTTP requests answered, by route and status", labels=["route", "status"]
        )
        for (route, status), count in sorted(self.requests.items()):
            requests.add_metric([route, str(status)], count)
        latency = _histogram(
            "handoff_http_request_seconds",
            "Time to answer an HTTP request, by route",
            "route",
            self.buckets,
            self.latency,
        )
        hook_events = _counter(
            "handoff_hook_events",
            "Events in the webhook deliveries Handoff accepted, by sender and outcome "
            "(accepted, duplicate: stored before; ignored: of a type or from a place Handoff does not use)",
            ["source", "outcome"],
            self.hook_events,
        )
        probes = _counter(
            "handoff_doctor_probes",
            "HTTP requests of `handoff doctor` checking Handoff's own endpoints, by route and status "
            "(apart from handoff_http_requests, which counts the services' traffic)",
            ["route", "status"],
            self.probes,
        )
        return [requests, latency, hook_events, probes]


class OutboxDeliveries(_Families):
    """``handoff_delivery_seconds``, ``handoff_delivery_failures_total`` and ``handoff_delivery_unsent_total``:
    what the outbox worker of this process delivered, how long after the event, what went wrong, and what
    ended unsent without an alert. Counted on the event loop's thread."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.latency: dict[str, _Timings] = {}
        self.failures: dict[tuple[str, str], int] = {}
        self.unsent_counts: dict[tuple[str, str], int] = {}

    def delivered(self, platform: str, seconds: float) -> None:
        _Timings.observe(self.latency, platform, self.buckets, max(0.0, seconds))

    def not_delivered(self, platform: str, outcome: str) -> None:
        key = (platform, outcome)
        self.failures[key] = self.failures.get(key, 0) + 1

    def unsent(self, platform: str, reason: UnsentReason, count: int = 1) -> None:
        key = (platform, reason)
        self.unsent_counts[key] = self.unsent_counts.get(key, 0) + count

    def _families(self) -> list[Metric]:
        latency = _histogram(
            "handoff_delivery_seconds",
            "Time from an event's arrival to its message in chat, by platform (one per delivery done)",
            "platform",
            self.buckets,
            self.latency,
        )
        failures = _counter(
            "handoff_delivery_failures",
            "Deliveries that did not go through at an attempt, by platform and outcome (rate_limited: the platform "
            "said wait; retried: it will be tried again; dead: given up, alerted; unreachable: its conversation "
            "cannot be posted in, marked inactive and the ops channel told; postponed: no room to send within "
            "the limits in the wait an attempt may spend, handed back until there is)",
            ["platform", "outcome"],
            self.failures,
        )
        unsent = _counter(
            "handoff_delivery_unsent",
            "Deliveries that ended without being sent and without an alert, by platform and reason (superseded: "
            "a newer version of its card was shown instead; parent_never_posted: a reply to a card never posted; "
            "conversation_unreachable: queued for a conversation already found unreachable and marked inactive)",
            ["platform", "reason"],
            self.unsent_counts,
        )
        return [latency, failures, unsent]


class Metrics:
    """The counters and histograms Handoff keeps; each application gets its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.info = Gauge("handoff_info", "Handoff build information", ["version"], registry=self.registry)
        self.info.labels(version=__version__).set(1)
        # counted in plain dictionaries on the event loop's thread and read at each scrape: every request
        # and webhook delivery is counted, and a prometheus_client child takes a lock for each count
        self.answers = HttpAnswers(LATENCY_BUCKETS)
        self.registry.register(self.answers)
        self.outbox = OutboxDeliveries(DELIVERY_BUCKETS)
        self.registry.register(self.outbox)
        self.deliveries = Gauge(
            "handoff_deliveries",
            "Deliveries in the outbox not delivered, by state, read from the store at each scrape (pending: waiting "
            "or being sent; dead: given up after failing, alerted or counted in handoff_delivery_unsent_total; "
            "unreachable: given up because their conversation cannot be posted in, not dead letters)",
            ["state"],
            registry=self.registry,
        )
        self.store_up = Gauge(
            "handoff_store_up",
            "1 when the store answered the last scrape's count of the outbox, 0 when it did not (handoff_deliveries "
            "then keeps its last count)",
            registry=self.registry,
        )

    def answered(self, route: str, status: int, seconds: float) -> None:
        """Count one HTTP answer on ``route`` with ``status`` and record how long it took."""
        self.answers.answered(route, status, seconds)

    def probed(self, route: str, status: int) -> None:
        """Count one answer to a ``handoff doctor`` probe on ``route`` (apart from the services' requests)."""
        self.answers.probed(route, status)

    def hook_events_counted(self, source: str, accepted: int, duplicates: int, ignored: int) -> None:
        """Count the events of one webhook delivery from ``source`` (``azure-devops``, ``eventgrid``)."""
        self.answers.hook_events_counted(source, accepted, duplicates, ignored)

    def deliveries_counted(self, counts: Mapping[str, int]) -> None:
        """Set the outbox gauge from the store's count of deliveries by state."""
        for state, count in counts.items():
            self.deliveries.labels(state=state).set(count)
        self.store_up.set(1)

    def deliveries_not_counted(self) -> None:
        """The store could not count the outbox: the gauge keeps its last count, and ``handoff_store_up`` says 0."""
        self.store_up.set(0)
