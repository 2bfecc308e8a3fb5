"""Step 1 of a tick: the QueueWorker's validated spec, parsed again only when it changed.

``metadata.generation`` moves on every spec change and a poll runs far more
often than specs change, so the parsed spec is kept under a key of
(generation, pause annotation). A spec that failed to parse is remembered
too, so the wake handler does not kick the loop again for the same bad spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from queueworker.operator import api
from queueworker.operator.cluster import deployment as dep
from queueworker.operator.podsecurity import privileged_reasons
from queueworker.operator.validation import SpecError, SpecProblem, parse_spec

SpecKey = tuple[Any, ...]


def spec_key(meta: Mapping[str, Any]) -> SpecKey:
    generation = meta.get("generation")
    return (generation, paused_by_annotation(meta),
            None if generation is not None else meta.get("resourceVersion"))


def paused_by_annotation(meta: Mapping[str, Any]) -> bool:
    return (meta.get("annotations") or {}).get(dep.PAUSED_ANNOTATION) == "true"


def parse(body_spec: Mapping[str, Any], *, paused_annotation: bool,
          refuse_privileged: bool) -> api.QueueWorkerSpec:
    """The spec as the loop uses it; ``SpecError`` says why it is unusable."""
    spec = parse_spec(dict(body_spec))
    if refuse_privileged:
        refused = privileged_reasons(dict(body_spec.get("template") or {}))
        if refused:
            raise SpecError([SpecProblem(r.split(":", 1)[0], r.split(": ", 1)[-1]
                                         + " is refused by this operator",
                                         "--refuse-privileged") for r in refused])
    if paused_annotation and not spec.scaling.paused:
        spec = spec.model_copy(update={
            "scaling": spec.scaling.model_copy(update={"paused": True})})
    return spec


class SpecReader:
    """The last parsed spec and the last refused one, by ``spec_key``."""

    def __init__(self, refuse_privileged: bool) -> None:
        self.refuse_privileged = refuse_privileged
        self.cached: tuple[SpecKey, api.QueueWorkerSpec] | None = None
        self.bad_key: SpecKey | None = None

    def changed(self, meta: Mapping[str, Any]) -> bool:
        """Whether ``meta`` announces a spec this reader has not parsed (nor refused)."""
        key = spec_key(meta)
        if key == self.bad_key:
            return False
        return self.cached is None or self.cached[0] != key

    def read(self, body: Mapping[str, Any]) -> api.QueueWorkerSpec:
        """The spec of ``body``; the same object until the spec changes."""
        meta = body["metadata"]
        key = spec_key(meta)
        if self.cached is not None and self.cached[0] == key:
            return self.cached[1]
        try:
            spec = parse(body.get("spec") or {}, paused_annotation=paused_by_annotation(meta),
                         refuse_privileged=self.refuse_privileged)
        except SpecError:
            self.bad_key = key
            raise
        self.cached = (key, spec)
        return spec
