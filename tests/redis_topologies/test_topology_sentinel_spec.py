"""spec.redis.sentinel and redis+sentinel:// URLs, without a server: validation, the
operator's target, the Deployment's env and what the worker makes of it."""

from __future__ import annotations

from typing import Any

import pytest

from queueworker.common.redact import redact
from queueworker.observe import connections
from queueworker.operator import api
from queueworker.operator.cluster import deployment as dep
from queueworker.operator.validation import SpecError, parse_spec
from queueworker.worker import config as worker_config
from queueworker.worker import connection

SECRETS = {("s", "pw"): "masterpw", ("s", "spw"): "sentinelpw", ("ca", "ca.pem"): "PEM"}


def spec(**redis: Any) -> dict[str, Any]:
    return {"redis": redis, "queues": [{"name": "q"}],
            "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}}


SENTINEL = {"masterName": "mymaster", "addresses": ["s-0.s:26379", "s-1.s", "[fd00::1]:26380"],
            "username": "sentinel-user", "passwordSecretRef": {"name": "s", "key": "spw"},
            "tls": {"enabled": True, "caSecretRef": {"name": "ca", "key": "ca.pem"}}}


def test_spec_sentinel_becomes_a_target_with_both_credentials() -> None:
    s = parse_spec(spec(sentinel=SENTINEL, passwordSecretRef={"name": "s", "key": "pw"},
                        username="app", db=2))
    assert [(r.name, r.key) for r in connections.secret_refs(s.redis)] == [
        ("s", "pw"), ("s", "spw"), ("ca", "ca.pem")]
    target = connections.target_from_spec(s.redis, lambda n, k: SECRETS[(n, k)])
    assert target.sentinel == connection.SentinelSettings(
        master="mymaster", addresses=(("s-0.s", 26379), ("s-1.s", 26379), ("fd00::1", 26380)),
        username="sentinel-user", password="sentinelpw", ssl=True, ssl_ca_data="PEM")
    assert (target.username, target.password) == ("app", "masterpw")
    assert set(target.secrets) == {"masterpw", "sentinelpw"}
    assert "pw" not in target.display.replace("redis+sentinel", "")
    pool = target.async_client().connection_pool
    assert pool.service_name == "mymaster"  # type: ignore[attr-defined]
    assert (pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (2, "masterpw")


def test_a_sentinel_url_in_spec_url_is_read_the_same_way() -> None:
    s = parse_spec(spec(url="redis+sentinel://:mpw@a:1,b:2/m/3?sentinel_password=spw"))
    target = connections.target_from_spec(s.redis)
    assert target.sentinel is not None
    assert (target.sentinel.addresses, target.sentinel.password) == ((("a", 1), ("b", 2)), "spw")
    assert target.password == "mpw"
    assert "spw" not in target.url  # the kept URL carries no credentials
    assert set(target.secrets) == {"mpw", "spw"}
    # local mode hands the workers this URL: the same settings come back
    full = connections.url_with_credentials(target)
    again, master = connection.parse_sentinel_url(full)
    assert again == target.sentinel
    assert (master["password"], master["db"]) == ("mpw", 3)


@pytest.mark.parametrize(("redis", "message"), [
    ({"url": "redis://r", "sentinel": SENTINEL},
     "set exactly one of url, urlSecretRef and sentinel"),
    ({"sentinel": {"masterName": "m", "addresses": []}}, "addresses"),
    ({"sentinel": {"masterName": "m", "addresses": ["h:70000"]}}, "addresses"),
    ({"sentinel": {"masterName": "m", "addresses": ["h:1/x"]}}, "addresses"),
    ({"sentinel": {"addresses": ["h"]}}, "masterName"),
])
def test_bad_sentinel_specs_name_the_field(redis: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(spec(**redis))


def test_a_bad_sentinel_url_is_a_config_error_naming_the_field() -> None:
    s = api.RedisSpec(url="redis+sentinel://a:1")
    with pytest.raises(connections.RedisConfigError, match=r"spec.redis.url: .*MASTER_NAME"):
        connections.target_from_spec(s)


def test_the_worker_reads_the_sentinel_settings_the_deployment_writes() -> None:
    s = parse_spec(spec(sentinel=SENTINEL, passwordSecretRef={"name": "s", "key": "pw"}, db=4))
    pod = dep.build_pod_template("w1", s)["spec"]
    env_list = pod["containers"][0]["env"]
    values = {"pw": "masterpw", "spw": "sentinelpw"}
    env = {e["name"]: e.get("value") or values.get(
        e["valueFrom"].get("secretKeyRef", {}).get("key"), "pod") for e in env_list}
    url = worker_config.from_env(env).redis_url
    sentinels, master = connection.parse_sentinel_url(url)
    assert sentinels.addresses == (("s-0.s", 26379), ("s-1.s", 26379), ("fd00::1", 26380))
    assert (sentinels.username, sentinels.password, sentinels.ssl) == (
        "sentinel-user", "sentinelpw", True)
    assert sentinels.ssl_ca_certs == f"{dep.SENTINEL_CA_MOUNT_PATH}/ca.pem"
    assert (master["password"], master["db"]) == ("masterpw", 4)
    assert {"name": dep.SENTINEL_CA_VOLUME, "secret": {"secretName": "ca"}} in pod["volumes"]
    assert "sentinelpw" not in redact(url)
    assert "masterpw" not in redact(url)
