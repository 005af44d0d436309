"""Privacy: customer data encrypted at rest under per-tenant keys, a customer's data
exported or erased on request."""
