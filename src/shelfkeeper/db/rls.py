"""SQL that migrations use to put a tenant-owned table under row-level security."""

SERVICE_ROLE = "shelfkeeper_app"


def tenant_table_statements(table: str) -> list[str]:
    """Enable and force RLS on `table`, isolate rows by `app.tenant_id`, grant the service role.

    `current_setting(..., true)` is NULL (or empty) when no tenant is bound, so an unbound
    transaction matches no row and can insert none.
    """
    predicate = "tenant_id = current_setting('app.tenant_id', true)"
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} USING ({predicate}) WITH CHECK ({predicate})",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SERVICE_ROLE}",
    ]
