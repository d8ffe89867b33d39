"""Browser fixtures: chatd on a trio loop in a thread, Chromium driven by Playwright.

Playwright's API runs on asyncio and the suite runs on trio, so the two never
share a loop: the browser tests are plain sync functions using Playwright's
sync API, and the server (with a proxy the test can cut) runs under its own
`trio.run` in a background thread. The test reaches into that loop with
`trio.from_thread.run_sync(..., trio_token=...)`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from chatd.config import Settings
from chatd.server import serve
from tests.conftest import settings_for, skip_or_fail

T = TypeVar("T")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
START_TIMEOUT_S = 30


class CuttableProxy:
    """A TCP proxy in front of chatd that a test can cut, as a network blip would.

    cut(): every proxied connection is closed and new ones are refused until
    restore(). drop_replies(): bytes from the server are discarded, so a send
    reaches the server but its acknowledgement never reaches the client.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._links: set[trio.CancelScope] = set()
        self.up = True
        self.replies = True

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        task_status.started(f"http://127.0.0.1:{port}")
        await trio.serve_listeners(self._link, listeners)

    def cut(self) -> None:
        self.up = False
        for scope in self._links:
            scope.cancel()

    def drop_replies(self) -> None:
        self.replies = False

    def restore(self) -> None:
        self.up = True
        self.replies = True

    async def _link(self, client: trio.SocketStream) -> None:
        async with client:
            if not self.up:
                return
            with trio.CancelScope() as scope:
                self._links.add(scope)
                try:
                    server = await trio.open_tcp_stream("127.0.0.1", self._upstream_port)
                    async with server, trio.open_nursery() as nursery:
                        nursery.start_soon(self._pump, client, server, False, nursery.cancel_scope)
                        nursery.start_soon(self._pump, server, client, True, nursery.cancel_scope)
                finally:
                    self._links.discard(scope)

    async def _pump(
        self,
        source: trio.SocketStream,
        sink: trio.SocketStream,
        is_reply: bool,
        done: trio.CancelScope,
    ) -> None:
        try:
            async for chunk in source:
                if self.replies or not is_reply:
                    await sink.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            done.cancel()  # either side gone: the link is over


class BackgroundServer:
    """chatd and a CuttableProxy in front of it, running in a thread of their own."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._scope = trio.CancelScope()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._thread = threading.Thread(target=self._main, name="chatd-server", daemon=True)
        self.url = ""  # straight to chatd
        self.proxy_url = ""  # through the proxy
        self.proxy: CuttableProxy | None = None

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError(f"chatd did not start within {START_TIMEOUT_S} s")
        if self._error is not None:
            raise RuntimeError("chatd failed to start") from self._error
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):  # it died already
                trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(START_TIMEOUT_S)
        if self._error is not None:
            raise RuntimeError("chatd failed in its thread") from self._error

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) on the server's trio loop and return its result."""
        assert self._token is not None
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `await fn(*args)` on the server's trio loop (a real client, say)."""
        assert self._token is not None
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with self._scope:
            async with trio.open_nursery() as nursery:
                self.url = await nursery.start(serve, self._settings)
                self.proxy = CuttableProxy(int(self.url.rsplit(":", 1)[1]))
                self.proxy_url = await nursery.start(self.proxy.run)
                self._ready.set()


@pytest.fixture
def web_settings(sqlite_database: str) -> Settings:
    return settings_for(sqlite_database)


@pytest.fixture
def web_server(web_settings: Settings) -> Iterator[BackgroundServer]:
    with BackgroundServer(web_settings) as server:
        yield server


def chromium_path() -> str | None:
    configured = os.environ.get("CHATD_TEST_CHROMIUM")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("browser tests need Playwright: pip install playwright (see tests/web/README)")
    executable = chromium_path()
    if executable is None:
        skip_or_fail("browser tests need Chromium: apt-get install chromium (see tests/web/README)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def database_url(sqlite_database: str) -> str:
    """Serving files does not depend on the database: SQLite only here."""
    return sqlite_database
