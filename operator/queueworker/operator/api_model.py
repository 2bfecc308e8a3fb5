"""The base of every QueueWorker API model, and the cross-field rules they carry.

Part of the API in api.py, which re-exports these names: import them from there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError


class CelRule:
    """A cross-field rule: the CEL text for the CRD and the same check in Python.

    ``check`` receives the model instance and returns True when the rule holds.
    ``field`` names the field the message is about (for error reporting).
    """

    def __init__(
        self, rule: str, message: str, field: str, check: Callable[[Any], bool]
    ) -> None:
        self.rule = rule
        self.message = message
        self.field = field
        self.check = check

    def as_crd(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message, "fieldPath": f".{self.field}"}


class Model(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        validate_default=True,
    )
    CEL_RULES: ClassVar[tuple[CelRule, ...]] = ()

    @model_validator(mode="after")
    def _check_cel_rules(self) -> Model:
        for cel in type(self).CEL_RULES:
            if not cel.check(self):
                raise PydanticCustomError(
                    "cel_rule",
                    "{field}: {message} (rule: {rule})",
                    {"field": cel.field, "message": cel.message, "rule": cel.rule},
                )
        return self

    def to_wire(self) -> dict[str, Any]:
        """The object as it appears in the Kubernetes API (camelCase, no unset optionals)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def model_types(annotation: Any) -> list[type[Model]]:
    """The models a field's annotation holds (``X``, ``X | None``, ``list[X]``...):
    where the CRD generator and validation descend into nested objects."""
    out: list[type[Model]] = []
    if isinstance(annotation, type) and issubclass(annotation, Model):
        out.append(annotation)
    for arg in getattr(annotation, "__args__", ()) or ():
        out.extend(model_types(arg))
    return out
