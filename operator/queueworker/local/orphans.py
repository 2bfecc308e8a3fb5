"""Children of local mode die with it (Linux), even when it is SIGKILLed.

A killed `queueworker local` must not leave workers polling a Redis that is
gone, nor an embedded redis-server holding a port. The child is started
through a tiny Python trampoline that asks the kernel for SIGTERM when its
parent dies (PR_SET_PDEATHSIG, kept across exec), checks the parent is still
the one that started it (closing the race), then execs the real command: the
pid stays the same and workers get the SIGTERM drain they would get anyway.
No preexec_fn, so it is safe while other threads run (the demo's load thread).
"""

from __future__ import annotations

import os
import sys

_TRAMPOLINE = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(0)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def die_with_parent(argv: list[str]) -> list[str]:
    """`argv` wrapped so its process gets SIGTERM when this process dies (Linux only)."""
    if sys.platform != "linux":
        return argv
    return [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(os.getpid()), *argv]
