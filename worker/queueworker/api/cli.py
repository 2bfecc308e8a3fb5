"""``queueworker api``: serve the HTTP API (docs/api.md).

    QUEUEWORKER_API_JWT_SECRET=$(openssl rand -hex 32) \\
        queueworker api --redis-url redis://localhost:6379/0 --port 8000 --rate-limit 10/60

Keys: --jwt-secret-file (HS256) and/or --jwt-public-key-file (RS256), or the variables
QUEUEWORKER_API_JWT_SECRET / QUEUEWORKER_API_JWT_PUBLIC_KEY. Exit codes: 0 after SIGTERM
or Ctrl-C, 2 for a bad option or key.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal

from queueworker.api.settings import (
    ENV_RATE_LIMIT,
    ApiSettings,
    ApiSettingsError,
    RateLimit,
    from_env,
    keys_from,
)
from queueworker.common import log as common_log
from queueworker.worker.cli_common import add_redis_options, fail, prefix, redis_url


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="queueworker api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_redis_options(p)
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--jwt-secret-file", default=None,
                   help="HS256 secret(s), one a line (env QUEUEWORKER_API_JWT_SECRET[_FILE])")
    p.add_argument("--jwt-public-key-file", default=None,
                   help="RS256 public key(s), PEM (env QUEUEWORKER_API_JWT_PUBLIC_KEY[_FILE])")
    p.add_argument("--audience", default=None, help="required aud claim")
    p.add_argument("--issuer", default=None, help="required iss claim")
    p.add_argument("--no-auth", action="store_true",
                   help="no tokens: every caller is admin (local experiments only)")
    p.add_argument("--rate-limit", default=None,
                   help="per user: REQUESTS/SECONDS (default 10/60; 0: none; "
                        f"env {ENV_RATE_LIMIT})")
    p.add_argument("--max-body-bytes", type=int, default=None,
                   help="largest request body (default 1 MiB + 16 KiB)")
    p.add_argument("--max-payload-bytes", type=int, default=None,
                   help="largest job payload (default 1 MiB)")
    p.add_argument("--max-wait", type=float, default=None,
                   help="longest ?timeout= of /wait in seconds (default 300)")
    p.add_argument("--queues", default=None,
                   help="queues /v1/queues lists (comma-separated; default: found in Redis)")
    p.add_argument("--log-level", default="info")
    return p


def settings_from(args: argparse.Namespace) -> ApiSettings:
    s = from_env()
    s.redis_url = redis_url(args)
    s.prefix = prefix(args)
    s.host, s.port = args.host, args.port
    s.hs256_secrets, s.rs256_public_keys = keys_from(os.environ, args.jwt_secret_file,
                                                     args.jwt_public_key_file)
    s.audience, s.issuer, s.no_auth = args.audience, args.issuer, args.no_auth
    if args.rate_limit is not None:
        s.rate_limit = RateLimit.parse(args.rate_limit)
    for name in ("max_body_bytes", "max_payload_bytes", "max_wait"):
        if getattr(args, name) is not None:
            setattr(s, name, getattr(args, name))
    if args.queues:
        s.queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    s.log_level = args.log_level
    s.validate()
    return s


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ApiSettingsError as exc:
        return fail(str(exc), 2)
    try:
        import uvicorn

        from queueworker.api.app import create_app
    except ModuleNotFoundError as exc:
        return fail(f"`queueworker api` needs the api extra ({exc.name} is missing): "
                    "pip install 'queueworker[api]'", 2)
    common_log.setup(logging.getLogger("queueworker.api"), settings.log_level)
    try:
        app = create_app(settings)
    except ApiSettingsError as exc:
        return fail(str(exc), 2)
    # uvicorn re-raises the stop signal once it has shut down, with the handlers that were
    # there before it started: these make that a no-op, so a stop after SIGTERM is exit 0
    # (as the worker's), not death by the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                proxy_headers=True, server_header=False, timeout_graceful_shutdown=10)
    return 0
