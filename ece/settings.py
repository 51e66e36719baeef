"""One settings object for every ECE process.

Every address, port and secret comes from here so that pointing one variable
(``ECE_KAFKA_BOOTSTRAP``, ``ECE_DATABASE_URL``, ...) at an external service moves
every process to it at once. Defaults are the embedded local stack of
``docs/operations.md``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, TypeAdapter, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ece import db_roles
from ece.private_files import write_private

REPO_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("dev", "test", "prod")  # ECE_ENV: anything else fails at start-up


class RateLimitSettings(BaseSettings):
    """``ECE_RATE_LIMIT_*``: request limits and failed-login lockouts (``api.web.ratelimit``).

    Its own group so the API can re-read it on every request (benchmarks and tests
    change the limits of a running app); empty variables mean the default.
    """

    model_config = SettingsConfigDict(
        env_prefix="ECE_RATE_LIMIT_", env_file=None, extra="ignore", env_ignore_empty=True
    )

    enabled: bool = Field(True, description="0 turns both mechanisms off")
    user: int = Field(600, description="requests per window per user")
    ip: int = Field(1200, description="requests per window per IP")
    window_seconds: int = Field(60, description="request window")
    login_account: int = Field(5, description="failed logins per account and client IP")
    login_account_total: int = Field(50, description="failed logins per account, all IPs")
    login_ip: int = Field(50, description="failed logins per IP")
    login_window_seconds: int = Field(900, description="failed-login window")
    challenge_ip: int = Field(100, description="wallet challenges per window per IP")
    challenge_address: int = Field(10, description="wallet challenges per window per address")
    challenge_window_seconds: int = Field(300, description="wallet-challenge window")

    @classmethod
    def from_mapping(cls, environ: Mapping[str, str]) -> RateLimitSettings:
        """The group as ``environ`` (a mapping, not the process environment) sets it."""
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            raw = environ.get(f"ECE_RATE_LIMIT_{name.upper()}")
            if raw is not None and raw.strip():
                kind: Any = field.annotation
                values[name] = TypeAdapter(kind).validate_python(raw.strip())
        return cls.model_construct(**values)


class Settings(BaseSettings):
    """Runtime configuration read from ``ECE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="ECE_", env_file=None, extra="ignore")

    env: Literal["dev", "test", "prod"] = Field(
        "dev", description="dev | test | prod; prod refuses generated secrets and key files")
    data_dir: Path = Field(REPO_ROOT / "data", description="all local state lives here")

    # Roles and their addresses: docs/operations.md "Database roles", ece/db_roles.py.
    database_url: str = Field("postgresql://ece_app@127.0.0.1:5433/ece",
                              description="the app's database (role ece_app)")
    database_owner_url: str | None = Field(None, description="migrations (ece_owner)")
    database_cdc_url: str | None = Field(None, description="Debezium (ece_cdc)")
    database_etl_url: str | None = Field(None, description="Dagster's reads (ece_etl)")
    lake_analyst_catalog: str | None = Field(None, description="analysts' lake (ece_analyst)")
    db_passfile_dir: Path | None = Field(None, description="local roles' pgpass_<role> files")
    redis_url: str = "redis://127.0.0.1:6380/0"
    kafka_bootstrap: str = "127.0.0.1:9092"
    arweave_url: str = "http://127.0.0.1:1984"
    solana_rpc_url: str = "http://127.0.0.1:8899"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(
        1, description="uvicorn worker processes; with more than one, /metrics sums every "
        "worker (Prometheus multiprocess files under data/run/api-metrics-<port>)")
    trusted_proxies: str = Field(
        "", description="comma-separated proxy IPs/CIDRs whose X-Forwarded-For is honoured"
    )
    tls_cert: Path | None = Field(
        None, description="PEM server certificate (chain): the API serves HTTPS, TLS 1.3 minimum, "
        "and the local PostgreSQL runs ssl=on with it (`ece tls init` makes a local one)")
    tls_key: Path | None = Field(None, description="PEM private key of ECE_TLS_CERT")
    tls_ca: Path | None = Field(
        None, description="PEM CA that issued ECE_TLS_CERT: clients verify the API and the app "
        "connects to PostgreSQL with sslmode=verify-full against it")
    flink_rest_port: int = 8081
    dagster_port: int = 3000
    lake_catalog: str = Field("dbname=ece_lake host=127.0.0.1 port=5433 user=ece_etl",
                              description="DuckLake catalog of the lake writers (ece_etl)")
    lake_data_path: Path | None = None
    backup_dir: Path | None = Field(
        None, description="where `ece backup create` writes (default <data_dir>/backups)"
    )

    topic_prefix: str = "ece"
    kafka_session_timeout_ms: int = Field(
        6000, description="short: the dev broker makes a group join wait half of it"
    )
    kafka_heartbeat_interval_ms: int = Field(1000, description="well below the session timeout")
    kafka_metadata_refresh_ms: int = Field(
        5000, description="how soon a consumer sees a topic created after it subscribed"
    )
    kafka_fetch_wait_max_ms: int = Field(100, description="an idle fetch's wait (data: at once)")
    flink_rest_url: str | None = Field(
        None, description="an external Flink's REST API (set: no local Flink is started)"
    )
    flink_mode: Literal["minicluster", "session"] = Field(
        "minicluster", description="minicluster: the job in one local JVM; session: a standalone "
        "Flink session cluster (a JobManager and ECE_FLINK_TASKMANAGERS TaskManagers)")
    flink_taskmanagers: int = Field(2, ge=1, description="TaskManagers of the session cluster")
    flink_parallelism: int = Field(1, ge=1, description="parallelism the job is submitted with")
    flink_jobmanager: str | None = Field(
        None, description="host:port of an existing Flink JobManager to submit the job to "
        "(set: no local cluster is started)")
    pypi_simple_url: str = Field(
        "https://pypi.org/simple", description="index the Flink connector jars come from"
    )
    cdc_partitions: int = Field(1, description="partitions of the topics CDC creates up front")
    cdc_max_retries: int = Field(8, description="failed CDC cycles in a row before giving up")
    cdc_heap: str = Field("512m", description="the CDC runner's JVM max heap")
    log_level: str = "INFO"
    mint_seed: SecretStr | None = Field(
        None, description="derives NFT mint keypairs; generated under data/secrets when unset"
    )
    test_crash_at: str | None = Field(
        None, description="TEST HOOK <step>[:<id>]: an NFT worker SIGKILLs itself there"
    )

    jwt_secret: SecretStr | None = Field(
        None, description="HMAC key for access tokens; generated under data/secrets when unset"
    )
    custody_kek: SecretStr | None = Field(
        None, description="key-encryption key for custody keys; generated in data/secrets if unset"
    )
    audit_hmac_key: SecretStr | None = Field(
        None, description="HMAC-SHA-256 key of the audit chain; generated in data/secrets if unset"
    )
    audit_anchor_interval_seconds: float = Field(
        60.0, description="how often the audit chain head is anchored on Solana"
    )
    kek_versions: SecretStr | None = Field(
        None, description='KEK versions after ECE_CUSTODY_KEK (version 0): JSON {"1": "<secret>"}'
    )
    keyring_file: Path | None = Field(
        None, description="a JSON file of KEK versions (same format), re-read on use"
    )
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    fee_bps: int = 250
    card_cache_ttl_seconds: int = 3600
    seed: bool = True
    siws_domain: str | None = Field(
        None, description="Sign-In-With-Solana domain (a public host name); default api host:port"
    )
    siws_uri: str | None = Field(None, description="SIWS URI; default http://<host:port>/api/v1")
    siws_chain_id: str = Field("localnet", description="SIWS chain id shown by wallets")
    vapid_subject: str = Field(
        "mailto:ops@ece.local", description="VAPID `sub` claim: how a push service reaches us"
    )
    ws_ping_seconds: float = Field(20.0, gt=0, description="/ws ping interval in seconds")
    push_ttl_seconds: int = Field(
        86400, description="Web Push TTL: how long a push service keeps a push for a browser"
    )
    oauth_providers: str = Field(
        "", description='OpenID Connect sign-in providers, JSON [{"name", "display_name", '
        '"issuer", "client_id", "redirect_uris": [...]}, ...] (docs/oauth.md); empty: none')
    oauth_client_secrets: SecretStr | None = Field(
        None, description='client secret per provider, JSON {"<name>": "<secret>"}; a '
        "missing one is generated in data/secrets/oauth_<name>_client_secret (not in prod)")
    oauth_callback_base_url: str | None = Field(
        None, description="base URL providers send the browser back to (+ /auth/oauth/<name>/"
        "callback, registered at the provider); default http://<api host:port>/api/v1")
    oauth_state_ttl_seconds: int = Field(
        600, gt=0, description="how long a started sign-in (state, nonce, PKCE verifier) lives")
    oauth_code_ttl_seconds: int = Field(
        60, gt=0, description="how long the one-time code of POST /auth/oauth/exchange lives")
    oidc_dev_url: str = Field(
        "http://127.0.0.1:9400", description="the local development OpenID provider "
        "(`ece up -p oidc`, ops/oidc/provider.mjs; its issuer)")

    @field_validator("env", mode="before")
    @classmethod
    def _known_env(cls, value: Any) -> Any:
        """A typo (``production``) must stop the process, not silently skip prod checks."""
        if isinstance(value, str) and value.strip().lower() in ENVIRONMENTS:
            return value.strip().lower()
        raise ValueError(f"ECE_ENV must be one of {', '.join(ENVIRONMENTS)}, not {value!r}")

    @field_validator("oauth_providers")
    @classmethod
    def _provider_list(cls, value: str) -> str:
        """A JSON list of objects, or empty: a typo must stop the process at start-up, not
        hide every sign-in button (``api.oauth.providers`` checks each entry's fields)."""
        if value.strip():
            try:
                entries = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"ECE_OAUTH_PROVIDERS is not JSON: {exc}") from None
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise ValueError("ECE_OAUTH_PROVIDERS must be a JSON list of objects")
        return value

    @model_validator(mode="after")
    def _verified_database(self) -> Settings:
        """With TLS on, every app connection (psycopg, SQLAlchemy, alembic, pg_dump: all
        read ``database_url``) verifies the server against ECE_TLS_CA; here, the one place
        the URL is built. An ``sslmode`` already in the URL (an external database) wins."""
        if self.tls_cert and self.tls_ca:
            parts = urlsplit(self.database_url)
            query = dict(parse_qsl(parts.query))
            if "sslmode" not in query:
                query |= {"sslmode": "verify-full", "sslrootcert": str(self.tls_ca)}
                self.database_url = urlunsplit(parts._replace(query=urlencode(query, safe="/")))
        return self

    @model_validator(mode="after")
    def _local_passwords(self) -> Settings:
        """A local role's address without a password reads it from the local password
        file (``ece.db_roles`` says why not inside the URL); others stay as given."""
        # Through __dict__: an assignment would mark them "set", i.e. external services.
        self.__dict__["database_url"] = self.with_passfile(self.database_url)
        self.__dict__["lake_catalog"] = self.with_passfile(self.lake_catalog)
        return self

    # --- derived values -------------------------------------------------

    @property
    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL for the same database (psycopg 3 driver)."""
        scheme, rest = self.database_url.split("://", 1)
        if scheme.startswith("postgres"):
            return f"postgresql+psycopg://{rest}"
        return self.database_url

    def passfile(self, role: str) -> Path:
        """The libpq password file of one local role (``data/secrets/pgpass_<role>``)."""
        return (self.db_passfile_dir or self.secrets_dir) / f"pgpass_{role}"

    def with_passfile(self, address: str) -> str:
        """``address`` reading a local role's password from its :meth:`passfile` (see
        :mod:`ece.db_roles`); other addresses unchanged."""
        return db_roles.with_passfile(address, self.passfile)

    def role_url(self, role: str) -> str:
        """The database URL of ``role``: its own setting, else ``database_url`` as that role.

        The one place role addresses are built, so pointing ``ECE_DATABASE_URL`` at another
        cluster moves every role with it; each can still be set on its own.
        """
        if role not in db_roles.DB_ROLES:
            raise ValueError(f"unknown database role {role!r}")
        given = {db_roles.APP: self.database_url, db_roles.OWNER: self.database_owner_url,
                 db_roles.CDC: self.database_cdc_url, db_roles.ETL: self.database_etl_url}
        return self.with_passfile(given.get(role) or db_roles.url_as(self.database_url, role))

    @property
    def api_metrics_dir(self) -> Path:
        """Where API workers share their Prometheus values (several workers only); one
        folder per port, so two APIs on one host never mix or wipe each other's."""
        return self.data_dir / "run" / f"api-metrics-{self.api_port}"

    @property
    def analyst_lake_catalog(self) -> str:
        """The lake catalog as ``ece_analyst`` (read-only): its setting, else derived."""
        return self.with_passfile(self.lake_analyst_catalog
                                  or db_roles.conninfo_as(self.lake_catalog, db_roles.ANALYST))

    def role_password(self, role: str) -> str:
        """The generated password of a local role (``data/secrets/pg_<role>``, mode 0600)."""
        if role not in db_roles.DB_ROLES:
            raise ValueError(f"unknown database role {role!r}")
        return self.secret(f"pg_{role}")

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
        return urlsplit(self.database_url).username or "ece_app"

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
    def backups_path(self) -> Path:
        return self.backup_dir or self.data_dir / "backups"

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

    @property
    def audit_key(self) -> bytes:
        """The audit chain's HMAC key (``ECE_AUDIT_HMAC_KEY``; refused generated in prod)."""
        return self.secret("audit_hmac", self.audit_hmac_key).encode()


def _write_secret_once(path: Path, value: str) -> None:
    """Create ``path`` holding ``value``, readable by its owner only, atomically.

    :func:`ece.private_files.write_private` without replacing: a link never
    replaces an existing file, so when two processes generate the same secret at
    once both end up reading the one that landed first, and no reader ever sees a
    half-written file.
    """
    write_private(path, value, replace=False)


def rate_limits() -> RateLimitSettings:
    """The ``ECE_RATE_LIMIT_*`` group as the environment has it *now* (the API checks it
    on every request); parsed again only when one of its variables changed."""
    raw = tuple(
        os.environ.get(f"ECE_RATE_LIMIT_{name.upper()}")
        for name in RateLimitSettings.model_fields
    )
    return _rate_limits(raw)


@lru_cache(maxsize=8)
def _rate_limits(_raw: tuple[str | None, ...]) -> RateLimitSettings:
    return RateLimitSettings()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached: environment is read once)."""
    return Settings()
