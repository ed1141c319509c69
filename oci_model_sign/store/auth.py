"""Registry authentication as an ``httpx.Auth`` flow: Basic and Bearer, one state per host.

Two schemes: Basic (send the pair on every request once the registry asked for it) and Bearer
(trade the pair, an identity token, or nothing for a short-lived token per scope at the
``realm`` named in the challenge; tokens are cached per scope and refreshed before expiry).

``HostAuth`` is what a registry host has taught us (its scheme and challenge, the credentials,
the token cache); it is shared by every repository opened on that host (``session``).
``RegistryAuth`` is the flow for one request: add the header for the request's scopes, and on
a 401 learn from the challenge and send again, at most twice. A streamed body cannot be sent
again, so for those the 401 is handed back and the caller resumes from the registry's upload
status instead.

Where credentials come from (options, helpers, the docker config) is ``credentials``; the
names are re-exported here for callers that knew them from this module.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ..errors import AuthError, LimitError, RegistryError
from .credentials import (
    Credentials,
    credentials_from_config,
    docker_config_path,
    load_docker_config,
    login_hint,
    normalize_server,
    remove_credentials,
    save_credentials,
)

__all__ = [
    "Challenge",
    "Credentials",
    "HostAuth",
    "RegistryAuth",
    "TokenCache",
    "basic_header",
    "credentials_from_config",
    "docker_config_path",
    "load_docker_config",
    "login_hint",
    "normalize_server",
    "parse_challenge",
    "parse_token_response",
    "remove_credentials",
    "repository_scope",
    "save_credentials",
]

TOKEN_SAFETY = 10.0  # refresh tokens this many seconds before they expire
DEFAULT_TOKEN_LIFETIME = 60.0  # the token spec's default when expires_in is absent
TOKEN_BODY_MAX = 1024 * 1024
AUTH_ROUNDS = 2  # 401s one request may learn from before the credentials count as refused


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: scheme (lowercase) and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> list[str]:
        return [s for s in self.params.get("scope", "").split(" ") if s]


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Bearer realm="…",service="…",scope="repository:a:pull,push"``.

    Quoted values may hold commas and backslash escapes (RFC 7235), which is why a simple regex
    or split on ',' is wrong: the scope above has a comma inside.
    """
    text = header.strip()
    if not text:
        return None
    scheme, _, rest = text.partition(" ")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,\t":
            i += 1
        start = i
        while i < n and rest[i] not in "=, \t":
            i += 1
        key = rest[start:i].strip().lower()
        while i < n and rest[i] in " \t":
            i += 1
        if i >= n or rest[i] != "=":
            # A token68 or a second challenge's scheme: stop at what we understood.
            if key and i < n and rest[i] not in ",":
                break
            continue
        i += 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            value: list[str] = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(rest[i])
                i += 1
            i += 1  # closing quote
            params[key] = "".join(value)
        else:
            start = i
            while i < n and rest[i] != ",":
                i += 1
            params[key] = rest[start:i].strip()
    return Challenge(scheme.lower(), params)


def repository_scope(repository: str, push: bool = False) -> str:
    return f"repository:{repository}:{'pull,push' if push else 'pull'}"


@dataclass
class _Token:
    value: str
    expires_at: float


