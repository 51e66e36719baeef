"""The PostgreSQL roles of docs/operations.md "Database roles", and their addresses.

Pure string work for :class:`ece.settings.Settings`, the one place role addresses are
built (it calls these with its own values; nothing here reads the environment).

Passwords reach libpq through a password file per role (``passfile=`` in the address),
not inside the address: ``ece status``, logs and error messages print addresses, and a
path is no secret; one file per role so that an analyst's OS user can be given the
analyst's file and no other. Only addresses that name one of our roles on a loopback host and
carry no password of their own get one, so external databases stay exactly as given.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

OWNER, APP, CDC, ETL, ANALYST = "ece_owner", "ece_app", "ece_cdc", "ece_etl", "ece_analyst"
DB_ROLES = (OWNER, APP, CDC, ETL, ANALYST)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
PASSFILE_HOSTS = ("127.0.0.1", "localhost")  # the local cluster listens on IPv4 only


def _conninfo_pairs(conninfo: str) -> dict[str, str]:
    return dict(token.split("=", 1) for token in conninfo.split() if "=" in token)


def is_local_role(address: str) -> bool:
    """``address`` names one of our roles on a loopback host, without its own password."""
    if "://" in address:
        parts = urlsplit(address)
        query = dict(parse_qsl(parts.query))
        user, host = parts.username, parts.hostname or "127.0.0.1"
        has_password = bool(parts.password) or "passfile" in query or "password" in query
    else:
        pairs = _conninfo_pairs(address)
        user, host = pairs.get("user"), pairs.get("host", "127.0.0.1")
        has_password = "password" in pairs or "passfile" in pairs
    return user in DB_ROLES and host in LOOPBACK and not has_password


def with_passfile(address: str, passfile: Callable[[str], Path]) -> str:
    """``address`` (URL or libpq ``key=value`` string) reading its password from
    ``passfile(role)`` when :func:`is_local_role`; otherwise unchanged. Idempotent."""
    if not is_local_role(address):
        return address
    if "://" in address:
        parts = urlsplit(address)
        query = dict(parse_qsl(parts.query)) | {"passfile": str(passfile(str(parts.username)))}
        return urlunsplit(parts._replace(query=urlencode(query, safe="/")))
    return f"{address} passfile={passfile(_conninfo_pairs(address)['user'])}"


def url_as(url: str, role: str) -> str:
    """``url`` logging in as ``role``: same host, port, database and options, no password."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    query = {k: v for k, v in parse_qsl(parts.query) if k not in ("passfile", "password")}
    return urlunsplit(parts._replace(netloc=f"{quote(role)}@{host}",
                                     query=urlencode(query, safe="/")))


def with_database(url: str, dbname: str) -> str:
    """``url`` pointing at database ``dbname``: same role, host, port and options (the
    query may hold a passfile path, so the name is not simply the text after a slash)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{quote(dbname)}"))


def conninfo_as(conninfo: str, role: str) -> str:
    """A libpq ``key=value`` string logging in as ``role`` instead, without a password."""
    tokens = [t for t in conninfo.split() if not t.startswith(("user=", "password=", "passfile="))]
    return " ".join([*tokens, f"user={role}"])


def passfile_lines(port: int, role: str, password: str) -> str:
    """libpq password-file lines: ``role``'s password for the loopback hosts on ``port``."""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return "".join(f"{host}:{port}:*:{role}:{escaped}\n" for host in PASSFILE_HOSTS)


def password_of(url: str, generated: Callable[[str], str]) -> str | None:
    """The password ``url`` logs in with: its own, else (a local role reading the password
    file) ``generated(role)``. For clients that read no libpq password file (JDBC)."""
    parts = urlsplit(url)
    if parts.password:
        return unquote(parts.password)
    if parts.username in DB_ROLES and "passfile" in dict(parse_qsl(parts.query)):
        return generated(parts.username)
    return None
