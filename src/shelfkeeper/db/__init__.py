"""Database access: the connection pool, tenant binding, migrations, embedded PostgreSQL."""
