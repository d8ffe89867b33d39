"""The echo scenario (the original `chatd bench`): N clients in one room, each
sending M messages one at a time, the next as soon as its echo is back.

It prints what a user would feel — the send-to-echo latency — and what the
server did: messages committed per second and deliveries (message x recipient)
per second. It uses trio-websocket, a full client: fine at this load.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url

from chatd.bench.accounts import PASSWORD
from chatd.bench.options import BenchOptions
from chatd.bench.server import Server


async def run_echo(server: Server, options: BenchOptions) -> dict[str, Any]:
    return await _drive(server.base_url, options.clients, options.messages)


async def _drive(base: str, clients: int, messages: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        tokens = []
        for index in range(clients):
            email = f"bench{index}-{time.monotonic_ns()}@example.com"
            await http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
            login = await http.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            tokens.append(login.json()["access_token"])
        room = await http.post(
            "/api/v1/rooms",
            json={"name": "bench"},
            headers={"Authorization": f"Bearer {tokens[0]}"},
        )
        room_id = room.json()["id"]
    ws_base = base.replace("http://", "ws://", 1)
    total = clients * messages
    latencies: list[float] = []
    connected = trio.Event()
    ready = 0
    go = trio.Event()
    deliveries = 0

    async def client(token: str) -> None:
        nonlocal ready, deliveries
        url = f"{ws_base}/ws/rooms/{room_id}?token={token}"
        async with open_websocket_url(url, message_queue_size=1024) as ws:
            ready += 1
            if ready == clients:
                connected.set()
            await go.wait()
            sent_at: dict[str, float] = {}
            mine = 0
            heard = 0

            async def send(i: int) -> None:
                client_id = f"{token[-12:]}-{i}"
                sent_at[client_id] = time.perf_counter()
                payload = {"text": f"message {i}", "client_id": client_id}
                await ws.send_message(json.dumps({"type": "message", "payload": payload}))

            await send(0)
            while heard < total:
                frame = json.loads(await ws.get_message())
                if frame["type"] != "message":
                    continue
                heard += 1
                client_id = frame["payload"].get("client_id")
                if client_id in sent_at:
                    latencies.append(time.perf_counter() - sent_at.pop(client_id))
                    mine += 1
                    if mine < messages:
                        await send(mine)
            deliveries += heard

    with trio.fail_after(max(60.0, total / 50)):
        async with trio.open_nursery() as nursery:
            for token in tokens:
                nursery.start_soon(client, token)
            await connected.wait()
            started = time.perf_counter()
            go.set()
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "messages": total,
        "seconds": elapsed,
        "committed_per_s": total / elapsed,
        "deliveries_per_s": deliveries / elapsed,
        "latency_median_ms": statistics.median(latencies) * 1000,
        "latency_p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }
