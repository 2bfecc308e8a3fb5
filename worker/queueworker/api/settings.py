"""Settings of ``queueworker api``: defaults, environment, command line (which wins).

Keys come from files or the environment so that a Kubernetes Secret can be mounted
either way (the chart mounts one as files):

- ``QUEUEWORKER_API_JWT_SECRET`` / ``--jwt-secret-file``: the HS256 shared secret;
- ``QUEUEWORKER_API_JWT_PUBLIC_KEY`` / ``--jwt-public-key-file``: the RS256 public key (PEM);

at least one of them, unless ``--no-auth`` (local experiments only: every caller is an
admin). Several keys rotate: a file or variable may hold several PEM blocks, and the
HS256 variable several secrets separated by newlines; a token verifies with any of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from queueworker.common.errors import QueueworkerError

ENV_JWT_SECRET = "QUEUEWORKER_API_JWT_SECRET"
ENV_JWT_PUBLIC_KEY = "QUEUEWORKER_API_JWT_PUBLIC_KEY"
ENV_JWT_SECRET_FILE = "QUEUEWORKER_API_JWT_SECRET_FILE"
ENV_JWT_PUBLIC_KEY_FILE = "QUEUEWORKER_API_JWT_PUBLIC_KEY_FILE"
ENV_RATE_LIMIT = "QUEUEWORKER_API_RATE_LIMIT"
ENV_QUEUES = "QUEUEWORKER_API_QUEUES"
# HS256 secrets shorter than this are refused: RFC 7518 section 3.2 asks for a key at least
# as long as the hash output (32 bytes for SHA-256).
MIN_HS256_BYTES = 32


class ApiSettingsError(QueueworkerError):
    """A setting of ``queueworker api`` that cannot work; the message names it."""


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``requests`` per ``seconds`` per user (bursts up to ``requests``)."""

    requests: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """``10/60`` (10 per minute), ``10/minute``, ``5/s``; ``0`` or ``off``: no limit."""
        t = text.strip().lower()
        if t in ("", "0", "off", "none"):
            return None
        n, sep, per = t.partition("/")
        units = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
                 "h": 3600.0, "hour": 3600.0}
        try:
            requests = int(n)
            seconds = units[per] if per in units else float(per) if sep else 60.0
        except ValueError:
            requests, seconds = 0, 0.0
        if requests < 1 or not seconds > 0:
            raise ApiSettingsError(
                f"bad rate limit {text!r}: use REQUESTS/SECONDS (10/60), REQUESTS/minute, "
                "or 0 for none")
        return cls(requests, seconds)


@dataclass
class ApiSettings:
    redis_url: str = "redis://localhost:6379/0"
    prefix: str = "qw"
    host: str = "0.0.0.0"  # a server in a pod listens on its pod IP
    port: int = 8000
    hs256_secrets: list[bytes] = field(default_factory=list)
    rs256_public_keys: list[bytes] = field(default_factory=list)
    audience: str | None = None
    issuer: str | None = None
    no_auth: bool = False
    # The audio-separation service's limit: 10 requests per minute per user.
    rate_limit: RateLimit | None = field(default_factory=lambda: RateLimit(10, 60.0))
    max_body_bytes: int = 1024 * 1024 + 16 * 1024  # a 1 MiB payload plus its options
    max_payload_bytes: int = 1024 * 1024
    max_wait: float = 300.0  # longest ?timeout= of /wait (seconds)
    stream_max_seconds: float = 3600.0  # an event stream closes after this long
    queues: list[str] = field(default_factory=list)  # shown by /v1/queues; empty: found by SCAN
    log_level: str = "info"

    def validate(self) -> None:
        if not (self.no_auth or self.hs256_secrets or self.rs256_public_keys):
            raise ApiSettingsError(
                f"no JWT key: set {ENV_JWT_SECRET} (HS256) or {ENV_JWT_PUBLIC_KEY} (RS256), "
                "or the --jwt-secret-file / --jwt-public-key-file options; --no-auth only "
                "for local experiments")
        for s in self.hs256_secrets:
            if len(s) < MIN_HS256_BYTES:
                raise ApiSettingsError(
                    f"an HS256 secret is {len(s)} bytes, under {MIN_HS256_BYTES}: "
                    "use a longer random secret (e.g. `openssl rand -hex 32`)")
        if self.max_body_bytes < 1024:
            raise ApiSettingsError("--max-body-bytes must be at least 1024")
        if not self.max_wait > 0:
            raise ApiSettingsError("--max-wait must be positive")
        if not 0 < self.port < 65536:
            raise ApiSettingsError(f"bad --port {self.port}")


def split_secrets(text: str) -> list[bytes]:
    """Several HS256 secrets, one a line (rotation); blank lines ignored."""
    return [line.strip().encode() for line in text.splitlines() if line.strip()]


def split_pems(text: str) -> list[bytes]:
    """Several PEM public keys in one text (rotation)."""
    end = "-----END PUBLIC KEY-----"
    blocks = [b.strip() + "\n" + end for b in text.split(end) if b.strip()]
    if not blocks:
        return []
    if not all(b.startswith("-----BEGIN PUBLIC KEY-----") for b in blocks):
        raise ApiSettingsError("the RS256 key is not a PEM public key "
                               "(-----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----)")
    return [b.encode() for b in blocks]


def read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ApiSettingsError(f"cannot read the {what} file {path!r}: {exc.strerror}") from None


def keys_from(env: Mapping[str, str], secret_file: str | None, public_key_file: str | None
              ) -> tuple[list[bytes], list[bytes]]:
    """HS256 secrets and RS256 public keys from the files (if given) or the environment."""
    secret_file = secret_file or env.get(ENV_JWT_SECRET_FILE)
    public_key_file = public_key_file or env.get(ENV_JWT_PUBLIC_KEY_FILE)
    secret_text = (read_text(secret_file, "JWT secret") if secret_file
                   else env.get(ENV_JWT_SECRET, ""))
    pem_text = (read_text(public_key_file, "JWT public key") if public_key_file
                else env.get(ENV_JWT_PUBLIC_KEY, ""))
    return split_secrets(secret_text), split_pems(pem_text)


def from_env(env: Mapping[str, str] | None = None) -> ApiSettings:
    env = os.environ if env is None else env
    s = ApiSettings()
    if env.get(ENV_RATE_LIMIT):
        s.rate_limit = RateLimit.parse(env[ENV_RATE_LIMIT])
    if env.get(ENV_QUEUES):
        s.queues = [q.strip() for q in env[ENV_QUEUES].split(",") if q.strip()]
    return s
