"""PostgreSQL 15: the platform's own cluster under ``data/pg``, ready for logical decoding.

initdb refuses to run as root, so when the supervisor is root the cluster belongs
to the ``postgres`` OS user.

Authentication (``pg_hba.conf``, rewritten on every start so an older ``trust``
cluster is converted): TCP on loopback only and always ``scram-sha-256``; the
``postgres`` superuser is reachable only through the unix socket in ``data/pg-run``
(mode 0700, so only the cluster's OS user and root get in) and is used for this
bootstrap, backups' role dump and restores. Every process logs in as one of the roles
of docs/operations.md "Database roles" (:mod:`ops.stack.pg_roles` creates them and
their grants); their passwords are generated in ``data/secrets/pg_<role>`` (0600)
and re-applied on every start, so a regenerated secret still works, and the libpq
password files ``data/secrets/pgpass_<role>`` (0600) the addresses point at are
rewritten.

With ``ECE_TLS_CERT``/``ECE_TLS_KEY`` the server runs ``ssl=on`` (TLS 1.3 minimum)
with that certificate, and the app connects with ``sslmode=verify-full`` against
``ECE_TLS_CA`` (``Settings.database_url``). Plain loopback connections stay allowed:
the CDC connector and local tools still use them.
"""

from __future__ import annotations

import os
import pwd
import signal
from pathlib import Path

import psycopg

from ece.db_roles import DB_ROLES, passfile_lines
from ece.private_files import write_private
from ece.settings import Settings
from ops.stack.base import ManagedProcess, Part, PartFailed, wait_until
from ops.stack.pg_roles import bootstrap_roles

# Superuser only over the socket (its folder is 0700); TCP always asks for a password.
PG_HBA = """\
local   all  postgres                trust
local   all  all                     scram-sha-256
host    all  all       127.0.0.1/32  scram-sha-256
host    all  all       ::1/128       scram-sha-256
"""

PG_BIN = Path("/usr/lib/postgresql/15/bin")
APT_FIX = "apt-get install -y postgresql-15 (Debian's PostgreSQL 15 server)"
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "wal_level": "logical",
    "max_replication_slots": "10",
    "max_wal_senders": "10",
    # A bounded slot: a stuck CDC consumer cannot fill the disk; an invalidated
    # slot is detected by the CDC runner instead of retried for 30 minutes.
    "max_slot_wal_keep_size": "2GB",
    "max_connections": "200",
    "shared_buffers": "256MB",
    "synchronous_commit": "on",
    "fsync": "on",
    "log_min_messages": "warning",
    "password_encryption": "scram-sha-256",
}


def _run_as() -> str | None:
    """The OS user owning the cluster: ``postgres`` when we are root, else ourselves."""
    return "postgres" if os.geteuid() == 0 else None


