"""A real Prometheus scrapes a real chatd, with the project's own scrape config.

ops/prometheus/prometheus.yml is loaded and narrowed: only its `chatd` job,
pointed at the test server, every 1 s. Its rule_files are kept, made
absolute, so the real server also loads (and evaluates) alerts.yml.

Prometheus applies discovered targets on a fixed 5 s tick, so its first
scrape comes about 5 s after it starts: most of this test's time.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import yaml

from tests.conftest import skip_or_fail
from tests.helpers import Api
from tests.ops.prometheus_bin import ROOT, find_tool

PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
MESSAGES = 5
WAIT_S = 15  # for Prometheus to start, scrape and answer; the test stays under 30 s


@pytest.fixture
def database_url(sqlite_database: str) -> str:
    return sqlite_database  # what is counted does not depend on the store


def tool(name: str) -> Path:
    path, reason = find_tool(name)
    if path is None:
        skip_or_fail(reason)
    assert path is not None
    return path


# Looked up in plain fixtures: a skip raised inside a trio test loses its reason.
@pytest.fixture
def prometheus_binary() -> Path:
    return tool("prometheus")


@pytest.fixture
def promtool_binary() -> Path:
    return tool("promtool")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape_config(target: str) -> dict[str, Any]:
    """The project's prometheus.yml with only the chatd job, scraping `target` every 1 s."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["global"].pop("scrape_timeout", None)
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "chatd"]
    # The compose stack finds its chatd processes by DNS; here there is one, by address.
    job = {key: value for key, value in job.items() if not key.endswith("_sd_configs")}
    job |= {"scrape_interval": "1s", "static_configs": [{"targets": [target]}]}
    job.pop("scrape_timeout", None)
    config["scrape_configs"] = [job]
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config.get("rule_files", [])]
    return config


async def drive_traffic(api: Api) -> None:
    """Register, log in, create a room, send MESSAGES over a WebSocket and see them back."""
    alice = await api.signup()
    room = await api.create_room(alice, "metrics")
    async with api.socket(alice, room["id"]) as ws:
        for n in range(MESSAGES):
            await ws.send(f"message {n}")
        await ws.messages(MESSAGES)  # each echo means committed


class Prometheus:
    def __init__(self, base_url: str, process: trio.Process, log_path: Path) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=5)
        self.process = process
        self.log_path = log_path

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    async def ready(self) -> bool:
        return (await self.http.get("/-/ready")).status_code == 200  # 503 while starting

    async def get(self, path: str, **params: str) -> Any:
        reply = await self.http.get(path, params=params)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["status"] == "success", body
        return body["data"]

    async def wait_until(self, what: str, probe: Any, timeout_s: float = WAIT_S) -> Any:
        """Poll `probe()` until it returns something truthy: nothing else to wait on."""
        last: Any = None
        with trio.move_on_after(timeout_s):
            while True:
                if self.process.returncode is not None:
                    raise AssertionError(f"prometheus exited:\n{self.log_tail()}")
                try:
                    last = await probe()
                except httpx.TransportError as exc:  # not listening yet
                    last = exc
                else:
                    if last:
                        return last
                await trio.sleep(0.1)
        raise AssertionError(
            f"{what}: not within {timeout_s} s; last {last!r}\nprometheus log:\n{self.log_tail()}"
        )

    async def wait_for_value(self, expr: str, expected: float) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            result = await self.get("/api/v1/query", query=expr)
            if len(result["result"]) == 1 and float(result["result"][0]["value"][1]) == expected:
                return result["result"][0]  # type: ignore[no-any-return]
            return None

        return await self.wait_until(f"{expr} == {expected}", probe)  # type: ignore[no-any-return]


@asynccontextmanager
async def running_prometheus(
    binary: Path, target: str, tmp_path: Path
) -> AsyncIterator[Prometheus]:
    """A Prometheus server scraping `target`; stopped (SIGTERM, then SIGKILL) on exit."""
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(scrape_config(target)))
    port = free_port()
    log_path = tmp_path / "prometheus.log"
    command = [
        str(binary),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with log_path.open("wb") as log:
        async with trio.open_nursery() as nursery:
            run = partial(trio.run_process, stdout=log, stderr=subprocess.STDOUT, check=False)
            process: trio.Process = await nursery.start(run, command)
            prometheus = Prometheus(f"http://127.0.0.1:{port}", process, log_path)
            try:
                await prometheus.wait_until("prometheus ready", prometheus.ready)
                yield prometheus
            finally:
                await prometheus.http.aclose()
                nursery.cancel_scope.cancel()  # run_process's deliver_cancel: SIGTERM


async def test_prometheus_scrapes_chatd_with_the_project_config(
    prometheus_binary: Path, api: Api, tmp_path: Path
) -> None:
    target = api.base_url.removeprefix("http://")
    async with running_prometheus(prometheus_binary, target, tmp_path) as prometheus:
        up = await prometheus.wait_for_value('up{job="chatd"}', 1)
        assert up["metric"]["instance"] == target
        await drive_traffic(api)
        for counter in ("chatd_messages_received_total", "chatd_messages_persisted_total"):
            sample = await prometheus.wait_for_value(f'{counter}{{job="chatd"}}', MESSAGES)
            assert sample["metric"]["instance"] == target

        # The alert rules loaded from ops/prometheus and evaluate without errors.
        expected_groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]

        async def evaluated() -> list[dict[str, Any]] | None:
            groups: list[dict[str, Any]] = (await prometheus.get("/api/v1/rules"))["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            return groups if rules and all(r["health"] != "unknown" for r in rules) else None

        groups = await prometheus.wait_until("every rule evaluated", evaluated)
        assert [g["name"] for g in groups] == [g["name"] for g in expected_groups]
        broken = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"]]
        assert [b for b in broken if b[1]] == []


async def test_promtool_finds_no_problems_in_the_metrics(promtool_binary: Path, api: Api) -> None:
    await drive_traffic(api)
    exposition = await api.http.get("/metrics")
    assert exposition.status_code == 200
    assert b"chatd_messages_persisted_total" in exposition.content
    with trio.fail_after(10):
        checked = await trio.run_process(
            [str(promtool_binary), "check", "metrics"],
            stdin=exposition.content,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    problems = (checked.stdout + checked.stderr).decode()
    assert checked.returncode == 0, problems

    # And it does object when there is something to object to.
    bad = b"# HELP chatd_things Things.\n# TYPE chatd_things counter\nchatd_things 1\n"
    with trio.fail_after(10):
        control = await trio.run_process(
            [str(promtool_binary), "check", "metrics"], stdin=bad, capture_stderr=True, check=False
        )
    assert control.returncode != 0 and b"_total" in control.stderr
