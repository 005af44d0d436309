"""Events: the transactional outbox (relay, webhooks, SSE and the broker build on it)."""
