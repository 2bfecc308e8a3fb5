"""Every exception queueworker defines derives from the one base, and is named *Error."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import queueworker
from queueworker.cli import describe_error
from queueworker.common.errors import QueueworkerError
from queueworker.operator.validation import SpecError, SpecProblem


def _our_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(queueworker.__path__, "queueworker."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("queueworker."):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(found.values())


def test_every_exception_has_the_one_base_and_a_consistent_name() -> None:
    classes = _our_exceptions()
    assert len(classes) >= 15  # the walk really found the package's modules
    wrong = [c.__qualname__ for c in classes if not issubclass(c, QueueworkerError)]
    assert wrong == []
    badly_named = [c.__qualname__ for c in classes if not c.__name__.endswith("Error")]
    assert badly_named == []


def test_the_cli_prints_our_errors_as_their_message() -> None:
    problem = SpecProblem("spec.queues[0].name", "must not be empty", "string_too_short")
    text = describe_error(SpecError([problem]))
    assert text == "spec.queues[0].name: must not be empty (rule: string_too_short)"
