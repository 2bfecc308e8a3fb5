"""An operator-level guard against pod templates that escape their sandbox.

With `queueworker operator --refuse-privileged` (the default; `--no-refuse-privileged`
opts out, as the chart's `operator.refusePrivileged: false`), a QueueWorker whose template
asks for privileged containers, the host's namespaces or hostPath volumes is
not deployed: it gets SpecValid=False naming each offending field. Anyone who
may create a QueueWorker could otherwise use the operator's Deployment rights
to run such pods (RBAC: workload creation implies access to the node).
"""

from __future__ import annotations

from typing import Any


def _containers(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(kind) or []):
            if isinstance(c, dict):
                out.append((f"spec.template.spec.{kind}[{i}]", c))
    return out


def privileged_reasons(template: dict[str, Any]) -> list[str]:
    """Each item names a field of the template that the guard refuses, and why."""
    spec = template.get("spec") or {}
    if not isinstance(spec, dict):
        return []
    reasons: list[str] = []
    for field in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
        value = spec.get(field)
        # hostUsers defaults to true; only an explicit host*: true asks for the host.
        if field != "hostUsers" and value is True:
            reasons.append(f"spec.template.spec.{field}: shares the host's namespace")
    for i, vol in enumerate(spec.get("volumes") or []):
        if isinstance(vol, dict) and "hostPath" in vol:
            reasons.append(f"spec.template.spec.volumes[{i}].hostPath: mounts a host path "
                           f"({(vol.get('hostPath') or {}).get('path', '?')})")
    for path, container in _containers(spec):
        sc = container.get("securityContext") or {}
        if isinstance(sc, dict) and sc.get("privileged") is True:
            reasons.append(f"{path}.securityContext.privileged: privileged container")
        caps = ((sc.get("capabilities") or {}).get("add") or []) if isinstance(sc, dict) else []
        if "SYS_ADMIN" in caps or "ALL" in caps:
            reasons.append(f"{path}.securityContext.capabilities.add: {', '.join(caps)}")
    return reasons
