"""Who is calling: principals from JWTs and API keys, roles and permissions."""
