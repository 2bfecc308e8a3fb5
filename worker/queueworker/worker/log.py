"""Structured log lines (logfmt: ``ts=... level=info event=job.failed id=... queue=...``)
and URL redaction: a Redis URL is never logged with its password."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

logger = logging.getLogger("queueworker.worker")


def redact_url(url: str) -> str:
    """``redis://user:secret@host:6379/0`` -> ``redis://user:***@host:6379/0``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[-1]
    auth = f"{user}:***" if parts.password is not None else user
    return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, parts.fragment))


def _value(v: Any) -> str:
    text = v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        head = f"ts={ts}.{int(record.msecs):03d}Z level={record.levelname.lower()}"
        parts = [head, f"event={_value(record.getMessage())}"]
        parts += [f"{k}={_value(v)}" for k, v in fields.items()]
        if record.exc_info and record.levelno >= logging.ERROR:
            parts.append(f"exc={_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})
