"""The README's start command, for real: `python -m chatd serve` in a fresh directory."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
import trio

ROOT = Path(__file__).resolve().parent.parent


def chatd(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
    environ |= {"CHATD_BCRYPT_ROUNDS": "4"} | (env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "chatd", *args],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def read_until(proc: subprocess.Popen[str], pattern: str, timeout_s: float = 30) -> str:
    assert proc.stdout is not None
    seen = []
    with trio.fail_after(timeout_s):
        while True:
            line = await trio.to_thread.run_sync(proc.stdout.readline)
            if not line:
                raise AssertionError("chatd exited early:\n" + "".join(seen))
            seen.append(line)
            if match := re.search(pattern, line):
                return match.group(1)


async def test_serve_on_the_embedded_default_and_stop_on_sigterm(tmp_path: Path) -> None:
    proc = chatd("serve", "--port", "0", cwd=tmp_path)
    try:
        base = await read_until(proc, r"listening on (http://\S+)")
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/readyz")).status_code == 200
            reply = await http.post(
                "/api/v1/auth/register", json={"email": "cli@example.com", "password": "x" * 8}
            )
            assert reply.status_code == 201
        assert (tmp_path / "chatd.db").exists()  # SQLite in the working directory
        proc.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(lambda: proc.wait(timeout=15)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_migrate_is_rerunnable(tmp_path: Path) -> None:
    env = {"CHATD_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    first = chatd("migrate", cwd=tmp_path, env=env).communicate(timeout=60)[0]
    again = chatd("migrate", cwd=tmp_path, env=env).communicate(timeout=60)[0]
    shipped = len(list((Path(__file__).parent.parent / "schema" / "sqlite").glob("*.sql")))
    assert f"applied {shipped} migration" in first
    assert "up to date" in again


def test_a_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    proc = chatd("serve", cwd=tmp_path, env={"CHATD_PORT": "eighty"})
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 2
    assert "CHATD_PORT" in output


@pytest.mark.slow
def test_the_wheel_carries_the_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    [wheel] = tmp_path.glob("chatd-*.whl")
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(unpacked)
    assert "chatd/schema/postgres/0001_init.sql" in names
    assert "chatd/schema/sqlite/0001_init.sql" in names
    # From another directory, the installed package finds its own copy.
    found = subprocess.run(
        [sys.executable, "-c", "from chatd.store.migrate import schema_dir; "
         "print(schema_dir('sqlite'))"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(unpacked)},
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert found == str(unpacked / "chatd" / "schema" / "sqlite")


def test_bench_runs_a_small_load_and_prints_figures(tmp_path: Path) -> None:
    env = {"CHATD_DATABASE_URL": f"sqlite:///{tmp_path / 'bench.db'}"}
    proc = chatd("bench", "--clients", "3", "--messages", "4", "--runs", "1", cwd=tmp_path, env=env)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, output
    for figure in ("committed_per_s", "deliveries_per_s", "latency_median_ms", "latency_p99_ms"):
        assert re.search(rf"{figure}\s+median\s+[0-9.]+", output), output
