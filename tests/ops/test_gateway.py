"""The compose stack's gateway: a real nginx with ops/gateway/nginx.conf in front of real
`chatd serve` processes, one per role as docker-compose.yml runs them.

A browser knows one address. Through it, the web client, REST, a WebSocket opened by
the page (Origin and all) and the notifications must each reach the role that serves
them. The config is the project's own; only what names the compose network changes:
the upstreams become the test's processes, the listen port a free one, /tmp the
test's directory.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.conftest import skip_or_fail
from tests.helpers import Api, Socket
from tests.notifications.helpers import wait_for_notifications
from tests.ops.prometheus_bin import ROOT, find_tool
from tests.processes import Cluster, Instance, wait_for_redis
from tests.redisserver import RedisServer

GATEWAY_CONF = ROOT / "ops" / "gateway" / "nginx.conf"
ROLES = ("api", "ws", "notifications")
START_S = 10


@pytest.fixture
def nginx_binary() -> Path:  # a plain fixture: a skip inside a trio test loses its reason
    path, reason = find_tool("nginx")
    if path is None:
        skip_or_fail(reason)
    assert path is not None
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_config(upstreams: dict[str, str], port: int, directory: Path) -> str:
    """ops/gateway/nginx.conf, with compose's names swapped for this test's addresses."""
    text = GATEWAY_CONF.read_text()
    for service, address in upstreams.items():
        name = f"http://{service}:8080;"
        assert name in text, f"the gateway no longer proxies to {service}"
        text = text.replace(name, f"http://{address};")
    assert "listen 8080;" in text
    return text.replace("listen 8080;", f"listen 127.0.0.1:{port};").replace(
        "/tmp/", f"{directory}/"
    )


@asynccontextmanager
async def running_gateway(
    binary: Path, upstreams: dict[str, str], tmp_path: Path
) -> AsyncIterator[Api]:
    """nginx in the foreground, listening once this yields; SIGTERM on exit."""
    directory = tmp_path / "gateway"
    directory.mkdir()
    port = free_port()
    (directory / "nginx.conf").write_text(gateway_config(upstreams, port, directory))
    command = [str(binary), "-p", f"{directory}/", "-c", str(directory / "nginx.conf")]
    command += ["-e", "stderr", "-g", "daemon off;"]
    log_path = directory / "nginx.log"
    with log_path.open("wb") as log:
        async with trio.open_nursery() as nursery:
            run = partial(trio.run_process, stdout=log, stderr=subprocess.STDOUT, check=False)
            process: trio.Process = await nursery.start(run, command)
            try:
                with trio.fail_after(START_S):
                    while True:  # nothing to wait on but the port opening
                        if process.returncode is not None:
                            raise AssertionError(f"nginx exited:\n{log_path.read_text()}")
                        try:
                            stream = await trio.open_tcp_stream("127.0.0.1", port)
                        except OSError:
                            await trio.sleep(0.05)
                        else:
                            await stream.aclose()
                            break
                api = Api(f"http://127.0.0.1:{port}")
                try:
                    yield api
                finally:
                    await api.aclose()
            finally:
                nursery.cancel_scope.cancel()


@pytest.fixture
async def roles(
    nursery: trio.Nursery, postgres_database: str, redis: RedisServer
) -> dict[str, Instance]:
    """chatd-api, chatd-ws and chatd-notifications, as docker-compose.yml starts them
    (CHATD_ROLE; no broker here: the notifications role follows the outbox)."""
    cluster = Cluster(nursery, postgres_database, redis.url, settings={"CHATD_RELAY_POLL_S": "0.2"})
    started = {}
    for role in ROLES:
        started[role] = await cluster.start(settings={"CHATD_ROLE": role})
    for instance in started.values():
        await wait_for_redis(instance)
    return started


async def test_one_address_reaches_every_role_through_the_gateway(
    nginx_binary: Path, roles: dict[str, Instance], tmp_path: Path
) -> None:
    upstreams = {
        f"chatd-{role}": instance.api.base_url.removeprefix("http://")
        for role, instance in roles.items()
    }
    async with running_gateway(nginx_binary, upstreams, tmp_path) as gateway:
        # The web client and REST: chatd-api.
        page = await gateway.http.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        ann, bob = await gateway.signup(), await gateway.signup()
        room = await gateway.create_room(ann)
        joined = await gateway.http.post(f"/api/v1/rooms/{room['id']}/join", headers=bob.headers)
        assert joined.status_code in (200, 201, 204), joined.text

        # A socket opened by the page: chatd-ws sees the browser's Host, so the page's
        # own Origin is let in, and another site's is still refused.
        own_origin = gateway.base_url
        url = gateway.ws_url(room["id"], token=ann.access_token)
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(url, extra_headers=[("Origin", "https://evil.example")]):
                pass
        assert refused.value.status_code == 403
        async with open_websocket_url(url, extra_headers=[("Origin", own_origin)]) as ws:
            sock = Socket(ws)
            await sock.send(f"@{bob.id} the build is red")
            sent = await sock.message()  # the echo: committed

        # bob was offline: chatd-notifications recorded the mention, served at the same address.
        [mention] = await wait_for_notifications(gateway, bob, 1)
        assert mention["kind"] == "mention"
        assert (mention["room_id"], mention["message_id"]) == (room["id"], sent["id"])

    # And each answer came from the role the path belongs to: the others refuse it.
    assert (
        await roles["api"].api.http.get("/api/v1/notifications", headers=bob.headers)
    ).status_code == 404
    assert (await roles["notifications"].api.http.get("/")).status_code == 404
