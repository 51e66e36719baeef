"""The configured OpenID providers and everything said to them (through ``authlib``).

Each provider is configured once (``ECE_OAUTH_PROVIDERS``, ``ECE_OAUTH_CLIENT_SECRETS``)
by its issuer; the endpoints and signing keys come from its discovery document
(``<issuer>/.well-known/openid-configuration``) and its JWKS, cached in the process.
The discovery document must name the issuer we configured, or a look-alike could
hand out its own keys. An ID token is accepted only when its signature verifies
against that JWKS (a key id we do not know triggers one JWKS refresh: the provider
rotated), and its ``iss``, ``aud``, ``exp``/``iat`` (with the provider's clock skew),
``nonce``, ``azp`` and ``at_hash`` all check out (``authlib``'s ``CodeIDToken``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

import httpx
import structlog
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

# authlib's HTTP client is httpx2 (httpx when that is missing): catch its errors.
from authlib.integrations.httpx_client._compat import httpx2 as oauth_http
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from api.core.problems import Problem, not_found, unauthorized
from ece.settings import Settings, get_settings

log = structlog.get_logger(__name__)

METADATA_TTL_SECONDS = 3600.0  # discovery and JWKS are re-read hourly (key rotation)
HTTP_TIMEOUT = 10.0  # seconds, for every call to a provider


class ProviderConfig(BaseModel):
    """One entry of ``ECE_OAUTH_PROVIDERS``."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    issuer: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")]
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    # Where the API may send the browser (with a one-time code) after sign-in: apps'
    # own pages, matched exactly. Empty: the callback answers the tokens itself.
    redirect_uris: list[str] = Field(default_factory=list)
    scopes: str = "openid email profile"
    clock_skew_seconds: int = Field(60, ge=0, le=600)


@dataclass(frozen=True)
class Provider:
    config: ProviderConfig
    client_secret: str
    callback_url: str

    @property
    def name(self) -> str:
        return self.config.name


def callback_url(settings: Settings, name: str) -> str:
    """The redirect URI registered at the provider (the API's own callback)."""
    base = settings.oauth_callback_base_url or (
        f"http://{settings.api_host}:{settings.api_port}/api/v1"
    )
    return f"{base.rstrip('/')}/auth/oauth/{name}/callback"


def client_secret_name(name: str) -> str:
    """The ``data/secrets`` file of a provider's client secret (dev and test only)."""
    return f"oauth_{name}_client_secret"


def parse_providers(settings: Settings) -> dict[str, Provider]:
    """``ECE_OAUTH_PROVIDERS`` validated; a bad entry stops with the reason."""
    try:
        entries = json.loads(settings.oauth_providers) if settings.oauth_providers.strip() else []
        configs = [ProviderConfig.model_validate(entry) for entry in entries]
    except (ValueError, ValidationError) as exc:
        raise RuntimeError(f"ECE_OAUTH_PROVIDERS is not a valid provider list: {exc}") from exc
    raw = settings.oauth_client_secrets
    try:
        secrets = json.loads(raw.get_secret_value()) if raw is not None else {}
    except ValueError:
        raise RuntimeError("ECE_OAUTH_CLIENT_SECRETS is not JSON") from None  # never echo it
    if not isinstance(secrets, dict):
        raise RuntimeError('ECE_OAUTH_CLIENT_SECRETS must be a JSON object {"<name>": "..."}')
    providers: dict[str, Provider] = {}
    for config in configs:
        if config.name in providers:
            raise RuntimeError(f"ECE_OAUTH_PROVIDERS names {config.name!r} twice")
        if settings.env == "prod" and not secrets.get(config.name):
            # settings.secret would refuse too, but at the first sign-in (a 500) and
            # naming a variable that does not exist; say it before the API serves.
            raise RuntimeError(f"ECE_OAUTH_CLIENT_SECRETS has no secret for provider "
                               f"{config.name!r} (prod generates none)")
        secret = str(secrets.get(config.name) or settings.secret(client_secret_name(config.name)))
        providers[config.name] = Provider(config, secret, callback_url(settings, config.name))
    return providers


@lru_cache(maxsize=4)
def _providers(_key: tuple[object, ...]) -> dict[str, Provider]:
    return parse_providers(get_settings())


def configured() -> dict[str, Provider]:
    """The providers of the current settings (parsed again only when what they are made
    of changed: the tests re-point the settings within one process)."""
    s = get_settings()
    secrets = s.oauth_client_secrets
    key = (s.oauth_providers, secrets.get_secret_value() if secrets else "",
           s.oauth_callback_base_url, s.api_host, s.api_port, str(s.data_dir), s.env)
    return _providers(key)


def provider(name: str) -> Provider:
    """The provider called ``name``; 404 ``not_found`` for any other name."""
    found = configured().get(name)
    if found is None:
        raise not_found("OpenID provider")
    return found


def unavailable(what: str) -> Problem:
    return Problem(502, "provider_unavailable", f"the OpenID provider is unavailable ({what})")


