"""JWT auth: HS256 and RS256, scopes, queues, rotation, and the refusals (401/403)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from queueworker.api.app import create_app
from queueworker.api.settings import ApiSettingsError, split_pems

from support.api_client import SECRET, Token, bearer, make_token, settings_for


def _rsa() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, pem


@pytest.fixture(scope="module")
def rsa_pair() -> tuple[rsa.RSAPrivateKey, bytes]:
    return _rsa()


def _hs256_by_hand(claims: dict[str, object], key: bytes) -> str:
    """PyJWT refuses to sign with a PEM as an HMAC secret; an attacker would not."""
    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")
    signing = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b64(
        json.dumps(claims).encode())
    return (signing + b"." + b64(hmac.new(key, signing, hashlib.sha256).digest())).decode()


async def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def test_no_token_is_401_with_a_bearer_challenge(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/queues")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "missing bearer token" in r.json()["detail"]


@pytest.mark.parametrize(("tok", "why"), [
    ("not-a-jwt", "not a JWT"),
    (make_token(key=b"another-secret-0123456789abcdef-0123"), "Signature verification failed"),
    (make_token(ttl=-3600), "expired"),
    (jwt.encode({"sub": "a", "scope": "admin"}, SECRET, algorithm="HS256"), '"exp"'),
    (jwt.encode({"exp": int(time.time()) + 60, "scope": "admin"}, SECRET, algorithm="HS256"),
     '"sub"'),
    (make_token(scope=7), "scope claim"),
    (jwt.encode({"sub": "a", "scope": "admin", "exp": int(time.time()) + 60}, None,
                algorithm="none"), "'none' is not accepted"),
])
async def test_bad_tokens_are_401_naming_why(client: httpx.AsyncClient, tok: str,
                                             why: str) -> None:
    r = await client.get("/v1/queues", headers=bearer(tok))
    assert r.status_code == 401, r.text
    assert why in r.json()["detail"]


async def test_auth_failures_are_counted_and_logged_without_the_token(
        client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    expired = make_token(ttl=-3600)
    with caplog.at_level(logging.INFO, logger="queueworker.api"):
        await client.get("/v1/queues", headers=bearer(expired))
    text = (await client.get("/metrics")).text
    assert 'queueworker_api_auth_failures_total{reason="expired"} 1.0' in text
    assert "auth_failed reason=expired path=/v1/queues" in caplog.text
    assert expired not in caplog.text


async def test_a_missing_scope_is_403(client: httpx.AsyncClient, token: Token) -> None:
    r = await client.post("/v1/queues/q/jobs", json={"payload": 1},
                          headers=bearer(token(scope="jobs:read")))
    assert r.status_code == 403
    assert "'jobs:write'" in r.json()["detail"]
    r = await client.get("/v1/failed", headers=bearer(token(scope="jobs:read jobs:write")))
    assert r.status_code == 403
    r = await client.get("/v1/failed", headers=bearer(token(scope=["admin"])))
    assert r.status_code == 200


async def test_the_queues_claim_limits_where_a_token_enqueues(client: httpx.AsyncClient,
                                                              token: Token) -> None:
    h = bearer(token(queues=["audio"]))
    assert (await client.post("/v1/queues/audio/jobs", json={"payload": 1},
                              headers=h)).status_code == 201
    r = await client.post("/v1/queues/other/jobs", json={"payload": 1}, headers=h)
    assert r.status_code == 403
    assert "'other'" in r.json()["detail"]


async def test_rs256_and_no_algorithm_confusion(redis_url: str, rsa_pair: tuple[
        rsa.RSAPrivateKey, bytes]) -> None:
    private, pem = rsa_pair
    app = create_app(settings_for(redis_url, hs256_secrets=[], rs256_public_keys=[pem]))
    async with await _client(app) as c:
        ok = make_token(key=private, alg="RS256")
        assert (await c.get("/v1/queues", headers=bearer(ok))).status_code == 200
        # The public key used as an HS256 secret: refused, HS256 is not accepted here.
        forged = _hs256_by_hand({"sub": "eve", "scope": "admin", "exp": 9999999999}, pem)
        r = await c.get("/v1/queues", headers=bearer(forged))
        assert r.status_code == 401
        assert "'HS256' is not accepted" in r.json()["detail"]
        # Another RSA key's signature: refused.
        other, _ = _rsa()
        r = await c.get("/v1/queues", headers=bearer(make_token(key=other, alg="RS256")))
        assert r.status_code == 401
    await app.state.qw.redis.aclose()


async def test_rotation_any_listed_key_verifies(redis_url: str, rsa_pair: tuple[
        rsa.RSAPrivateKey, bytes]) -> None:
    old = b"old-secret-0123456789abcdef-0123456789"
    private, pem = rsa_pair
    _, pem2 = _rsa()
    app = create_app(settings_for(redis_url, hs256_secrets=[SECRET, old],
                                  rs256_public_keys=split_pems((pem2 + pem).decode())))
    async with await _client(app) as c:
        for tok in (make_token(), make_token(key=old), make_token(key=private, alg="RS256")):
            assert (await c.get("/v1/queues", headers=bearer(tok))).status_code == 200
    await app.state.qw.redis.aclose()


def test_keys_that_cannot_work_are_refused_at_start(redis_url: str) -> None:
    with pytest.raises(ApiSettingsError, match="no JWT key"):
        settings_for(redis_url, hs256_secrets=[])
    with pytest.raises(ApiSettingsError, match="under 32"):
        settings_for(redis_url, hs256_secrets=[b"short"])
    with pytest.raises(ApiSettingsError, match="not a PEM public key"):
        split_pems("-----BEGIN PRIVATE KEY-----\nabc\n-----END PUBLIC KEY-----")
    with pytest.raises(ApiSettingsError, match="cannot be read"):
        create_app(settings_for(redis_url, rs256_public_keys=[
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"]))
