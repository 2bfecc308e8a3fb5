"""The spec's ``redis`` and ``queues``: where the jobs are and how they are stored.

Part of the API in api.py, which re-exports these names: import them from there.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any

from pydantic import Field

from queueworker.operator.api_model import CelRule, Model

# --------------------------------------------------------------------------- redis


class SecretKeyRef(Model):
    """A key in a Secret of the QueueWorker's namespace; the operator uses the Secret
    only if it is labelled queueworker.dev/use: "true" (its owner's consent)."""

    name: Annotated[str, Field(min_length=1, max_length=253, description="Secret name.")]
    key: Annotated[str, Field(min_length=1, max_length=253, description="Key in the Secret.")]


class RedisTLS(Model):
    enabled: Annotated[bool, Field(description="Connect with TLS (rediss://).")] = False
    ca_secret_ref: Annotated[
        SecretKeyRef | None,
        Field(description="PEM CA bundle to verify the server; the system CAs when absent. "
              "The Secret must be labelled queueworker.dev/use: \"true\"."),
    ] = None
    insecure_skip_verify: Annotated[
        bool, Field(description="Do not verify the server certificate (testing only).")
    ] = False

    CEL_RULES = (
        CelRule(
            "!self.insecureSkipVerify || !has(self.caSecretRef)",
            "caSecretRef and insecureSkipVerify exclude each other",
            "insecureSkipVerify",
            lambda s: not (s.insecure_skip_verify and s.ca_secret_ref is not None),
        ),
    )


# host:port, [IPv6]:port or host (port 26379); the port 1-65535
SENTINEL_ADDRESS = (r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:(6553[0-5]|655[0-2][0-9]"
                    r"|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?$")


class RedisSentinel(Model):
    """A master found through Redis Sentinel. username, passwordSecretRef and tls here
    are the Sentinels' own; those of spec.redis apply to the master."""

    master_name: Annotated[
        str, Field(min_length=1, max_length=256,
                   description="The master's name in the Sentinels (sentinel monitor NAME).")
    ]
    addresses: Annotated[
        list[Annotated[str, Field(max_length=262, pattern=SENTINEL_ADDRESS)]],
        Field(min_length=1, max_length=16,
              description="Sentinels as host:port (port 26379 when absent); any one answers."),
    ]
    username: Annotated[
        str | None, Field(max_length=256, description="The Sentinels' ACL user name.")
    ] = None
    password_secret_ref: Annotated[
        SecretKeyRef | None, Field(description="Secret key that holds the Sentinels' password "
        "(their requirepass). The Secret must be labelled queueworker.dev/use: \"true\".")
    ] = None
    tls: Annotated[RedisTLS, Field(description="TLS to the Sentinels.")] = RedisTLS()


class RedisSpec(Model):
    """Where the queues live. Give `url`, `urlSecretRef` to keep it out of the spec, or
    `sentinel` for a master found through Redis Sentinel."""

    url: Annotated[
        str | None,
        Field(
            max_length=2048,
            pattern=r"^(redis|rediss|unix|redis\+sentinel|rediss\+sentinel|redis\+cluster"
                    r"|rediss\+cluster)://",
            description="redis://host:6379/0 (or rediss:// for TLS), "
            "redis+sentinel://sentinel1:26379,sentinel2:26379/MASTER_NAME/0 for a master "
            "behind Sentinel, or redis+cluster://node1:6379,node2:6379 for a Redis Cluster "
            "(native, list, stream, and bullmq / laravel with a hash tag). Put passwords "
            "in passwordSecretRef, not here.",
        ),
    ] = None
    url_secret_ref: Annotated[
        SecretKeyRef | None, Field(description="Secret key that holds the Redis URL. "
        "The Secret must be labelled queueworker.dev/use: \"true\".")
    ] = None
    username: Annotated[
        str | None, Field(max_length=256, description="ACL user name (Redis 6+).")
    ] = None
    password_secret_ref: Annotated[
        SecretKeyRef | None, Field(description="Secret key that holds the Redis password. "
        "The Secret must be labelled queueworker.dev/use: \"true\".")
    ] = None
    db: Annotated[
        int | None,
        Field(ge=0, le=1023, description="Database index; overrides the one in the URL."),
    ] = None
    tls: Annotated[RedisTLS, Field(description="TLS settings (of the master with sentinel).")
                   ] = RedisTLS()
    sentinel: Annotated[
        RedisSentinel | None,
        Field(description="Find the master through Redis Sentinel (instead of url); "
              "username, passwordSecretRef, db and tls above apply to the master."),
    ] = None

    CEL_RULES = (
        CelRule(
            "(has(self.url) ? 1 : 0) + (has(self.urlSecretRef) ? 1 : 0)"
            " + (has(self.sentinel) ? 1 : 0) == 1",
            "set exactly one of url, urlSecretRef and sentinel",
            "url",
            lambda s: [s.url, s.url_secret_ref, s.sentinel].count(None) == 2,
        ),
    )


# -------------------------------------------------------------------------- queues


class QueueLayout(enum.StrEnum):
    """How a queue is stored in Redis: decides which keys are summed for depth."""

    native = "native"
    list = "list"
    stream = "stream"
    celery = "celery"
    rq = "rq"
    laravel = "laravel"
    bullmq = "bullmq"
    sidekiq = "sidekiq"
    dramatiq = "dramatiq"
    arq = "arq"


class QueueSpec(Model):
    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=512,
            description="Queue name as the worker library knows it (for `list`, the key).",
        ),
    ]
    layout: Annotated[QueueLayout, Field(description="Redis key layout of the queue.")] = (
        QueueLayout.native
    )
    weight: Annotated[
        int,
        Field(
            ge=1,
            le=1000,
            description="Relative weight when GPU capacity or replicas are shared; "
            "the list order is the priority order for native workers.",
        ),
    ] = 1
    key_prefix: Annotated[
        str | None,
        Field(
            max_length=256,
            description="Key prefix override: Laravel's Redis prefix, BullMQ's prefix "
            "(default 'bull'), Celery's global_keyprefix, Sidekiq's namespace, RQ's "
            "key prefix (default 'rq'), Dramatiq's namespace (default 'dramatiq'). "
            "Not for arq, whose queue name is the whole key.",
        ),
    ] = None
    consumer_group: Annotated[
        str | None,
        Field(max_length=256, description="Consumer group (layout `stream` only)."),
    ] = None

    CEL_RULES = (
        CelRule(
            "self.layout != 'stream' || has(self.consumerGroup)",
            "layout 'stream' needs consumerGroup",
            "consumerGroup",
            lambda s: s.layout != QueueLayout.stream or s.consumer_group is not None,
        ),
        CelRule(
            "self.layout == 'stream' || !has(self.consumerGroup)",
            "consumerGroup is only for layout 'stream'",
            "consumerGroup",
            lambda s: s.layout == QueueLayout.stream or s.consumer_group is None,
        ),
        CelRule(
            "self.layout != 'arq' || !has(self.keyPrefix)",
            "keyPrefix is not for layout 'arq' (arq's keys are fixed; name is the queue key)",
            "keyPrefix",
            lambda s: s.layout != QueueLayout.arq or s.key_prefix is None,
        ),
    )


