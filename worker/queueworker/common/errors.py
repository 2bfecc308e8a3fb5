"""One base class for every error queueworker raises on purpose.

``except QueueworkerError`` catches what we raise knowingly (bad spec, bad
payload, missing Secret, unreadable queue...) and lets real bugs through; the
CLI prints these as one line. Subclasses keep their builtin parent too
(``ValueError``, ``LookupError``...) where callers already catch that.
Names end in ``Error``.
"""

from __future__ import annotations


class QueueworkerError(Exception):
    """Something queueworker detected and can explain in one line."""
