"""`shelfkeeper token`: tokens from the built-in issuer that the service verifies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shelfkeeper.auth.tokens import InvalidToken, TokenVerifier
from shelfkeeper.cli import main
from shelfkeeper.config import Settings

SECRET = "cli-secret-0123456789abcdef0123456789abcdef"


def run_token(data_dir: Path, *arguments: str) -> Result:
    env = {"SHELFKEEPER_JWT_SECRET": SECRET, "SHELFKEEPER_DATA_DIR": str(data_dir)}
    return CliRunner().invoke(main, ["token", *arguments], env=env)


async def verify(token: str, data_dir: Path, secret: str = SECRET) -> dict[str, Any]:
    verifier = TokenVerifier(Settings(jwt_secret=secret, data_dir=data_dir))
    return await verifier.verify(token)


async def test_tenant_token_verifies_with_its_tenant_role_and_subject(data_dir: Path) -> None:
    # when
    result = run_token(data_dir, "--tenant", "acme", "--role", "clerk", "--sub", "robot")

    # then
    assert result.exit_code == 0, result.output
    claims = await verify(result.output.strip(), data_dir)
    assert (claims["tenant_id"], claims["roles"], claims["sub"]) == ("acme", ["clerk"], "robot")
    assert (claims["iss"], claims["aud"]) == ("shelfkeeper", "shelfkeeper")
    assert claims["exp"] - claims["iat"] == 3600


async def test_location_options_make_a_store_clerk_token(data_dir: Path) -> None:
    first, second = "6f1c3a52-0d4e-4f7a-9a51-1b2c3d4e5f60", "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"
    result = run_token(
        data_dir, "--tenant", "acme", "--role", "clerk", "--location", first, "--location", second
    )

    assert result.exit_code == 0, result.output
    claims = await verify(result.output.strip(), data_dir)
    assert sorted(claims["location_ids"]) == sorted([first, second])


async def test_a_token_without_locations_has_no_location_claim(data_dir: Path) -> None:
    result = run_token(data_dir, "--tenant", "acme", "--role", "clerk")

    assert result.exit_code == 0, result.output
    assert "location_ids" not in await verify(result.output.strip(), data_dir)


async def test_default_subject_is_cli(data_dir: Path) -> None:
    result = run_token(data_dir, "--tenant", "acme", "--role", "viewer")

    assert result.exit_code == 0, result.output
    assert (await verify(result.output.strip(), data_dir))["sub"] == "cli"


async def test_ttl_sets_the_lifetime(data_dir: Path) -> None:
    result = run_token(data_dir, "--tenant", "acme", "--role", "admin", "--ttl", "90")

    assert result.exit_code == 0, result.output
    claims = await verify(result.output.strip(), data_dir)
    assert claims["exp"] - claims["iat"] == 90


async def test_platform_token_has_platform_admin_and_no_tenant(data_dir: Path) -> None:
    result = run_token(data_dir, "--platform")

    assert result.exit_code == 0, result.output
    claims = await verify(result.output.strip(), data_dir)
    assert claims["roles"] == ["platform_admin"]
    assert "tenant_id" not in claims


async def test_token_does_not_verify_under_another_secret(data_dir: Path) -> None:
    result = run_token(data_dir, "--tenant", "acme", "--role", "admin")

    assert result.exit_code == 0, result.output
    with pytest.raises(InvalidToken):
        await verify(result.output.strip(), data_dir, secret="another-" + SECRET)


@pytest.mark.parametrize(
    "arguments",
    [
        ("--platform", "--tenant", "acme"),
        ("--platform", "--role", "admin"),
        ("--tenant", "acme"),
        ("--role", "admin"),
        (),
        ("--tenant", "acme", "--role", "platform_admin"),
        ("--tenant", "acme", "--role", "owner"),
        ("--tenant", "acme", "--role", "admin", "--ttl", "0"),
    ],
)
def test_invalid_combinations_are_usage_errors(data_dir: Path, arguments: tuple[str, ...]) -> None:
    result = run_token(data_dir, *arguments)

    assert result.exit_code == 2, result.output
    assert "eyJ" not in result.output


def test_platform_with_tenant_says_why(data_dir: Path) -> None:
    result = run_token(data_dir, "--platform", "--tenant", "x")

    assert result.exit_code == 2
    assert "--platform takes neither --tenant, --role nor --location" in result.output


async def test_without_a_configured_secret_the_key_is_generated_in_the_data_directory(
    data_dir: Path,
) -> None:
    # when
    env = {"SHELFKEEPER_JWT_SECRET": None, "SHELFKEEPER_DATA_DIR": str(data_dir)}
    first = CliRunner().invoke(main, ["token", "--platform"], env=env)
    second = CliRunner().invoke(main, ["token", "--platform"], env=env)

    # then: both tokens verify with the one generated key, which only its owner can read
    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    settings = Settings(jwt_secret=None, data_dir=data_dir)
    verifier = TokenVerifier(settings)
    assert (await verifier.verify(first.output.strip()))["roles"] == ["platform_admin"]
    assert (await verifier.verify(second.output.strip()))["roles"] == ["platform_admin"]
    assert (data_dir / "jwt-secret").stat().st_mode & 0o777 == 0o600
