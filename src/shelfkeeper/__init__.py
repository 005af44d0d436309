"""Shelfkeeper: a multi-tenant inventory and order-tracking API."""

__version__ = "0.1.0"