class Postgres(Part):
    name = "postgres"

    @property
    def url(self) -> str:
        return self.settings.database_url

    @property
    def data_path(self) -> Path:
        return self.settings.data_dir / "pg"

    @property
    def socket_dir(self) -> Path:
        return self.settings.data_dir / "pg-run"

    @property
    def tls_dir(self) -> Path:
        return self.settings.data_dir / "pg-tls"

    def _tls_settings(self) -> dict[str, str]:
        """``ssl=on`` with a private copy of the certificate and key, or nothing without TLS.

        PostgreSQL only loads a key owned by the cluster user with mode 0600 (the
        ``postgres`` OS user when we are root), so it gets its own copy, refreshed on
        every start so a re-issued certificate is picked up.
        """
        cert, key = self.settings.tls_cert, self.settings.tls_key
        if cert is None or key is None:
            return {}
        self.tls_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.tls_dir)
        copies = {"server.crt": cert, "server.key": key}
        for name, source in copies.items():
            write_private(self.tls_dir / name, source.read_bytes(), replace=True)
            self._chown(self.tls_dir / name)
        return {"ssl": "on", "ssl_cert_file": str(self.tls_dir / "server.crt"),
                "ssl_key_file": str(self.tls_dir / "server.key"),
                "ssl_min_protocol_version": "TLSv1.3"}

    def _chown(self, path: Path) -> None:
        user = _run_as()
        if user:
            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        initdb = PG_BIN / "initdb"
        if not initdb.exists():
            raise PartFailed(self.name, f"{initdb} not found", APT_FIX)
        self.data_path.mkdir(parents=True, exist_ok=True)
        self._chown(self.data_path)
        init = ManagedProcess(
            "initdb",
            [str(initdb), "-D", str(self.data_path), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"],
            self.settings.logs_dir / "postgres-initdb.log",
            user=_run_as(),
        )
        proc = init.start()
        if proc.wait(120) != 0:
            raise PartFailed(self.name, "initdb failed", "remove data/pg and retry",
                             init.log_path)
        init.stop()

    def start(self) -> None:
        if self.external:
            return
        for folder in (self.settings.data_dir, self.settings.logs_dir):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(folder.stat().st_mode | 0o055)  # postgres user must traverse it
        if not (self.data_path / "PG_VERSION").exists():
            self._initdb()
        hba = self.data_path / "pg_hba.conf"
        write_private(hba, PG_HBA, replace=True)
        self._chown(hba)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.chmod(0o700)
        self._chown(self.socket_dir)
        pid_file = self.data_path / "postmaster.pid"
        if pid_file.exists():  # left by a killed run: postgres refuses to start otherwise
            stale_pid = int(pid_file.read_text().split()[0])
            try:
                os.kill(stale_pid, 0)
                raise PartFailed(self.name, f"another postgres (pid {stale_pid}) uses data/pg",
                                 "run `make down` or stop that process")
            except ProcessLookupError:
                pid_file.unlink()
        argv = [str(PG_BIN / "postgres"), "-D", str(self.data_path),
                "-c", f"port={self.settings.db_port}",
                "-c", f"unix_socket_directories={self.socket_dir}"]
        for key, value in {**SERVER_SETTINGS, **self._tls_settings()}.items():
            argv += ["-c", f"{key}={value}"]
        # SIGINT = "fast" shutdown: rolls back open transactions, checkpoints, exits.
        self.process = ManagedProcess(self.name, argv, self.log_path, user=_run_as(),
                                      stop_signal=signal.SIGINT, stop_timeout=30)
        proc = self.process.start()
        wait_until(lambda: self._connect("postgres"), 60, "accepting connections",
                   self.name, proc, self.log_path)
        self._bootstrap()

    def superuser_conninfo(self, dbname: str = "postgres") -> str:
        """The ``postgres`` superuser over the unix socket (bootstrap, backups, restores)."""
        return (f"host={self.socket_dir} port={self.settings.db_port} user=postgres "
                f"dbname={dbname}")

    def _connect(self, dbname: str) -> bool:
        with psycopg.connect(self.superuser_conninfo(dbname), connect_timeout=2):
            return True

    def _bootstrap(self) -> None:
        """The roles' passwords and password file, then roles, databases and grants."""
        settings = self.settings
        passwords = {role: settings.role_password(role) for role in DB_ROLES}
        port = settings.db_port
        for role, password in passwords.items():
            # Other clusters' lines (another port: a restore's, a test's) stay in the file.
            path = settings.passfile(role)
            kept = [line for line in (path.read_text().splitlines(keepends=True)
                                      if path.exists() else [])
                    if line.split(":")[1:2] != [str(port)]]
            write_private(path, "".join(kept) + passfile_lines(port, role, password),
                          replace=True)
        bootstrap_roles(self.superuser_conninfo, passwords, app_db=settings.db_name,
                        lake_db=_lake_dbname(settings), test=settings.env == "test")

    def health(self) -> tuple[bool, str]:
        try:
            with psycopg.connect(self.settings.database_url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True, self.url
        except psycopg.Error as exc:
            return False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _lake_dbname(settings: Settings) -> str:
    for token in settings.lake_catalog.split():
        if token.startswith("dbname="):
            return token.split("=", 1)[1]
    return "ece_lake"
