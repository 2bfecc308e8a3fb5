"""The --refuse-privileged guard names every field that asks for the host."""

from __future__ import annotations

from typing import Any

import pytest

from queueworker.operator.podsecurity import privileged_reasons

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _template(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"containers": [{"name": "w", "image": "i"}]}
    base.update(spec)
    return {"spec": base}


@pytest.mark.parametrize(("template", "field"), [
    (_template(hostNetwork=True), "spec.template.spec.hostNetwork"),
    (_template(hostPID=True), "spec.template.spec.hostPID"),
    (_template(hostIPC=True), "spec.template.spec.hostIPC"),
    (_template(volumes=[{"name": "v", "hostPath": {"path": "/var/run/docker.sock"}}]),
     "spec.template.spec.volumes[0].hostPath"),
    (_template(containers=[{"name": "w", "image": "i",
                            "securityContext": {"privileged": True}}]),
     "spec.template.spec.containers[0].securityContext.privileged"),
    (_template(initContainers=[{"name": "i", "image": "i",
                                "securityContext": {"privileged": True}}]),
     "spec.template.spec.initContainers[0].securityContext.privileged"),
    (_template(containers=[{"name": "w", "image": "i",
                            "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]),
     "spec.template.spec.containers[0].securityContext.capabilities.add"),
])
def test_refused_fields_are_named(template: dict[str, Any], field: str) -> None:
    reasons = privileged_reasons(template)
    assert len(reasons) == 1, reasons
    assert reasons[0].startswith(field + ":"), reasons


def test_ordinary_gpu_template_passes() -> None:
    template = _template(
        hostNetwork=False,
        volumes=[{"name": "cache", "emptyDir": {}}],
        containers=[{"name": "w", "image": "i",
                     "resources": {"limits": {"nvidia.com/gpu": 1}},
                     "securityContext": {"runAsNonRoot": True, "privileged": False}}],
    )
    assert privileged_reasons(template) == []


def test_several_problems_all_reported() -> None:
    template = _template(hostNetwork=True, hostPID=True,
                         volumes=[{"name": "h", "hostPath": {"path": "/"}}])
    assert len(privileged_reasons(template)) == 3


async def test_operator_refuses_privileged_template_when_asked(redis_url: str) -> None:
    from support.operator_cluster import Cluster, wait_for
    from support.operator_specs import fast_config, spec

    config = fast_config()
    config.refuse_privileged = True
    async with Cluster(config=config) as c:
        await c.start_operator()
        evil = spec(redis_url, ["a"])
        evil["template"]["spec"]["hostNetwork"] = True
        evil["template"]["spec"]["volumes"] = [{"name": "d",
                                                "hostPath": {"path": "/var/run"}}]
        await c.create_qw("evil", evil)
        await c.create_qw("fine", spec(redis_url, ["b"]))
        cond = await wait_for(lambda: (c.condition("evil", "SpecValid") or {}).get("status")
                              == "False" and c.condition("evil", "SpecValid"), 10,
                              "SpecValid=False on the privileged template")
        assert "spec.template.spec.hostNetwork" in cond["message"]
        assert "spec.template.spec.volumes[0].hostPath" in cond["message"]
        await wait_for(lambda: c.deployment("fine") is not None, 10, "the fine Deployment")
        assert c.deployment("evil") is None


async def test_privileged_template_is_deployed_without_the_option(redis_url: str) -> None:
    from support.operator_cluster import Cluster, wait_for
    from support.operator_specs import fast_config, spec

    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        host = spec(redis_url, ["a"])
        host["template"]["spec"]["hostNetwork"] = True
        await c.create_qw("host", host)
        await wait_for(lambda: c.deployment("host") is not None, 10, "the Deployment")
