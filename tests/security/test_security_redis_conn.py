"""Connections built from a spec: ACL user, password Secret, TLS with a CA, redaction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from queueworker.common.redact import redact
from queueworker.observe.connections import (
    RedisConfigError,
    target_from_spec,
    url_with_credentials,
)
from queueworker.operator import api

from support.redis_tls import SecureRedisServer


@pytest.fixture(scope="module")
def secure_redis() -> Iterator[SecureRedisServer]:
    server = SecureRedisServer().start()
    yield server
    server.cleanup()


def _spec(**fields: object) -> api.RedisSpec:
    return api.RedisSpec.model_validate(fields)


def test_acl_user_password_secret_and_tls_ca(secure_redis: SecureRedisServer) -> None:
    secrets = {("redis-auth", "password"): secure_redis.password,
               ("redis-ca", "ca.crt"): secure_redis.ca_pem}
    spec = _spec(url=secure_redis.url, username=secure_redis.username,
                 passwordSecretRef={"name": "redis-auth", "key": "password"},
                 tls={"enabled": True, "caSecretRef": {"name": "redis-ca", "key": "ca.crt"}})
    target = target_from_spec(spec, lambda name, key: secrets[(name, key)])
    client = target.sync_client()
    assert client.acl_whoami() == secure_redis.username
    assert secure_redis.password not in target.display
    assert secure_redis.password in target.secrets


def test_wrong_password_is_refused(secure_redis: SecureRedisServer) -> None:
    spec = _spec(url=secure_redis.url, username=secure_redis.username,
                 passwordSecretRef={"name": "a", "key": "p"},
                 tls={"enabled": True, "caSecretRef": {"name": "ca", "key": "c"}})
    values = {("a", "p"): "wrong", ("ca", "c"): secure_redis.ca_pem}
    target = target_from_spec(spec, lambda n, k: values[(n, k)])
    with pytest.raises(redis.AuthenticationError):
        target.sync_client().ping()


def test_untrusted_server_certificate_is_refused(secure_redis: SecureRedisServer) -> None:
    # Without the test CA the server's certificate must not verify.
    spec = _spec(url=secure_redis.url_with_password)
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        target_from_spec(spec).sync_client().ping()


def test_url_password_is_moved_out_of_the_url(secure_redis: SecureRedisServer) -> None:
    spec = _spec(url=secure_redis.url_with_password,
                 tls={"enabled": True, "insecureSkipVerify": True})
    target = target_from_spec(spec)
    assert secure_redis.password not in target.url
    assert target.password == secure_redis.password
    assert target.sync_client().ping()
    full = url_with_credentials(target)
    assert redis.Redis.from_url(full, ssl_cert_reqs="none").ping()


def test_missing_secret_names_the_field() -> None:
    spec = _spec(urlSecretRef={"name": "nope", "key": "url"})
    with pytest.raises(RedisConfigError, match=r"spec.redis.urlSecretRef: Secret 'nope'"):
        target_from_spec(spec, lambda n, k: {}[(n, k)])


@pytest.mark.parametrize(("text", "expected"), [
    ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
    ("rediss://user:p%40ss@h/1", "rediss://user:***@h/1"),
    ("redis://h:6379/0", "redis://h:6379/0"),
    ("error connecting to redis://u:secret@h:1: refused",
     "error connecting to redis://u:***@h:1: refused"),
])
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
