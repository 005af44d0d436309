"""The audit trail: one append-only entry per change, written in the change's transaction."""
