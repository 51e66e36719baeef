"""Helpers shared by the API tests (``tests.support.apitest``; not a fixture module)."""

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

PASSWORD = "correct horse battery"


class Db:
    """Synchronous side door into the database for assertions."""

    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def value(self, sql: str, *params: Any) -> Any:
        rows = self.rows(sql, *params)
        return rows[0][0] if rows else None

    def counts(self) -> dict[str, int]:
        tables = (
            "users",
            "custody_keys",
            "ledger_accounts",
            "cards",
            "card_history",
            "audit_events",
            "refresh_sessions",
        )
        return {t: int(self.value(f"SELECT count(*) FROM {t}")) for t in tables}


@dataclass
class Account:
    id: str
    username: str
    email: str
    access: str
    refresh: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


def unique(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def register_and_login(client: httpx.AsyncClient, name: str | None = None) -> Account:
    username = name or unique()
    email = f"{username}@example.com"
    r = await client.post(
        "/auth/register", json={"email": email, "username": username, "password": PASSWORD}
    )
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    r = await client.post("/auth/login", json={"login": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    return Account(user_id, username, email, body["access_token"], body["refresh_token"])


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


async def relogin(client: httpx.AsyncClient, account: Account) -> Account:
    """A fresh access token for a session-scoped account (access tokens live minutes,
    a test session much longer)."""
    r = await client.post("/auth/login", json={"login": account.username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    return Account(account.id, account.username, account.email, body["access_token"],
                   body["refresh_token"])


def card_body(**overrides: Any) -> dict[str, Any]:
    """A valid ``POST /cards`` body in a set of its own; ``overrides`` replace fields."""
    body: dict[str, Any] = {
        "name": "Azure Dragon",
        "set_name": unique("set"),
        "number": "001",
        "rarity": "rare",
    }
    body.update(overrides)
    return body


async def create_card(client: httpx.AsyncClient, admin: Account, **overrides: Any
                      ) -> dict[str, Any]:
    """One card issued by ``admin`` through the API (201 asserted); its document."""
    r = await client.post("/cards", json=card_body(**overrides), headers=admin.auth)
    assert r.status_code == 201, r.text
    return dict(r.json())
