"""Principals (who is calling), roles, and what each role may do."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal
from uuid import UUID


class Role(StrEnum):
    ADMIN = "admin"
    CLERK = "clerk"
    VIEWER = "viewer"
    PLATFORM_ADMIN = "platform_admin"


TENANT_ROLES = (Role.ADMIN, Role.CLERK, Role.VIEWER)


class Permission(StrEnum):
    """What an endpoint needs; roles map to sets of these."""

    READ = "read"
    """Read the tenant's data."""
    OPERATE = "operate"
    """Inventory and order operations: adjust stock, edit items, place and move orders."""
    DELETE = "delete"
    """Delete catalogue data (items)."""
    ADMINISTER = "administer"
    """Tenant configuration: locations, API keys, webhooks, audit log, privacy."""
    PLATFORM = "platform"
    """Tenant lifecycle (platform operators only)."""


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.CLERK: frozenset({Permission.READ, Permission.OPERATE}),
    Role.ADMIN: frozenset(
        {Permission.READ, Permission.OPERATE, Permission.DELETE, Permission.ADMINISTER}
    ),
    Role.PLATFORM_ADMIN: frozenset({Permission.PLATFORM}),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    `location_ids`, from a token's `location_ids` claim (a store clerk's), limits where the
    caller may change stock; None (every API key, and tokens without the claim) means
    anywhere in the tenant. Reading is never limited by it.
    """

    subject: str
    tenant_id: str | None
    roles: frozenset[Role]
    credential: Literal["jwt", "api_key", "system"]
    location_ids: frozenset[UUID] | None = None

    @property
    def permissions(self) -> frozenset[Permission]:
        granted: frozenset[Permission] = frozenset()
        for role in self.roles:
            granted |= ROLE_PERMISSIONS[role]
        return granted

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def may_change_stock_at(self, location_id: UUID) -> bool:
        return self.location_ids is None or location_id in self.location_ids

    @property
    def actor(self) -> str:
        """How this caller is recorded in history and audit entries."""
        if self.credential == "system":
            return "system"
        prefix = "api_key" if self.credential == "api_key" else "user"
        return f"{prefix}:{self.subject}"

    @classmethod
    def system(cls, tenant_id: str) -> Principal:
        """The service itself acting in a tenant (jobs, signed callbacks): recorded as
        `system`, holding no role (it calls services directly, never endpoints)."""
        return cls(subject="system", tenant_id=tenant_id, roles=frozenset(), credential="system")

    @property
    def primary_role(self) -> Role | None:
        for role in (Role.ADMIN, Role.CLERK, Role.VIEWER, Role.PLATFORM_ADMIN):
            if role in self.roles:
                return role
        return None
