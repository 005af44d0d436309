"""Shared pieces every domain uses; imports no domain."""
