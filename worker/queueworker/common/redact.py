"""The one redactor: nothing secret reaches a log, an Event, a status or a metric.

Passwords appear in two shapes: inside URLs (``redis://user:pw@host``, or a
``?sentinel_password=`` parameter) and as
bare values read from Secrets. ``redact`` removes both; ``redact_url`` is the
URL-only form for places that hold no Secret values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# scheme://user:password@  ->  scheme://user:***@   (user may be empty: redis://:pw@host)
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]+)@", re.IGNORECASE)
# ...?sentinel_password=pw&...  ->  ...?sentinel_password=***&...  (worker/connection.py URLs)
_QUERY_PASSWORD = re.compile(r"(?P<name>[?&][a-z_]*password=)[^&#\s]+", re.IGNORECASE)
# Shorter values would blank out ordinary words; Secrets that short are refused elsewhere.
_MIN_SECRET = 3


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove ``user:pass@`` in URLs and every given secret value."""
    out = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    out = _QUERY_PASSWORD.sub(lambda m: f"{m['name']}***", out)
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET:
            out = out.replace(secret, "***")
    return out


def redact_url(url: str) -> str:
    """``redis://user:secret@host:6379/0`` -> ``redis://user:***@host:6379/0``."""
    return redact(url)