def _field(obj: Any, name: str, alias: str) -> Any:
    """A field of a model, or of its raw dict (validation_schema evaluates rules on both)."""
    return obj.get(alias) if isinstance(obj, dict) else getattr(obj, name)


def _layout(q: Any) -> str:
    layout = _field(q, "layout", "layout") or QueueLayout.native
    return str(getattr(layout, "value", layout))


def _on_cluster(spec: Any) -> bool:
    url = _field(spec.redis, "url", "url")
    return url is not None and url.startswith(("redis+cluster://", "rediss+cluster://"))


def _queues(spec: Any) -> list[Any]:
    return list(spec.queues or [])


# A key's hash tag as Redis Cluster finds it: the text between its first `{` and the first
# `}` after it, when not empty (then the tag alone decides the slot).
HASH_TAG = r"^[^{]*[{][^}]+[}]"
_HASH_TAG = re.compile(HASH_TAG)
# Layouts whose library keeps every key of a queue in one slot when the keys carry a hash
# tag (docs/workers/bullmq.md, laravel.md); their keys' common beginning, in CEL and Python.
TAGGED_CEL = {
    "bullmq": "(has(q.keyPrefix) ? q.keyPrefix : 'bull') + ':' + q.name + ':'",
    "laravel": "(has(q.keyPrefix) ? q.keyPrefix : '') + 'queues:' + q.name",
}
# Layouts read on a cluster as they are: a single key (list, stream) or native.
CLUSTER_PLAIN = ("native", "list", "stream")


def key_head(q: Any) -> str:
    """The text every key of a bullmq / laravel queue begins with (TAGGED_CEL)."""
    prefix, name = _field(q, "key_prefix", "keyPrefix"), _field(q, "name", "name")
    if _layout(q) == QueueLayout.bullmq.value:
        return f"{prefix if prefix is not None else 'bull'}:{name}:"
    return f"{prefix or ''}queues:{name}"


def has_hash_tag(key: str) -> bool:
    return _HASH_TAG.match(key) is not None


def _cluster_libraries(spec: Any) -> bool:
    return not _on_cluster(spec) or all(
        _layout(q) in (*CLUSTER_PLAIN, *TAGGED_CEL) for q in _queues(spec))


def _cluster_tagged(layout: str) -> Any:
    def check(spec: Any) -> bool:
        return not _on_cluster(spec) or all(
            has_hash_tag(key_head(q)) for q in _queues(spec) if _layout(q) == layout)
    return check


_ON_CLUSTER = "!has(self.redis.url) || !self.redis.url.matches('^rediss?[+]cluster://')"
_PLAIN = " || ".join(f"q.layout == '{x}'" for x in (*CLUSTER_PLAIN, *TAGGED_CEL))

# On QueueWorkerSpec (they see the Redis and the queues). A URL kept in a Secret is checked
# when it is read (observe/connections.py reads no layout: a reader that spans slots fails
# its reading, which names the queue).
CLUSTER_RULES = (
    CelRule(
        f"{_ON_CLUSTER} || self.queues.all(q, {_PLAIN})",
        "on a Redis Cluster only native, list, stream, bullmq and laravel queues can be "
        "read: RQ, Celery (kombu), Sidekiq, Dramatiq and arq do not support Redis Cluster "
        "(their commands and scripts span hash slots); use one Redis or Sentinel for them",
        "redis.url",
        _cluster_libraries,
    ),
    CelRule(
        f"{_ON_CLUSTER} || self.queues.all(q, q.layout != 'bullmq' || "
        f"({TAGGED_CEL['bullmq']}).matches('{HASH_TAG}'))",
        "on a Redis Cluster a bullmq queue needs a hash tag in keyPrefix (keyPrefix: "
        "'{bull}') or in its name, as BullMQ itself does: without one its scripts fail "
        "with CROSSSLOT",
        "redis.url",
        _cluster_tagged(QueueLayout.bullmq.value),
    ),
    CelRule(
        f"{_ON_CLUSTER} || self.queues.all(q, q.layout != 'laravel' || "
        f"({TAGGED_CEL['laravel']}).matches('{HASH_TAG}'))",
        "on a Redis Cluster a laravel queue needs a hash tag in its name (name: "
        "'{default}', as Laravel's docs say) or in keyPrefix: without one Laravel's "
        "scripts fail with CROSSSLOT",
        "redis.url",
        _cluster_tagged(QueueLayout.laravel.value),
    ),
)
