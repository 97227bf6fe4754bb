"""Handoff's Prometheus metrics, in a registry of their own (one per application)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bot import __version__


class Metrics:
    """The counters and histograms Handoff keeps; each application gets its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.info = Gauge("handoff_info", "Handoff build information", ["version"], registry=self.registry)
        self.info.labels(version=__version__).set(1)
        self.http_requests = Counter(
            "handoff_http_requests_total",
            "HTTP requests answered, by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "handoff_http_request_seconds",
            "Time to answer an HTTP request, by route",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.hook_events = Counter(
            "handoff_hook_events_total",
            "Events in the webhook deliveries Handoff accepted, by sender and outcome "
            "(accepted, duplicate: stored before; ignored: of a type or from a place Handoff does not use)",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.deliveries = Gauge(
            "handoff_deliveries",
            "Deliveries in the outbox by state, read from the store at each scrape (dead: gave up, alerted)",
            ["state"],
            registry=self.registry,
        )
        # the labelled children of the two HTTP metrics, looked up once per route and status
        self._answers: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._hook_events: dict[tuple[str, str], Counter] = {}

    def answered(self, route: str, status: int, seconds: float) -> None:
        """Count one HTTP answer on ``route`` with ``status`` and record how long it took."""
        children = self._answers.get((route, status))
        if children is None:
            children = (
                self.http_requests.labels(route=route, status=str(status)),
                self.http_latency.labels(route=route),
            )
            self._answers[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def hook_events_counted(self, source: str, accepted: int, duplicates: int, ignored: int) -> None:
        """Count the events of one webhook delivery from ``source`` (``azure-devops``, ``eventgrid``)."""
        for outcome, count in (("accepted", accepted), ("duplicate", duplicates), ("ignored", ignored)):
            if count:
                child = self._hook_events.get((source, outcome))
                if child is None:
                    child = self._hook_events[(source, outcome)] = self.hook_events.labels(source, outcome)
                child.inc(count)

    def deliveries_counted(self, counts: Mapping[str, int]) -> None:
        """Set the outbox gauge from the store's count of deliveries by state."""
        for state, count in counts.items():
            self.deliveries.labels(state=state).set(count)
