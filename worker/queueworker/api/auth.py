"""JWT bearer tokens: who calls, and what they may do.

A token is a JWT signed with HS256 (a shared secret) or RS256 (the issuer's private key;
we hold the public key). The algorithm a token names picks the key set, and only the
algorithms we hold keys for are accepted, so an RS256 public key can never be used as
an HS256 secret (the "algorithm confusion" attack) and ``alg: none`` is refused.

Claims: ``sub`` (the user: rate limits count per user), ``exp`` (required), ``scope``
(space-separated, as in OAuth 2.0) or ``scopes`` (a list), optional ``queues`` (the
queues this token may enqueue to; absent: all), and ``aud`` / ``iss`` when the server
is configured with them. Scopes: ``jobs:write`` (enqueue), ``jobs:read`` (job, result,
wait, events, queues, workers), ``admin`` (everything, including the failed store and
pause/resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import RSAAlgorithm

from queueworker.api.settings import ApiSettings, ApiSettingsError
from queueworker.common.errors import QueueworkerError

SCOPE_READ = "jobs:read"
SCOPE_WRITE = "jobs:write"
SCOPE_ADMIN = "admin"
SCOPES = (SCOPE_READ, SCOPE_WRITE, SCOPE_ADMIN)
LEEWAY_SECONDS = 30  # clock skew between the token's issuer and us


class AuthError(QueueworkerError):
    """The token is missing or invalid (401); ``reason`` is a metric label."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    user: str
    scopes: frozenset[str]
    queues: frozenset[str] | None = None  # None: every queue

    def allows(self, scope: str) -> bool:
        return SCOPE_ADMIN in self.scopes or scope in self.scopes

    def may_use(self, queue: str) -> bool:
        return self.queues is None or queue in self.queues or SCOPE_ADMIN in self.scopes


ANONYMOUS_ADMIN = Principal("anonymous", frozenset({SCOPE_ADMIN}))


class Verifier:
    def __init__(self, settings: ApiSettings) -> None:
        self.keys: dict[str, list[Any]] = {}
        if settings.hs256_secrets:
            self.keys["HS256"] = list(settings.hs256_secrets)
        if settings.rs256_public_keys:
            self.keys["RS256"] = [rsa_public_key(k) for k in settings.rs256_public_keys]
        self.audience = settings.audience
        self.issuer = settings.issuer
        self.no_auth = settings.no_auth

    def verify(self, token: str | None) -> Principal:
        if self.no_auth:
            return ANONYMOUS_ADMIN
        if not token:
            raise AuthError("missing bearer token (Authorization: Bearer <JWT>)", "missing")
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise AuthError("the bearer token is not a JWT", "malformed") from None
        if alg not in self.keys:
            raise AuthError(f"token algorithm {alg!r} is not accepted here "
                            f"(accepted: {', '.join(sorted(self.keys))})", "algorithm")
        claims = self._decode(token, str(alg))
        return principal_from(claims)

    def _decode(self, token: str, alg: str) -> dict[str, Any]:
        last: jwt.PyJWTError | None = None
        for key in self.keys[alg]:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token, key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                    leeway=LEEWAY_SECONDS,
                    options={"require": ["exp", "sub"], "verify_aud": self.audience is not None})
                return claims
            except jwt.InvalidSignatureError as exc:
                last = exc  # try the next key (rotation)
            except jwt.ExpiredSignatureError:
                raise AuthError("the token has expired", "expired") from None
            except jwt.PyJWTError as exc:
                raise AuthError(f"invalid token: {exc}", "invalid") from None
        raise AuthError(f"invalid token: {last}", "signature")


def rsa_public_key(pem: bytes) -> Any:
    """The parsed key (parsed once, not per request); a clear error for a bad PEM."""
    try:
        return RSAAlgorithm(RSAAlgorithm.SHA256).prepare_key(pem)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise ApiSettingsError(f"the RS256 public key cannot be read: {exc}") from None


def principal_from(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise AuthError("the token's sub claim (the user) must be a non-empty string", "invalid")
    raw = claims.get("scopes", claims.get("scope", ""))
    if isinstance(raw, str):
        scopes = frozenset(raw.split())
    elif isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        scopes = frozenset(raw)
    else:
        raise AuthError("the token's scope claim must be a string or a list of strings",
                        "invalid")
    queues = claims.get("queues")
    if queues is not None and not (isinstance(queues, list)
                                   and all(isinstance(q, str) for q in queues)):
        raise AuthError("the token's queues claim must be a list of queue names", "invalid")
    return Principal(sub, scopes, None if queues is None else frozenset(queues))
