"""Encryption at rest: payloads, results, progress details and failure records (AES-GCM).

Keys come from ``QUEUEWORKER_KEYS`` or the file named by ``QUEUEWORKER_KEYS_FILE``
(a mounted Secret): ``ID:BASE64KEY`` entries separated by commas or new lines,
each key 16, 24 or 32 random bytes (``queueworker keygen`` style:
``python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"``).
The **first** key encrypts; every listed key decrypts, found by the id stored
with each ciphertext. Rotation: put the new key first, keep the old ones until
the jobs, results and failed records they sealed are gone.

Which jobs: ``QUEUEWORKER_ENCRYPT_QUEUES`` (comma list of queue names and
``handler:NAME`` entries; default ``*``: all) tells the producer which jobs'
payloads it seals: a job is sealed when its queue or its handler is listed.
On Kubernetes, set ``QUEUEWORKER_KEYS`` in the pod template from a Secret
(``env[].valueFrom.secretKeyRef``) or mount the Secret and point
``QUEUEWORKER_KEYS_FILE`` at it; producers need the same ring. A worker needs no switch:
a sealed payload is recognised (``enc:`` is never the start of JSON), opened
with the ring, and that job's result, progress detail, error and traceback are
sealed with the current key. The operator never reads payloads, so it never
needs the keys to scale.

A sealed field is ``enc:1:KEY_ID:BASE64(nonce + ciphertext + tag)``; the job id
and the field name are the associated data, so a ciphertext cannot be moved to
another job or field unnoticed.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from queueworker.common.errors import QueueworkerError

ENV_KEYS = "QUEUEWORKER_KEYS"
ENV_KEYS_FILE = "QUEUEWORKER_KEYS_FILE"
ENV_ENCRYPT_QUEUES = "QUEUEWORKER_ENCRYPT_QUEUES"
MARK = "enc:1:"


class CryptoError(QueueworkerError):
    """A key that cannot be used, or a sealed field that cannot be opened (the reason, never
    the key)."""


def is_sealed(text: str) -> bool:
    return text.startswith(MARK)


@dataclass(frozen=True)
class Keyring:
    """Named AES-GCM keys; ``primary`` (the first) seals, all open. ``queues``: the
    queues a producer seals (``("*",)``: all)."""

    keys: Mapping[str, bytes]
    primary: str
    queues: tuple[str, ...] = ("*",)
    _aead: dict[str, AESGCM] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str, queues: str = "*") -> Keyring:
        """From ``ID:BASE64KEY`` entries (commas or new lines); the first one seals."""
        entries = [e.strip() for e in text.replace("\n", ",").split(",") if e.strip()]
        if not entries:
            raise CryptoError(f"no keys: {ENV_KEYS} wants ID:BASE64KEY[,ID:BASE64KEY...]")
        found: dict[str, bytes] = {}
        for entry in entries:
            kid, sep, b64 = entry.partition(":")
            kid = kid.strip()
            if not sep or not kid or any(c in kid for c in ": \t"):
                raise CryptoError(f"bad key entry #{len(found) + 1}: use ID:BASE64KEY")
            try:
                key = base64.b64decode(b64.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise CryptoError(f"key {kid!r} is not base64") from None
            if len(key) not in (16, 24, 32):
                raise CryptoError(f"key {kid!r} is {len(key)} bytes; AES-GCM wants 16, 24 or 32")
            if kid in found:
                raise CryptoError(f"key id {kid!r} is listed twice")
            found[kid] = key
        names = tuple(q.strip() for q in queues.split(",") if q.strip()) or ("*",)
        return cls(found, entries[0].partition(":")[0].strip(), names)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Keyring | None:
        """The ring the environment names (``QUEUEWORKER_KEYS`` or ``_KEYS_FILE``); None: none."""
        env = os.environ if env is None else env
        text = env.get(ENV_KEYS, "")
        path = env.get(ENV_KEYS_FILE, "")
        if not text and path:
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except OSError as exc:
                raise CryptoError(f"cannot read {ENV_KEYS_FILE}={path!r}: {exc.strerror}"
                                  ) from None
        if not text.strip():
            return None
        try:
            return cls.parse(text, env.get(ENV_ENCRYPT_QUEUES, "*"))
        except CryptoError as exc:  # say where the bad key came from
            raise CryptoError(f"{ENV_KEYS if env.get(ENV_KEYS) else path}: {exc}") from None

    def seals(self, queue: str, handler: str = "") -> bool:
        """Whether a producer seals the payload of a job on ``queue`` for ``handler``."""
        return "*" in self.queues or queue in self.queues or (
            bool(handler) and f"handler:{handler}" in self.queues)

    def _cipher(self, kid: str) -> AESGCM:
        aead = self._aead.get(kid)
        if aead is None:
            key = self.keys.get(kid)
            if key is None:
                raise CryptoError(f"sealed with key {kid!r}, which is not in the ring "
                                  f"({', '.join(self.keys)}); add it to {ENV_KEYS}")
            aead = self._aead[kid] = AESGCM(key)
        return aead

    def seal(self, plain: str, job_id: str, name: str) -> str:
        nonce = secrets.token_bytes(12)
        ct = self._cipher(self.primary).encrypt(nonce, plain.encode(), _aad(job_id, name))
        return f"{MARK}{self.primary}:{base64.b64encode(nonce + ct).decode()}"

    def open(self, sealed: str, job_id: str, name: str) -> str:
        kid, sep, b64 = sealed[len(MARK):].partition(":")
        if not sep:
            raise CryptoError(f"job {job_id}: {name} is not a well-formed sealed field")
        try:
            blob = base64.b64decode(b64, validate=True)
            plain = self._cipher(kid).decrypt(blob[:12], blob[12:], _aad(job_id, name))
        except (binascii.Error, ValueError, InvalidTag):
            raise CryptoError(f"job {job_id}: {name} does not open with key {kid!r} "
                              "(wrong key, or the field was altered)") from None
        return plain.decode()


def _aad(job_id: str, name: str) -> bytes:
    return f"{job_id}\0{name}".encode()


def seal_field(text: str, job_id: str, name: str, keyring: Keyring | None) -> str:
    """``text`` sealed with the ring's primary key; as is without a ring or when empty."""
    if keyring is None or not text:
        return text
    return keyring.seal(text, job_id, name)


def open_field(text: str, job_id: str, name: str, keyring: Keyring | None) -> str:
    """A field as stored, opened if sealed (CryptoError if it cannot be)."""
    if not is_sealed(text):
        return text
    if keyring is None:
        kid = text[len(MARK):].partition(":")[0]
        raise CryptoError(f"job {job_id}: {name} is encrypted (key {kid!r}) and this process "
                          f"has no keys; set {ENV_KEYS} or {ENV_KEYS_FILE}")
    return keyring.open(text, job_id, name)


@functools.cache
def process_keyring() -> Keyring | None:
    """This process's ring from its environment, read once (``cache_clear`` in tests)."""
    return Keyring.from_env()
