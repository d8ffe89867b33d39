"""`chatd bench`: a bounded load run against a chatd it starts itself, on loopback.

N clients share one room; each sends M messages as fast as its echoes come
back (one in flight per client). It prints what a user would feel — the
send-to-echo latency — and what the server did: messages committed per
second and deliveries (message x recipient) per second.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import httpx
import trio
from trio_websocket import open_websocket_url

from chatd.config import Settings
from chatd.store.migrate import apply_migrations

PASSWORD = "bench-password"


async def run_bench(settings: Settings, clients: int, messages: int) -> dict[str, float]:
    """Start chatd as its own process (so it has a core to itself), then drive it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
    env |= {
        "CHATD_DATABASE_URL": settings.database_url,
        "CHATD_JWT_SECRET": settings.jwt_secret,
        "CHATD_BCRYPT_ROUNDS": "4",
        "CHATD_LOG_FORMAT": "text",
    }
    if settings.redis_url:
        env["CHATD_REDIS_URL"] = settings.redis_url
    command = [sys.executable, "-m", "chatd", "serve", "--no-migrate", "--port", "0"]
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                command,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                check=False,
            )
        )
        try:
            base: str = await nursery.start(_read_output, process)
            return await _drive(base, clients, messages)
        finally:
            process.terminate()


async def _read_output(process: trio.Process, task_status: trio.TaskStatus[str]) -> None:
    """Report the URL chatd listens on, then keep its output drained (a full pipe would
    stall its logging)."""
    assert process.stdout is not None
    seen = b""
    found = False
    with trio.fail_after(30) as startup:
        async for chunk in process.stdout:
            if found:
                continue
            seen += chunk
            if match := re.search(rb"listening on (http://[0-9.:]+)", seen):
                found = True
                startup.deadline = float("inf")
                task_status.started(match.group(1).decode())
    if not found:
        raise RuntimeError("chatd exited before listening:\n" + seen.decode(errors="replace"))


async def _drive(base: str, clients: int, messages: int) -> dict[str, float]:
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


def bench(settings: Settings, clients: int, messages: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        if settings.sqlite_path is not None and settings.database_url.endswith("chatd.db"):
            # Never load-test the real embedded database: use a scratch one.
            settings = replace(settings, database_url=f"sqlite:///{Path(scratch) / 'bench.db'}")
        apply_migrations(settings.database_url)
        results = [trio.run(run_bench, settings, clients, messages) for _ in range(runs)]
    print(f"chatd bench: {clients} clients x {messages} messages, one room, {runs} runs")
    print(f"database: {settings.database_url.split('://')[0]}, bus: "
          f"{'redis' if settings.redis_url else 'in-process'}")  # fmt: skip
    for key in ("committed_per_s", "deliveries_per_s", "latency_median_ms", "latency_p99_ms"):
        values = [result[key] for result in results]
        print(f"  {key:<20} median {statistics.median(values):10.1f}   "
              f"(runs: {', '.join(f'{v:.1f}' for v in values)})")  # fmt: skip
