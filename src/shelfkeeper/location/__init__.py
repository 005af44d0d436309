"""Locations: the warehouses and stores that hold stock."""
