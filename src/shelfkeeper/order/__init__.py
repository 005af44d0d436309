"""Orders: lines reserved all or nothing, a lifecycle that moves stock, payments."""