_metadata: dict[str, tuple[float, dict[str, Any]]] = {}
_keys: dict[str, tuple[float, KeySet]] = {}


async def _get_json(url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
            response = await http.get(url)
            response.raise_for_status()
            body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("oauth_provider_unreachable", url=url, error=str(exc))
        raise unavailable(url) from exc
    if not isinstance(body, dict):
        raise unavailable(f"{url} is not a JSON object")
    return body


async def metadata(p: Provider) -> dict[str, Any]:
    """The provider's discovery document (cached); its issuer must be the configured one."""
    issuer = p.config.issuer
    cached = _metadata.get(issuer)
    if cached and time.monotonic() - cached[0] < METADATA_TTL_SECONDS:
        return cached[1]
    document = await _get_json(f"{issuer.rstrip('/')}/.well-known/openid-configuration")
    if document.get("issuer") != issuer:  # OpenID Connect Discovery 1.0 §4.3: identical
        raise unavailable(f"discovery names issuer {document.get('issuer')!r}, not {issuer!r}")
    for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(document.get(field), str):
            raise unavailable(f"discovery has no {field}")
    _metadata[issuer] = (time.monotonic(), document)
    return document


async def _key_set(p: Provider, refresh: bool = False) -> KeySet:
    issuer = p.config.issuer
    cached = _keys.get(issuer)
    if cached and not refresh and time.monotonic() - cached[0] < METADATA_TTL_SECONDS:
        return cached[1]
    document = await metadata(p)
    try:
        keys = KeySet.import_key_set(await _get_json(document["jwks_uri"]))  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError) as exc:
        raise unavailable("its JWKS cannot be read") from exc
    _keys[issuer] = (time.monotonic(), keys)
    return keys


def oauth_client(p: Provider) -> AsyncOAuth2Client:
    """An authlib client for one exchange: PKCE S256, client_secret_basic."""
    return AsyncOAuth2Client(
        client_id=p.config.client_id,
        client_secret=p.client_secret,
        scope=p.config.scopes,
        redirect_uri=p.callback_url,
        code_challenge_method="S256",
        timeout=HTTP_TIMEOUT,
    )


async def authorization_url(p: Provider, state: str, nonce: str, verifier: str) -> str:
    """Where to send the browser: code flow, PKCE challenge of ``verifier``, state, nonce."""
    document = await metadata(p)
    async with oauth_client(p) as client:
        url, _ = client.create_authorization_url(
            document["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier
        )
    return str(url)


async def exchange_code(p: Provider, code: str, verifier: str) -> dict[str, Any]:
    """The token response for ``code``; 401 ``invalid_code`` when the provider refuses it
    (used already, expired, or not issued for this verifier and callback)."""
    document = await metadata(p)
    try:
        async with oauth_client(p) as client:
            token = await client.fetch_token(
                document["token_endpoint"], code=code, code_verifier=verifier
            )
    except OAuthError as exc:
        log.info("oauth_code_refused", provider=p.name, error=exc.error)
        raise unauthorized("the provider refused the authorization code", "invalid_code") from exc
    except (oauth_http.HTTPError, httpx.HTTPError) as exc:
        raise unavailable("token endpoint") from exc
    if "id_token" not in token:
        raise unauthorized("the provider returned no ID token", "invalid_id_token")
    return dict(token)


async def _decode(p: Provider, id_token: str) -> jwt.Token:
    algorithms = (await metadata(p)).get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [a for a in algorithms if a != "none"]
    try:
        return jwt.decode(id_token, await _key_set(p), algorithms=algorithms)
    except InvalidKeyIdError:
        return jwt.decode(id_token, await _key_set(p, refresh=True), algorithms=algorithms)


async def verify_id_token(p: Provider, token: dict[str, Any], nonce: str) -> dict[str, Any]:
    """The ID token's claims once every check passed; 401 with the reason otherwise:
    ``id_token_expired``, ``nonce_mismatch`` or ``invalid_id_token``."""
    try:
        decoded = await _decode(p, str(token["id_token"]))
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {"iss": {"essential": True, "value": p.config.issuer},
             "aud": {"essential": True, "value": p.config.client_id}},
            {"nonce": nonce, "client_id": p.config.client_id,
             "access_token": token.get("access_token")},
        )
        claims.validate(leeway=p.config.clock_skew_seconds)
    except ExpiredTokenError as exc:
        raise unauthorized("the ID token has expired", "id_token_expired") from exc
    except ClaimError as exc:
        if exc.claim == "nonce":
            raise unauthorized("the ID token's nonce is not ours", "nonce_mismatch") from exc
        raise unauthorized(f"ID token claim {exc.claim!r} refused", "invalid_id_token") from exc
    except (JoseError, ValueError) as exc:
        raise unauthorized(f"ID token refused: {exc}", "invalid_id_token") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 0 < len(subject) <= 255:  # OpenID Core §2
        raise unauthorized("the ID token names no valid subject", "invalid_id_token")
    return dict(claims)
