"""One settings object for every ECE process.

Every address, port and secret comes from here so that pointing one variable
(``ECE_KAFKA_BOOTSTRAP``, ``ECE_DATABASE_URL``, ...) at an external service moves
every process to it at once. Defaults are the embedded local stack of
``contract/operations.md``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Runtime configuration read from ``ECE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="ECE_", env_file=None, extra="ignore")

    env: str = Field("dev", description="dev | test | prod; prod refuses generated secrets")
    data_dir: Path = Field(REPO_ROOT / "data", description="all local state lives here")

    database_url: str = "postgresql://ece@127.0.0.1:5433/ece"
    redis_url: str = "redis://127.0.0.1:6380/0"
    kafka_bootstrap: str = "127.0.0.1:9092"
    arweave_url: str = "http://127.0.0.1:1984"
    solana_rpc_url: str = "http://127.0.0.1:8899"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(1, description="uvicorn worker processes")
    flink_rest_port: int = 8081
    dagster_port: int = 3000
    lake_catalog: str = "dbname=ece_lake host=127.0.0.1 port=5433 user=ece"
    lake_data_path: Path | None = None

    topic_prefix: str = "ece"
    kafka_session_timeout_ms: int = Field(
        6000, description="short: the dev broker makes a group join wait half of it"
    )

    jwt_secret: SecretStr | None = Field(
        None, description="HMAC key for access tokens; generated under data/secrets when unset"
    )
    custody_kek: SecretStr | None = Field(
        None, description="key-encryption key for custody keys; generated in data/secrets if unset"
    )
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    fee_bps: int = 250
    card_cache_ttl_seconds: int = 3600
    seed: bool = True

    # --- derived values -------------------------------------------------

    @property
    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL for the same database (psycopg 3 driver)."""
        scheme, rest = self.database_url.split("://", 1)
        if scheme.startswith("postgres"):
            return f"postgresql+psycopg://{rest}"
        return self.database_url

    @property
    def db_host(self) -> str:
        return urlsplit(self.database_url).hostname or "127.0.0.1"

    @property
    def db_port(self) -> int:
        return urlsplit(self.database_url).port or 5432

    @property
    def db_name(self) -> str:
        return urlsplit(self.database_url).path.lstrip("/") or "ece"

    @property
    def db_user(self) -> str:
        return urlsplit(self.database_url).username or "ece"

    @property
    def redis_port(self) -> int:
        return urlsplit(self.redis_url).port or 6379

    @property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap.rsplit(":", 1)[1])

    @property
    def lake_path(self) -> Path:
        return self.lake_data_path or self.data_dir / "lake"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    def secret(self, name: str, explicit: SecretStr | None = None) -> str:
        """A secret from its setting, else from ``data/secrets/<name>``, created on first use.

        Generated secrets never enter git (``data/`` is ignored) and are refused in prod,
        where every secret must be configured explicitly.
        """
        if explicit is not None:
            return explicit.get_secret_value()
        if self.env == "prod":
            raise RuntimeError(f"ECE_{name.upper()} must be set in prod")
        path = self.secrets_dir / name
        if not path.exists():
            _write_secret_once(path, secrets.token_urlsafe(48))
        return path.read_text().strip()

    def as_environment(self) -> dict[str, str]:
        """These settings as ``ECE_*`` variables, for the child processes a part starts.

        A part built from an explicit Settings object (tests, a second instance) hands
        exactly those values to its process, whatever the parent's environment says.
        """
        environment: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, bool):
                value = "1" if value else "0"
            environment[f"ECE_{name.upper()}"] = str(value)
        return environment

    @property
    def jwt_key(self) -> str:
        return self.secret("jwt_secret", self.jwt_secret)


def _write_secret_once(path: Path, value: str) -> None:
    """Create ``path`` holding ``value``, readable by its owner only, atomically.

    The value goes to a private temporary file (mode 0600 from the first byte),
    which is then hard-linked into place: a link never replaces an existing file,
    so when two processes generate the same secret at once both end up reading
    the one that landed first, and no reader ever sees a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached: environment is read once)."""
    return Settings()
