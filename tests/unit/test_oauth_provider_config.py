"""A sign-in provider without its client secret stops the API at start, in prod.

Before, prod accepted the configuration and the first user to press the provider's
button got a 500 (and the message named a variable that does not exist).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from api.oauth.providers import parse_providers
from ece.settings import Settings

PROVIDERS = json.dumps([{"name": "corp", "display_name": "Corp SSO",
                         "issuer": "https://sso.example.com", "client_id": "ece"}])


def _prod(tmp_path: Path, **extra: object) -> Settings:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return Settings(env="prod", data_dir=tmp_path, oauth_providers=PROVIDERS,
                    siws_domain="cards.example.com", trusted_proxies="10.0.0.5",
                    api_port=port, **extra)


def test_prod_names_the_missing_secret_before_serving(tmp_path: Path) -> None:
    prod = _prod(tmp_path)
    with pytest.raises(RuntimeError, match="ECE_OAUTH_CLIENT_SECRETS has no secret for "
                                           "provider 'corp'"):
        parse_providers(prod)
    done = subprocess.run([sys.executable, "-m", "ops.stack.api"], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={"PATH": "/usr/bin:/bin", **prod.as_environment()})
    assert done.returncode != 0
    assert "api: ECE_OAUTH_CLIENT_SECRETS has no secret for provider 'corp'" in done.stderr
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", prod.api_port)) != 0  # it never listened


def test_prod_with_the_secret_configured_starts_with_it(tmp_path: Path) -> None:
    prod = _prod(tmp_path, oauth_client_secrets=json.dumps({"corp": "s3cret"}))
    providers = parse_providers(prod)
    assert providers["corp"].client_secret == "s3cret"
    assert not (tmp_path / "secrets").exists()  # nothing generated in prod