class TokenCache:
    """Bearer tokens per (realm, service, scopes), thread-safe, dropped shortly before expiry."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(realm: str, service: str | None, scopes: list[str]) -> tuple[str, str, str]:
        return (realm, service or "", " ".join(sorted(set(scopes))))

    def get(self, realm: str, service: str | None, scopes: list[str]) -> str | None:
        k = self.key(realm, service, scopes)
        with self._lock:
            token = self._tokens.get(k)
            if token is None:
                return None
            if token.expires_at - TOKEN_SAFETY <= self._clock():
                del self._tokens[k]
                return None
            return token.value

    def put(
        self, realm: str, service: str | None, scopes: list[str], token: str, expires_in: float | None
    ) -> None:
        lifetime = expires_in if expires_in and expires_in > 0 else DEFAULT_TOKEN_LIFETIME
        # A token shorter-lived than the safety margin is still used once rather than refetched forever.
        lifetime = max(lifetime, TOKEN_SAFETY + 1.0)
        with self._lock:
            self._tokens[self.key(realm, service, scopes)] = _Token(token, self._clock() + lifetime)

    def invalidate(self, realm: str, service: str | None, scopes: list[str]) -> None:
        with self._lock:
            self._tokens.pop(self.key(realm, service, scopes), None)


def parse_token_response(data: bytes) -> tuple[str, float | None]:
    """``{"token"|"access_token": …, "expires_in": …}`` -> (token, lifetime seconds)."""
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise AuthError("the token endpoint answered with something that is not JSON") from exc
    if not isinstance(value, dict):
        raise AuthError("the token endpoint answered with something that is not a JSON object")
    token = value.get("token") or value.get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthError("the token endpoint answered without a token")
    expires = value.get("expires_in")
    lifetime = float(expires) if isinstance(expires, (int, float)) and not isinstance(expires, bool) else None
    return token, lifetime


def basic_header(credentials: Credentials) -> str:
    pair = f"{credentials.username or ''}:{credentials.password or ''}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


# -- the per-host state -----------------------------------------------------------------------


class HostAuth:
    """What one registry host has taught us about authenticating; thread-safe.

    Credentials are looked up once, and only when the host first answers 401, so anonymous
    registries never make omsign read the docker config or run a credential helper.
    """

    def __init__(
        self,
        host: str,
        registry: str,
        *,
        username: str | None = None,
        password: str | None = None,
        credentials_source: str | None = None,
        docker_config: Path | None = None,
    ) -> None:
        self.host = host  # host:port the API is spoken to, for messages
        self.registry = registry  # the name credentials are stored under
        self._username = username
        self._password = password
        self._credentials_source = credentials_source or "options"
        self._docker_config = docker_config
        self._lock = threading.Lock()
        self._scheme: str | None = None  # "basic" or "bearer" once the registry challenged us
        self._challenge: Challenge | None = None
        self._credentials: Credentials | None = None
        self._credentials_loaded = False
        self.tokens = TokenCache()
        self.client: httpx.Client | None = None  # for token requests; set by the session

    def flow(self, scopes: list[str], *, replayable: bool = True) -> RegistryAuth:
        return RegistryAuth(self, scopes, replayable=replayable)

    @property
    def credentials(self) -> Credentials | None:
        """The credentials in use (None before the first challenge, or when there are none)."""
        return self._credentials

    def _get_credentials(self) -> Credentials | None:
        """Explicit options first, else the docker config; looked up once, only when challenged."""
        if not self._credentials_loaded:
            if self._username is not None:
                self._credentials = Credentials(
                    self._username, self._password or "", source=self._credentials_source
                )
            else:
                self._credentials = credentials_from_config(self.registry, self._docker_config)
            self._credentials_loaded = True
        return self._credentials

    def no_credentials(self) -> AuthError:
        return AuthError(
            f"{self.host} requires authentication and no credentials were found",
            hint=login_hint(self.registry),
        )

    def refused(self, creds: Credentials | None) -> AuthError:
        if creds is None or not creds.has_secret:
            return self.no_credentials()
        who = f"user {creds.username!r}" if creds.username else "the identity token"
        return AuthError(
            f"{self.host} refused the credentials of {who} (from {creds.source})",
            hint=login_hint(self.registry),
        )

    def header(self, scopes: list[str], extensions: dict[str, Any] | None = None) -> str | None:
        """The ``Authorization`` value for a request needing ``scopes`` (None: send none)."""
        scheme = self._scheme
        if scheme is None:
            return None
        if scheme == "basic":
            creds = self._credentials
            return basic_header(creds) if creds is not None and creds.has_secret else None
        challenge = self._challenge
        assert challenge is not None and challenge.realm is not None
        token = self.tokens.get(challenge.realm, challenge.service, scopes)
        if token is None:
            with self._lock:
                token = self.tokens.get(challenge.realm, challenge.service, scopes)
                if token is None:
                    token = self._fetch_token(challenge, scopes, extensions or {})
        return f"Bearer {token}"

    def _fetch_token(self, challenge: Challenge, scopes: list[str], extensions: dict[str, Any]) -> str:
        """Trade credentials (or nothing: anonymous pull) for a bearer token for ``scopes``."""
        from .transport import describe_transport_error

        assert challenge.realm is not None and self.client is not None
        creds = self._get_credentials()
        service = challenge.service
        try:
            if creds is not None and creds.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "client_id": "omsign",
                    "scope": " ".join(scopes),
                }
                if service:
                    form["service"] = service
                resp = self.client.post(challenge.realm, data=form, extensions=extensions)
            else:
                params: list[tuple[str, str | int | float | bool | None]] = []
                if service:
                    params.append(("service", service))
                params.extend(("scope", s) for s in scopes)
                headers: dict[str, str] = {}
                if creds is not None and creds.has_secret:
                    headers["Authorization"] = basic_header(creds)
                    if creds.username:
                        params.append(("account", creds.username))
                params.append(("client_id", "omsign"))
                resp = self.client.get(challenge.realm, params=params, headers=headers, extensions=extensions)
        except httpx.TransportError as exc:
            raise RegistryError(
                f"cannot reach the token service {challenge.realm}: {describe_transport_error(exc)}"
            ) from exc
        if resp.status_code in (401, 403):
            raise self.refused(creds)
        if resp.status_code != 200:
            raise RegistryError(f"the token service {challenge.realm} answered {resp.status_code}")
        if len(resp.content) > TOKEN_BODY_MAX:
            raise LimitError("the token service sent an oversized answer")
        token, lifetime = parse_token_response(resp.content)
        self.tokens.put(challenge.realm, service, scopes, token, lifetime)
        return token

    def on_unauthorized(self, resp: httpx.Response, scopes: list[str], sent: str | None) -> list[str]:
        """Learn from a 401: switch scheme, drop a stale token; raise if nothing can help.

        Returns the scopes to ask for next (ours plus whatever the challenge names).
        """
        challenge = parse_challenge(resp.headers.get("www-authenticate", ""))
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            raise AuthError(
                f"{self.host} demands authentication with an unsupported scheme",
                hint=login_hint(self.registry),
            )
        with self._lock:
            creds = self._get_credentials()
            if challenge.scheme == "basic":
                if creds is None or creds.username is None or creds.password is None:
                    raise self.no_credentials()
                if sent is not None and sent.startswith("Basic "):
                    raise self.refused(creds)
                self._scheme = "basic"
                return scopes
            if not challenge.realm:
                raise AuthError(f"{self.host} sent a Bearer challenge without a realm")
            merged = sorted(set(scopes) | set(challenge.scopes))
            if sent is not None and sent.startswith("Bearer "):
                old = self._challenge
                if old is not None and old.realm:
                    self.tokens.invalidate(old.realm, old.service, scopes)
            self._scheme = "bearer"
            self._challenge = challenge
            return merged


class RegistryAuth(httpx.Auth):
    """The auth flow of one logical request (kept across its retries, so scopes learnt stay)."""

    def __init__(self, host_auth: HostAuth, scopes: list[str], *, replayable: bool = True) -> None:
        self.host_auth = host_auth
        self.scopes = scopes
        self.replayable = replayable
        self.rounds = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        while True:
            sent = self.host_auth.header(self.scopes, request.extensions)
            if sent is not None:
                request.headers["Authorization"] = sent
            response = yield request
            if response.status_code != 401:
                return
            response.read()  # a small body; frees the connection before a token request
            if self.rounds >= AUTH_ROUNDS:
                raise self.host_auth.refused(self.host_auth.credentials)
            self.rounds += 1
            self.scopes = self.host_auth.on_unauthorized(response, self.scopes, sent)
            if not self.replayable:
                return  # the 401 goes back to the caller, who cannot resend the body
