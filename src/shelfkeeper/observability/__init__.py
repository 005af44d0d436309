"""Logs, metrics: how the service is watched (`docs/observability.md`)."""
