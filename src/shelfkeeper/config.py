"""Settings, read from `SHELFKEEPER_*` environment variables and `DATABASE_URL`."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the service. `docs/configuration.md` documents each one."""

    model_config = SettingsConfigDict(env_prefix="SHELFKEEPER_", extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "SHELFKEEPER_DATABASE_URL")
    )
    data_dir: Path = Path(".shelfkeeper")
    database_pool_min_size: int = Field(default=2, ge=0)
    database_pool_max_size: int = Field(default=20, ge=1)

    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "shelfkeeper"
    jwt_audience: str = "shelfkeeper"
    jwt_jwks_url: str | None = None
    jwt_public_key: str | None = None
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["HS256", "RS256", "ES256"])
    jwt_default_ttl_seconds: int = Field(default=3600, ge=1)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    maintenance_interval_seconds: float = Field(default=300, ge=0)

    log_format: Literal["json", "console"] = "json"

    @cached_property
    def jwt_signing_secret(self) -> str:
        """The built-in issuer's HS256 key: configured, or generated once in the data directory."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        return read_or_create_secret(self.data_dir / "jwt-secret")


def read_or_create_secret(path: Path) -> str:
    """Return the secret stored at `path`, creating it (mode 0600) the first time.

    The secret is written to a private temporary file and hard-linked into place, so two
    processes (or threads) starting together agree on one complete key. Raises
    RuntimeError if the file is empty: signing with an empty key would accept forgeries.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    secret = path.read_text().strip()
    if not secret:
        raise RuntimeError(f"{path} is empty; remove it to have a new secret generated")
    return secret
