"""Principals from verified JWT claims, and what each role may do (no database)."""

from __future__ import annotations

from typing import Any

import pytest

from shelfkeeper.auth.dependencies import principal_from_claims
from shelfkeeper.auth.principal import Permission, Principal, Role
from shelfkeeper.kit.problems import Unauthorized


def tenant_claims(**overrides: Any) -> dict[str, Any]:
    return {"sub": "alice", "tenant_id": "acme", "roles": ["clerk"]} | overrides


def test_claims_become_a_jwt_principal() -> None:
    principal = principal_from_claims(tenant_claims())

    assert principal == Principal(
        subject="alice", tenant_id="acme", roles=frozenset({Role.CLERK}), credential="jwt"
    )
    assert principal.actor == "user:alice"


def test_platform_claims_have_no_tenant() -> None:
    principal = principal_from_claims({"sub": "ops", "roles": ["platform_admin"]})

    assert principal.tenant_id is None
    assert principal.roles == frozenset({Role.PLATFORM_ADMIN})
    assert principal.permissions == frozenset({Permission.PLATFORM})


def test_unknown_roles_are_dropped() -> None:
    principal = principal_from_claims(tenant_claims(roles=["viewer", "superuser", "ADMIN"]))

    assert principal.roles == frozenset({Role.VIEWER})


def test_missing_roles_mean_no_roles() -> None:
    claims = tenant_claims()
    del claims["roles"]

    principal = principal_from_claims(claims)

    assert principal.roles == frozenset()
    assert principal.permissions == frozenset()
    assert principal.primary_role is None


@pytest.mark.parametrize(
    "malformed",
    [
        {"sub": 42},
        {"sub": None},
        {"sub": ["alice"]},
        {"tenant_id": 7},
        {"tenant_id": ["acme"]},
        {"roles": "admin"},
        {"roles": {"admin": True}},
        {"roles": None},
        {"roles": ["admin", 1]},
        {"roles": [["admin"]]},
    ],
)
def test_malformed_claims_are_unauthorized(malformed: dict[str, Any]) -> None:
    with pytest.raises(Unauthorized) as raised:
        principal_from_claims(tenant_claims(**malformed))

    assert raised.value.status == 401
    assert raised.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_missing_subject_is_unauthorized() -> None:
    claims = tenant_claims()
    del claims["sub"]

    with pytest.raises(Unauthorized):
        principal_from_claims(claims)


@pytest.mark.parametrize(
    ("role", "permissions"),
    [
        (Role.VIEWER, {Permission.READ}),
        (Role.CLERK, {Permission.READ, Permission.OPERATE}),
        (
            Role.ADMIN,
            {Permission.READ, Permission.OPERATE, Permission.DELETE, Permission.ADMINISTER},
        ),
        (Role.PLATFORM_ADMIN, {Permission.PLATFORM}),
    ],
)
def test_role_permissions(role: Role, permissions: set[Permission]) -> None:
    principal = Principal(subject="s", tenant_id="acme", roles=frozenset({role}), credential="jwt")

    assert principal.permissions == permissions
    assert [p for p in Permission if principal.can(p)] == [
        p for p in Permission if p in permissions
    ]


def test_several_roles_grant_the_union_and_the_strongest_is_primary() -> None:
    principal = Principal(
        subject="s",
        tenant_id="acme",
        roles=frozenset({Role.VIEWER, Role.CLERK}),
        credential="api_key",
    )

    assert principal.permissions == {Permission.READ, Permission.OPERATE}
    assert principal.primary_role is Role.CLERK
    assert principal.actor == "api_key:s"
