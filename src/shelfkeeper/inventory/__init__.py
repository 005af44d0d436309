"""Inventory: items, variants, stock levels per location, the movement ledger."""
