"""Handoff: MLOps team coordination on Microsoft Teams and Slack."""

__version__ = "0.1.0"
