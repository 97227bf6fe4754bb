"""Handoff's HTTP metrics are counted without prometheus_client's per-count locks; the scrape must read
exactly what prometheus_client's own Counter and Histogram would have exposed."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bot.metrics import LATENCY_BUCKETS, Metrics
from bot.outbox import UnsentReason

ANSWERS = [
    ("/hooks/azure-devops", 200, 0.004),
    ("/hooks/azure-devops", 200, 0.005),  # on a bound: counted in that bucket (le is inclusive)
    ("/hooks/azure-devops", 503, 0.3),
    ("/hooks/azure-devops", 200, 7.0),  # beyond the largest bound: only in +Inf
    ("/readyz", 200, 0.0001),
]


def _series(text: str, prefix: str) -> list[str]:
    # prometheus_client adds a "_created" timestamp to each series of its own; Handoff's collector does not
    return sorted(line for line in text.splitlines() if line.startswith(prefix) and "_created" not in line)


def test_the_scrape_shows_what_prometheus_client_would_have_counted() -> None:
    metrics = Metrics()
    reference = CollectorRegistry()
    requests = Counter("handoff_http_requests_total", "HTTP requests", ["route", "status"], registry=reference)
    latency = Histogram(
        "handoff_http_request_seconds", "latency", ["route"], buckets=LATENCY_BUCKETS, registry=reference
    )
    events = Counter("handoff_hook_events_total", "events", ["source", "outcome"], registry=reference)
    for route, status, seconds in ANSWERS:
        metrics.answered(route, status, seconds)
        requests.labels(route=route, status=str(status)).inc()
        latency.labels(route=route).observe(seconds)
    metrics.hook_events_counted("azure-devops", 2, 1, 0)
    metrics.hook_events_counted("eventgrid", 0, 0, 3)
    metrics.hook_events_counted("azure-devops", 1, 0, 0)
    events.labels("azure-devops", "accepted").inc(3)
    events.labels("azure-devops", "duplicate").inc(1)
    events.labels("eventgrid", "ignored").inc(3)

    ours = generate_latest(metrics.registry).decode()
    theirs = generate_latest(reference).decode()
    for prefix in ("handoff_http_requests_total{", "handoff_http_request_seconds_", "handoff_hook_events_total{"):
        assert _series(ours, prefix) == _series(theirs, prefix), prefix
    assert 'handoff_http_request_seconds_bucket{le="0.005",route="/hooks/azure-devops"} 2.0' in ours
    assert 'handoff_http_request_seconds_bucket{le="+Inf",route="/hooks/azure-devops"} 4.0' in ours
    assert "# TYPE handoff_http_requests_total counter" in ours
    assert "# TYPE handoff_http_request_seconds histogram" in ours


def test_a_fresh_application_exposes_the_families_without_series() -> None:
    text = generate_latest(Metrics().registry).decode()
    assert "# TYPE handoff_hook_events_total counter" in text
    assert "handoff_hook_events_total{" not in text
    assert "# TYPE handoff_delivery_unsent_total counter" in text
    assert "handoff_delivery_unsent_total{" not in text


def test_deliveries_ended_unsent_are_exposed_as_prometheus_client_would_count_them() -> None:
    metrics = Metrics()
    reference = CollectorRegistry()
    unsent = Counter("handoff_delivery_unsent_total", "unsent", ["platform", "reason"], registry=reference)
    counted: list[tuple[str, UnsentReason, int]] = [
        ("slack", "superseded", 4),
        ("teams", "conversation_unreachable", 1),
        ("slack", "parent_never_posted", 1),
        ("slack", "superseded", 1),
    ]
    for platform, reason, count in counted:
        metrics.outbox.unsent(platform, reason, count)
        unsent.labels(platform=platform, reason=reason).inc(count)

    ours = generate_latest(metrics.registry).decode()
    prefix = "handoff_delivery_unsent_total{"
    assert _series(ours, prefix) == _series(generate_latest(reference).decode(), prefix)
    assert 'handoff_delivery_unsent_total{platform="slack",reason="superseded"} 5.0' in ours
