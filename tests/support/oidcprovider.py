"""A real OpenID provider for tests: ``ops/oidc/provider.mjs`` (npm oidc-provider 9.13.3).

The same launcher as the stack's ``oidc`` part, on a free port, seeded with two
clients of one issuer, each configured in the API as its own provider:

* ``dev`` (client ``ece-test``): the normal one, with an app redirect allow-list;
* ``dev-expiring`` (client ``ece-expiring``): its ID tokens live 1 s and its token
  endpoint answers 2.5 s late, so the ID token has expired when the API receives it
  (the API allows this provider no clock skew), like a provider whose clock is behind.

``oidc_provider`` (a session fixture) starts it and points the API's settings at it
(``ECE_OAUTH_*`` in the environment, settings re-read), and puts them back afterwards.
:class:`Browser` plays the user's browser through the provider's development login
and consent forms (any login, any password) until the provider redirects back to
the API's callback, and returns that URL for the test to call.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from api.oauth.providers import callback_url
from ece.settings import Settings, get_settings
from ops.stack.base import ManagedProcess, free_port, wait_until
from ops.stack.oidc import discovery_answers, provider_process

API_BASE = "http://test/api/v1"  # the in-process app's base URL (tests/support/api_fixtures)
APP_REDIRECT = "https://app.example.test/signed-in"  # an app page on dev's allow-list
PASSWORD = "any password works"
SETTINGS_KEYS = ("ECE_OAUTH_PROVIDERS", "ECE_OAUTH_CLIENT_SECRETS", "ECE_OAUTH_CALLBACK_BASE_URL")


class OidcProvider:
    """The provider process and the API configuration that points at it."""

    def __init__(self, log_path: Path) -> None:
        self.issuer = f"http://127.0.0.1:{free_port()}"
        self.log_path = log_path
        self.secrets = {"dev": secrets.token_urlsafe(24), "dev-expiring": secrets.token_urlsafe(24)}
        self.process: ManagedProcess | None = None

    def environment(self) -> dict[str, str]:
        """``ECE_OAUTH_*`` for the API: both providers, their secrets, our callback base."""
        providers = [
            {"name": "dev", "display_name": "Dev OpenID", "issuer": self.issuer,
             "client_id": "ece-test", "redirect_uris": [APP_REDIRECT]},
            {"name": "dev-expiring", "display_name": "Dev OpenID (late clock)",
             "issuer": self.issuer, "client_id": "ece-expiring", "clock_skew_seconds": 0},
        ]
        return {"ECE_OAUTH_PROVIDERS": json.dumps(providers),
                "ECE_OAUTH_CLIENT_SECRETS": json.dumps(self.secrets),
                "ECE_OAUTH_CALLBACK_BASE_URL": API_BASE}

    def clients(self, settings: Settings) -> list[dict[str, Any]]:
        return [
            {"client_id": "ece-test", "client_secret": self.secrets["dev"],
             "redirect_uris": [callback_url(settings, "dev")]},
            {"client_id": "ece-expiring", "client_secret": self.secrets["dev-expiring"],
             "redirect_uris": [callback_url(settings, "dev-expiring")],
             "id_token_ttl": 1, "token_delay_ms": 2500},
        ]

    def start(self, settings: Settings) -> OidcProvider:
        self.process = provider_process("oidc-test", self.issuer, self.clients(settings),
                                        self.log_path)
        proc = self.process.start()
        wait_until(lambda: discovery_answers(self.issuer), 60, "discovery answering",
                   "oidc-test", proc, self.log_path, "npm ci (oidc-provider)")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@pytest.fixture(scope="session")
def oidc_provider(api_settings: Settings) -> Iterator[OidcProvider]:
    provider = OidcProvider(api_settings.logs_dir / "oidc-test.log")
    saved = {key: os.environ.get(key) for key in SETTINGS_KEYS}
    os.environ.update(provider.environment())
    get_settings.cache_clear()
    try:
        provider.start(get_settings())
        yield provider
    finally:
        provider.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


class _Form(HTMLParser):
    """The first form of a page: its action and its inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action, self._inside = values.get("action", ""), True
        elif tag == "input" and self._inside and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


class Browser:
    """A user's browser at the provider: its own cookies, redirects followed by hand."""

    def __init__(self) -> None:
        self.http = httpx.AsyncClient(timeout=30)

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.http.aclose()

    async def sign_in(self, url: str, login: str) -> str:
        """Follow ``url`` (the API's redirect to the provider) through login and consent
        as ``login``; the URL the provider sends the browser back to (our callback)."""
        response = await self.http.get(url)
        for _ in range(20):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if target.startswith(API_BASE):
                    return target
                response = await self.http.get(target)
                continue
            assert response.status_code == 200, f"{response.status_code}: {response.text[:500]}"
            form = _Form()
            form.feed(response.text)
            assert form.action, f"no form on {response.url}: {response.text[:500]}"
            fields = dict(form.fields)
            if fields.get("prompt") == "login":
                fields.update(login=login, password=PASSWORD)
            response = await self.http.post(urljoin(str(response.url), form.action), data=fields)
        raise AssertionError("the provider never sent the browser back to the API")
