"""One structured logging helper for the operator, local mode and the worker.

``log_event(logger, "scaled", qw="ns/name", replicas=3)`` writes one record
whose fields survive every output format:

- the message itself carries them as logfmt (``scaled qw=ns/name replicas=3``),
  so kopf's ``plain`` and ``full`` formats (``%(message)s``), which drop
  ``extra``, still show them;
- ``record.qw_event`` / ``record.qw_fields`` keep them apart for
  ``LogfmtFormatter`` (``event=scaled qw=ns/name replicas=3``), and each field
  is also set on the record (prefix-free unless it clashes with a LogRecord
  attribute) so JSON formatters (kopf's ``--log-format json``) emit it as a key.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

# Attributes a LogRecord already has: ``extra`` may not overwrite them.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def value(v: Any) -> str:
    """One logfmt value: quoted when it holds a space, quote, '=' or newline."""
    text = v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def logfmt(fields: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={value(v)}" for k, v in fields.items())


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, *,
              exc_info: bool = False, **fields: Any) -> None:
    """Log ``event`` with ``fields``; see the module docstring for the formats."""
    if not logger.isEnabledFor(level):
        return
    extra: dict[str, Any] = {"qw_event": event, "qw_fields": fields}
    for key, v in fields.items():
        extra[f"field_{key}" if key in _RESERVED or key.startswith("qw_") else key] = v
    message = f"{event} {logfmt(fields)}" if fields else event
    logger.log(level, "%s", message, extra=extra, exc_info=exc_info)


class LogfmtFormatter(logging.Formatter):
    """``ts=... level=info event=... k=v``: one line a record, machine-readable."""

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "qw_event", None)
        fields: Mapping[str, Any] = getattr(record, "qw_fields", {})
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [f"ts={ts}.{int(record.msecs):03d}Z level={record.levelname.lower()}",
                 f"logger={record.name}",
                 f"event={value(record.getMessage() if event is None else event)}"]
        if fields:
            parts.append(logfmt(fields))
        if record.exc_info and record.levelno >= logging.ERROR:
            parts.append(f"exc={value(self.formatException(record.exc_info))}")
        return " ".join(parts)


def setup(logger: logging.Logger, level: str = "info", stream: Any = None) -> None:
    """Send ``logger`` (and its children) to stderr as logfmt, at ``level``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
