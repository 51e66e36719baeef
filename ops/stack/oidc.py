"""The development OpenID provider: npm ``oidc-provider`` 9.13.3 on 127.0.0.1.

Off by default (``ece up -p api -p oidc`` starts it with the API); it lets a developer
click through "sign in with ..." without a Google account, and the tests drive the
same launcher (``tests/support/oidcprovider.py``). ``ops/oidc/provider.mjs`` is the
whole provider: development login and consent forms that accept any login, an
in-memory store and a signing key generated at every start (so a restart forgets
every session and code: fine for development, never for production).

It is seeded with one client, ``ece-local``, whose secret is
``data/secrets/oauth_local_client_secret`` (the file the API reads for a provider
named ``local`` when ``ECE_OAUTH_CLIENT_SECRETS`` has none) and whose redirect URI
is the API's callback for ``local``. docs/oauth.md has the ``ECE_OAUTH_PROVIDERS``
entry that points the API at it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from api.oauth.providers import callback_url, client_secret_name
from ece.settings import REPO_ROOT
from ops.stack.base import ManagedProcess, Part, PartFailed, port_open, require_binary, wait_until
from ops.stack.supervision import read_state

LAUNCHER = REPO_ROOT / "ops" / "oidc" / "provider.mjs"
PACKAGE = REPO_ROOT / "node_modules" / "oidc-provider" / "package.json"
NPM_FIX = f"cd {REPO_ROOT} && npm ci --no-audit --no-fund"
LOCAL_PROVIDER = "local"
LOCAL_CLIENT_ID = "ece-local"


def provider_process(
    name: str, issuer: str, clients: Sequence[dict[str, Any]], log_path: Path
) -> ManagedProcess:
    """The launcher bound to the issuer's host and port, with ``clients`` seeded.

    The clients travel in the environment (``OIDC_CLIENTS``), not in argv, so their
    secrets stay out of the process list.
    """
    node = require_binary(name, "node", "apt-get install -y nodejs (node >= 20)")
    if not PACKAGE.exists():
        raise PartFailed(name, "npm oidc-provider is not installed", NPM_FIX)
    parts = urlsplit(issuer)
    argv = [node, str(LAUNCHER), "--host", parts.hostname or "127.0.0.1",
            "--port", str(parts.port or 80), "--issuer", issuer]
    return ManagedProcess(name, argv, log_path, env={"OIDC_CLIENTS": json.dumps(list(clients))})


def discovery_answers(issuer: str) -> bool:
    response = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2)
    return response.status_code == 200 and response.json().get("issuer") == issuer


class Oidc(Part):
    name = "oidc"
    start_timeout = 60.0  # about 3 s idle; node is slow to load it on a busy machine

    @property
    def url(self) -> str:
        return self.settings.oidc_dev_url.rstrip("/")

    def clients(self) -> list[dict[str, Any]]:
        secret = self.settings.secret(client_secret_name(LOCAL_PROVIDER))
        return [{"client_id": LOCAL_CLIENT_ID, "client_secret": secret,
                 "redirect_uris": [callback_url(self.settings, LOCAL_PROVIDER)]}]

    def start(self) -> None:
        parts = urlsplit(self.url)
        if port_open(parts.hostname or "127.0.0.1", parts.port or 80):
            raise PartFailed(self.name, f"{self.url} is already in use",
                             "stop what listens there or set ECE_OIDC_DEV_URL")
        self.process = provider_process(self.name, self.url, self.clients(), self.log_path)
        proc = self.process.start()
        wait_until(lambda: discovery_answers(self.url), self.start_timeout,
                   "discovery answering", self.name, proc, self.log_path, NPM_FIX)

    def health(self) -> tuple[bool, str]:
        """Healthy when discovery answers; also when it is off and nobody asked for it
        (an optional part: ``ece status`` must not fail for a platform without it)."""
        try:
            if discovery_answers(self.url):
                return True, f"{self.url} (development OpenID provider)"
            detail = "discovery names another issuer"
        except (httpx.HTTPError, ValueError) as exc:
            detail = str(exc)
        if self.process is None and not self._started_by_ece_up():
            return True, "off (optional: `ece up -p api -p oidc` starts it)"
        return False, f"{self.url}: {detail}"

    def _started_by_ece_up(self) -> bool:
        state = read_state(self.settings) or {}
        return bool(state.get("supervisor_pid")) and self.name in (state.get("parts") or {})
