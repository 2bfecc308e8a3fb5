"""Secrets must opt in: only a Secret labelled ``queueworker.dev/use: "true"`` is used.

The operator may ``get`` any Secret, and whoever writes a QueueWorker chooses the host
in ``spec.redis.url``; without the opt-in a user who cannot read a Secret could have
the operator send it, as AUTH, to a server of theirs. Here that server is a plain TCP
listener that records every byte it is sent.
"""

from __future__ import annotations

import asyncio

import pytest

from queueworker.operator.controller.context import SECRET_OPT_IN_LABEL

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import fast_config, spec

pytestmark = pytest.mark.slow

POLL = 0.5
VALUE = "n0t-y0urs-pa55word"


class Listener:
    """A TCP server that records what clients send (and answers nothing)."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        self.connections += 1
        try:
            while data := await reader.read(4096):
                self.received.extend(data)
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_secret_without_label_is_refused_and_never_sent() -> None:
    listener = Listener()
    port = await listener.start()
    try:
        async with Cluster(config=fast_config()) as c:
            await c.start_operator()
            await c.add_secret("theirs", {"password": VALUE}, opted_in=False)
            qw = spec(f"redis://127.0.0.1:{port}/0", poll=POLL)
            qw["redis"]["passwordSecretRef"] = {"name": "theirs", "key": "password"}
            await c.create_qw("deputy", qw)

            cond = await wait_for(
                lambda: (c.condition("deputy", "SpecValid") or {}).get("status") == "False"
                and c.condition("deputy", "SpecValid"), 10, "SpecValid=False")
            assert cond["reason"] == "SecretNotOptedIn"
            assert "default/theirs" in cond["message"]
            assert SECRET_OPT_IN_LABEL in cond["message"]
            assert c.condition("deputy", "Ready")["status"] == "False"  # type: ignore[index]
            events = await wait_for(lambda: c.events("deputy", "SecretNotOptedIn"), 5,
                                    "a SecretNotOptedIn Event")
            assert SECRET_OPT_IN_LABEL in str(events)
            # Several polls later: still refused, nothing built, nothing sent anywhere.
            await asyncio.sleep(6 * POLL)
            assert c.deployment("deputy") is None
            assert listener.connections == 0
            assert VALUE.encode() not in bytes(listener.received)
            assert VALUE not in str(c.qw("deputy")) + str(c.events())

            # The Secret's owner opts in: the same QueueWorker is used from then on.
            await c.client.patch("/api/v1/namespaces/default/secrets/theirs",
                                 {"metadata": {"labels": {SECRET_OPT_IN_LABEL: "true"}}},
                                 operation="test_patch")
            await wait_for(lambda: c.deployment("deputy") is not None, 10,
                           "the Deployment once the Secret opts in")
            await wait_for(lambda: VALUE.encode() in bytes(listener.received), 10,
                           "AUTH with the opted-in Secret's value")
    finally:
        await listener.stop()


async def test_label_must_say_true() -> None:
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        await c.add_secret("half", {"url": "redis://127.0.0.1:1/0"}, opted_in=False)
        await c.client.patch("/api/v1/namespaces/default/secrets/half",
                             {"metadata": {"labels": {SECRET_OPT_IN_LABEL: "yes"}}},
                             operation="test_patch")
        qw = spec("redis://unused:6379/0", poll=POLL)
        qw["redis"] = {"urlSecretRef": {"name": "half", "key": "url"}}
        await c.create_qw("half", qw)
        cond = await wait_for(
            lambda: (c.condition("half", "SpecValid") or {}).get("status") == "False"
            and c.condition("half", "SpecValid"), 10, "SpecValid=False")
        assert cond["reason"] == "SecretNotOptedIn"
        assert "127.0.0.1:1" not in str(c.qw("half")) + str(c.events())
