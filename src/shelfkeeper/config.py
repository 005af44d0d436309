"""Settings, read from `SHELFKEEPER_*` environment variables and `DATABASE_URL`."""

from __future__ import annotations

import json
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the service. `docs/configuration.md` documents each one."""

    model_config = SettingsConfigDict(
        env_prefix="SHELFKEEPER_", extra="ignore", frozen=True, populate_by_name=True
    )

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "SHELFKEEPER_DATABASE_URL")
    )
    data_dir: Path = Path(".shelfkeeper")
    database_pool_min_size: int = Field(default=2, ge=0)
    database_pool_max_size: int = Field(default=20, ge=1)

    jwt_secret: SecretStr | None = None
    master_key: SecretStr | None = None
    retired_master_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    keystore_dir: Path | None = None
    jwt_issuer: str = "shelfkeeper"
    jwt_audience: str = "shelfkeeper"
    jwt_jwks_url: str | None = None
    jwt_public_key: str | None = None
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["HS256", "RS256", "ES256"])
    jwt_default_ttl_seconds: int = Field(default=3600, ge=1)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    maintenance_interval_seconds: float = Field(default=300, ge=0)
    stock_coalescing: bool = True
    stock_coalescing_pool_size: int = Field(default=2, ge=1)

    relay_enabled: bool = True
    relay_poll_interval_seconds: float = Field(default=5, gt=0)
    events_stream_heartbeat_seconds: float = Field(default=15, gt=0)
    events_stream_poll_seconds: float = Field(default=1, gt=0)

    webhook_allow_private_networks: bool = False
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    )
    webhook_timeout_seconds: float = Field(default=10, gt=0)
    webhook_disable_after_failures: int = Field(default=5, ge=1)

    nats_url: str | None = None
    nats_stream: str = "SHELFKEEPER"

    log_format: Literal["json", "console"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    metrics_tenant_labels: bool = False
    metrics_token: SecretStr | None = None
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SHELFKEEPER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    )
    otel_service_name: str = "shelfkeeper"

    redis_url: str | None = None
    rate_limit_per_second: int = Field(default=1000, ge=0)
    rate_limit_burst: int = Field(default=2000, ge=0)

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """`https://a.example,https://b.example` (a JSON list is accepted too)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [origin.strip() for origin in text.split(",") if origin.strip()]
        return value

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _seconds_list(cls, value: object) -> object:
        """`5,300,1800` (a JSON list is accepted too)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("retired_master_keys", mode="before")
    @classmethod
    def _comma_separated_keys(cls, value: object) -> object:
        """`old-key-1,old-key-2`: master keys data keys may still be wrapped under, kept
        only so they can be unwrapped (and rewrapped: `shelfkeeper keys rewrap`)."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @cached_property
    def retired_master_key_bytes(self) -> list[bytes]:
        return [
            key.get_secret_value().strip().encode()
            for key in self.retired_master_keys
            if key.get_secret_value().strip()
        ]

    @property
    def keystore_path(self) -> Path:
        """Where the tenants' key shares are kept: outside the database, so that a database
        backup alone never holds what unwraps a data key (docs/privacy.md)."""
        return self.keystore_dir if self.keystore_dir is not None else self.data_dir / "keystore"

    @cached_property
    def master_key_bytes(self) -> bytes:
        """The key every per-tenant key derives from: configured, or generated once in the
        data directory. Changing it changes every derived key (rebuild blind indexes)."""
        if self.master_key is not None and self.master_key.get_secret_value().strip():
            return self.master_key.get_secret_value().strip().encode()
        return read_or_create_secret(self.data_dir / "master-key").encode()

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
