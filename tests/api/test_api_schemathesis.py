"""The running server (uvicorn, real Redis) against its own OpenAPI schema, by schemathesis:
valid and invalid input on every operation; no 5xx, every answer as the schema says
(status, content type, body), invalid input refused with a 4xx."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from support.api_client import make_token
from support.api_proc import ApiServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(redis_server: object) -> Iterator[ApiServer]:
    from support.redis_server import RedisServer

    assert isinstance(redis_server, RedisServer)
    api = ApiServer(redis_server.url, "--rate-limit", "0")
    yield api
    api.stop()


# This suite's operations; any other the app serves (other routers) is tested as well.
OPERATIONS = {
    "POST /v1/queues/{queue}/jobs", "GET /v1/jobs/{job_id}", "GET /v1/jobs/{job_id}/result",
    "GET /v1/jobs/{job_id}/wait", "GET /v1/jobs/{job_id}/events", "GET /v1/queues",
    "GET /v1/queues/{queue}", "GET /v1/workers", "GET /v1/failed", "GET /v1/failed/{job_id}",
    "POST /v1/failed/{job_id}/retry", "DELETE /v1/failed/{job_id}",
    "POST /v1/queues/{queue}/pause", "POST /v1/queues/{queue}/resume", "GET /healthz",
}
EXAMPLES = 12  # per operation and mode: about 400 requests in all
# Fixed examples in CI (no flaky runs); QW_SCHEMATHESIS_RANDOM=1 explores new ones.
DERANDOMIZE = not os.environ.get("QW_SCHEMATHESIS_RANDOM")


def _run(server: ApiServer, op: schemathesis.APIOperation, mode: GenerationMode,
         failures: list[str]) -> None:
    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=server.url, timeout=30)

    try:
        check()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, op.label  # nothing there to make invalid
    except (Exception, BaseExceptionGroup) as exc:  # every operation is tried, then one fail
        failures.append(f"{mode.value} {op.label}: {exc}")


def _requests(server: ApiServer) -> int:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as r:
        text = r.read().decode()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("queueworker_api_requests_total{")))


def test_every_operation_answers_as_its_schema_says(server: ApiServer) -> None:
    # The token through schemathesis's own auth config (the schema's HTTPBearer scheme), so
    # it knows which requests carry valid credentials and which it made invalid on purpose.
    config = schemathesis.Config.from_dict(
        {"auth": {"openapi": {"HTTPBearer": {"bearer": make_token(scope="admin", ttl=3600)}}}})
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=config)
    ops = [r.ok() for r in schema.get_all_operations()]
    assert {op.label for op in ops} >= OPERATIONS
    failures: list[str] = []
    for op in ops:
        for mode in GenerationMode:
            _run(server, op, mode, failures)
    assert failures == [], "\n\n".join(failures)
    answered = _requests(server)
    print(f"schemathesis: {answered} requests")
    assert answered >= len(ops) * EXAMPLES, answered  # the examples did reach the server
    log = server.stop()
    assert "Traceback" not in log, log
