"""Ingest: the Azure DevOps service-hook and Event Grid routes on a running Handoff."""
