"""What the worker's commands share: Redis options and one clear line on a bad connection."""

from __future__ import annotations

import argparse
import os
import sys

import redis

from queueworker.common.errors import QueueworkerError
from queueworker.common.redact import redact_url
from queueworker.worker import keys
from queueworker.worker.config import (
    DEFAULT_REDIS_URL,
    ENV_PREFIX,
    ENV_REDIS_URL,
    redis_url_from,
)
from queueworker.worker.connection import sync_client


class CliError(QueueworkerError):
    """One line for the user; the command exits non-zero."""


def add_redis_options(p: argparse.ArgumentParser, *, sub: bool = False) -> None:
    """--redis-url and --prefix. ``sub``: on a subcommand too (``failed list --redis-url X``);
    absent there, they leave what the main parser read."""
    default = argparse.SUPPRESS if sub else None
    p.add_argument("--redis-url", default=default,
                   help=f"Redis URL (env {ENV_REDIS_URL}; default {DEFAULT_REDIS_URL})")
    p.add_argument("--prefix", default=default,
                   help=f"key prefix (env {ENV_PREFIX}; default {keys.DEFAULT_PREFIX})")


def redis_url(args: argparse.Namespace) -> str:
    url = str(args.redis_url or os.environ.get(ENV_REDIS_URL) or DEFAULT_REDIS_URL)
    return redis_url_from(url, os.environ)


def prefix(args: argparse.Namespace) -> str:
    return str(args.prefix or os.environ.get(ENV_PREFIX) or keys.DEFAULT_PREFIX)


def connection_error(url: str, exc: BaseException) -> str:
    if isinstance(exc, redis.AuthenticationError) or "WRONGPASS" in str(exc) or (
            "NOAUTH" in str(exc)):
        why = "authentication failed (wrong or missing username/password)"
    elif isinstance(exc, ValueError):
        why = f"bad URL ({exc})"
    else:
        why = f"{type(exc).__name__}: {exc}"
    return f"cannot connect to Redis at {redact_url(url)}: {why}"


def connect(args: argparse.Namespace) -> redis.Redis:
    url = redis_url(args)
    try:
        client = sync_client(url, decode_responses=True, socket_connect_timeout=5)
        client.ping()
    except (redis.RedisError, redis.exceptions.RedisClusterException, OSError,
            ValueError) as exc:
        raise CliError(connection_error(url, exc)) from None
    return client


def fail(message: str, code: int = 1) -> int:
    print(f"queueworker: {message}", file=sys.stderr)
    return code
