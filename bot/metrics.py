"""Handoff's Prometheus metrics, in a registry of their own (one per application)."""

from __future__ import annotations

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
        # the labelled children of the two HTTP metrics, looked up once per route and status
        self._answers: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

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
