"""Find the function(s) a worker runs: ``--handler pkg.module:function``.

The object named can be a callable (the worker's default handler; jobs
enqueued with ``handler="<its __name__>"`` reach it too) or a mapping of names
to callables (jobs choose one with ``handler="name"``; the key ``"default"``,
if present, runs jobs that name none). ``--handler`` may be repeated.

A handler gets the decoded payload. If it has a parameter named ``job`` it
also gets the ``Job`` (id, queue, deliveries, tries, ...) as ``job=``.
Coroutine functions run on the event loop; plain functions run in a thread
(see ``timeouts``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from queueworker.common.errors import QueueworkerError


class HandlerError(QueueworkerError):
    """A --handler spec that cannot be loaded (a configuration error: the worker exits)."""


class UnknownHandlerError(QueueworkerError, LookupError):
    """A job names a handler this worker does not have (the job fails; the worker goes on)."""


@dataclass(frozen=True)
class Handler:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    wants_job: bool

    @classmethod
    def of(cls, name: str, fn: Callable[..., Any]) -> Handler:
        if not callable(fn):
            raise HandlerError(f"handler {name!r} is not callable: {fn!r}")
        is_async = inspect.iscoroutinefunction(fn) or (
            not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__))
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        wants_job = "job" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        return cls(name, fn, is_async, wants_job)


class HandlerTable:
    def __init__(self, handlers: Mapping[str, Handler], default: Handler | None) -> None:
        self.handlers = dict(handlers)
        self.default = default

    def get(self, name: str) -> Handler:
        if not name:
            if self.default is None:
                raise UnknownHandlerError(
                    f"the job names no handler and this worker has no default; it knows: "
                    f"{', '.join(sorted(self.handlers)) or '(none)'}")
            return self.default
        h = self.handlers.get(name)
        if h is None:
            raise UnknownHandlerError(f"unknown handler {name!r}; this worker knows: "
                                 f"{', '.join(sorted(self.handlers)) or '(none)'}")
        return h

    @classmethod
    def from_callables(cls, default: Callable[..., Any] | None = None,
                       **named: Callable[..., Any]) -> HandlerTable:
        handlers = {k: Handler.of(k, fn) for k, fn in named.items()}
        d = None
        if default is not None:
            d = Handler.of(getattr(default, "__name__", "default"), default)
            handlers.setdefault(d.name, d)
        return cls(handlers, d)


def _import(spec: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise HandlerError(f"bad handler {spec!r}: use package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerError(f"cannot import handler module {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise HandlerError(f"module {module_name!r} has no {attr!r}") from None
    return obj


def load(specs: Iterable[str]) -> HandlerTable:
    handlers: dict[str, Handler] = {}
    default: Handler | None = None
    for spec in specs:
        obj = _import(spec)
        if isinstance(obj, Mapping):
            for name, fn in obj.items():
                h = Handler.of(str(name), fn)
                handlers[h.name] = h
                if name == "default" and default is None:
                    default = h
        else:
            h = Handler.of(getattr(obj, "__name__", spec.rpartition(":")[2]), obj)
            handlers[h.name] = h
            if default is None:
                default = h
    if not handlers:
        raise HandlerError("no handler: pass --handler package.module:function")
    return HandlerTable(handlers, default)
