"""The HTTP edge shared by every inbound route: limits, error mapping, health and metrics."""
