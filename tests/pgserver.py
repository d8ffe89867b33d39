"""A throwaway PostgreSQL server for the test suite.

`PgServer.start_new()` runs `initdb` in a fresh temp dir and starts the cluster on a
free 127.0.0.1 port with durability switched off. `PgServer.from_url()` wraps a server
someone else runs (CHATD_TEST_DATABASE_URL): databases can be created and dropped on
it, but it cannot be stopped or started.

PostgreSQL refuses to run as root, so under root the server binaries run as the
`postgres` OS user. `missing_binaries_reason()` says why a server cannot be started here.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
RUN_AS_WHEN_ROOT = "postgres"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
INITDB_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 5
POLL_INTERVAL_S = 0.05
LOG_TAIL_LINES = 40
PORT_ATTEMPTS = 3

_DEB_BIN_GLOB = "/usr/lib/postgresql/*/bin"


class PgServerError(RuntimeError):
    """The throwaway server could not be created, started or stopped."""


class _PortInUse(PgServerError):
    """The postmaster could not bind its port: someone took it after we picked it."""


@dataclass(frozen=True)
class _Binaries:
    initdb: str
    pg_ctl: str


@dataclass(frozen=True)
class _RunAs:
    """The OS user the server runs as; None fields mean the current user."""

    name: str
    uid: int | None = None
    gid: int | None = None


def _deb_bin_dirs() -> list[Path]:
    """Debian-style `/usr/lib/postgresql/<version>/bin` dirs, newest first."""

    def version(path: Path) -> tuple[int, ...]:
        parts = path.parent.name.split(".")
        return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (-1,)

    return sorted((Path(p) for p in glob.glob(_DEB_BIN_GLOB)), key=version, reverse=True)


def _find_binaries() -> _Binaries | None:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return _Binaries(initdb=initdb, pg_ctl=pg_ctl)
    for bin_dir in _deb_bin_dirs():
        initdb, pg_ctl = bin_dir / "initdb", bin_dir / "pg_ctl"
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return _Binaries(initdb=str(initdb), pg_ctl=str(pg_ctl))
    return None


def _run_as() -> _RunAs | None:
    """Who runs the server: ourselves, or `postgres` when we are root. None: nobody."""
    if os.geteuid() != 0:
        try:
            return _RunAs(name=pwd.getpwuid(os.geteuid()).pw_name)
        except KeyError:  # a uid without a passwd entry, as in some containers
            return _RunAs(name=str(os.geteuid()))
    try:
        entry = pwd.getpwnam(RUN_AS_WHEN_ROOT)
    except KeyError:
        return None
    return _RunAs(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid)


def missing_binaries_reason() -> str | None:
    """Why `PgServer.start_new()` cannot work on this machine, or None if it can."""
    if _find_binaries() is None:
        return (
            "PostgreSQL server binaries not found: no initdb/pg_ctl on PATH "
            f"and none under {_DEB_BIN_GLOB} (install postgresql, "
            "or set CHATD_TEST_DATABASE_URL)"
        )
    if _run_as() is None:
        return (
            f"running as root and there is no {RUN_AS_WHEN_ROOT!r} OS user to run "
            "PostgreSQL as (it refuses to run as root)"
        )
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"expected a postgresql:// URL, got scheme {parts.scheme!r}")
    return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no server log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class _Cluster:
    """The parts of a server this process created: binaries, data dir, port."""

    binaries: _Binaries
    run_as: _RunAs
    base_dir: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sock"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    def run(self, args: list[str], *, timeout_s: float) -> subprocess.CompletedProcess[str]:
        """Run a server binary as the server's OS user, never through a shell."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        extra: dict = {}
        if self.run_as.uid is not None:
            extra = {"user": self.run_as.uid, "group": self.run_as.gid, "extra_groups": []}
        try:
            return subprocess.run(
                args,
                cwd=self.base_dir,  # the server user may not be able to read our cwd
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                **extra,
            )
        except subprocess.TimeoutExpired as exc:
            raise PgServerError(
                f"{Path(args[0]).name} took longer than {timeout_s:.0f}s\n"
                f"--- server log tail ({self.log_file}) ---\n{_tail(self.log_file)}"
            ) from exc

    def pg_ctl(self, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        return self.run(
            [self.binaries.pg_ctl, *args, "-D", str(self.data_dir)], timeout_s=timeout_s
        )

    def failure(self, what: str, result: subprocess.CompletedProcess[str] | None) -> str:
        output = ""
        if result is not None:
            output = f"exit status {result.returncode}\n{result.stdout}{result.stderr}"
        return (
            f"{what} (port {self.port}, data dir {self.data_dir})\n{output}"
            f"--- server log tail ({self.log_file}) ---\n{_tail(self.log_file)}"
        )

    def initdb(self) -> None:
        if self.run_as.uid is not None:
            os.chown(self.base_dir, self.run_as.uid, self.run_as.gid)
        result = self.run(
            [
                self.binaries.initdb,
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            timeout_s=INITDB_TIMEOUT_S,
        )
        if result.returncode != 0:
            raise PgServerError(self.failure("initdb failed", result))
        self.socket_dir.mkdir()
        if self.run_as.uid is not None:
            os.chown(self.socket_dir, self.run_as.uid, self.run_as.gid)
        # trust auth already covers local and host lines; just the settings remain.
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# chatd tests: throwaway server, durability off\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 200\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
            )

    def set_port(self, port: int) -> None:
        # later settings in postgresql.conf win, so appending is enough.
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {port}\n")
        self.port = port

    def is_running(self) -> bool:
        # 0: running, 3: not running, 4: no usable data dir.
        result = self.pg_ctl("status", timeout_s=STOP_TIMEOUT_S)
        return result.returncode == 0

    def start(self) -> None:
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        result = self.pg_ctl(
            "start",
            "-w",
            "-t",
            str(int(START_TIMEOUT_S)),
            "-l",
            str(self.log_file),
            timeout_s=START_TIMEOUT_S + 10,
        )
        if result.returncode != 0:
            with self.log_file.open(errors="replace") as log_text:
                log_text.seek(log_offset)
                port_taken = "Address already in use" in log_text.read()
            error = _PortInUse if port_taken else PgServerError
            raise error(self.failure("pg_ctl start failed", result))

    def stop(self, mode: str) -> None:
        result = self.pg_ctl(
            "stop", "-m", mode, "-w", "-t", str(int(STOP_TIMEOUT_S)), timeout_s=STOP_TIMEOUT_S + 10
        )
        if result.returncode != 0 and self.is_running():
            raise PgServerError(self.failure(f"pg_ctl stop -m {mode} failed", result))

    def remove(self) -> None:
        """Stop the server if it runs, then delete the temp dir, whatever happens."""
        try:
            if self.data_dir.exists() and self.is_running():
                try:
                    self.stop("fast")
                except PgServerError:
                    log.warning(
                        "postgres on port %s: fast stop failed, trying immediate", self.port
                    )
                    self.stop("immediate")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _remove_cluster(cluster: _Cluster) -> None:
    # weakref.finalize target: also runs at interpreter exit if destroy() never did.
    cluster.remove()


class PgServer:
    """A PostgreSQL server reachable over TCP as superuser `postgres`.

    Admin SQL goes over short-lived autocommit connections to the `postgres` database.
    """

    def __init__(self, admin_url: str, cluster: _Cluster | None = None) -> None:
        self._external_url = admin_url
        self._cluster = cluster
        self._finalizer = (
            weakref.finalize(self, _remove_cluster, cluster) if cluster is not None else None
        )

    @classmethod
    def start_new(cls) -> PgServer:
        """Create a cluster in a new temp dir and start it on a free 127.0.0.1 port."""
        binaries = _find_binaries()
        run_as = _run_as()
        if binaries is None or run_as is None:
            raise PgServerError(missing_binaries_reason())
        began = time.monotonic()
        cluster = _Cluster(
            binaries=binaries,
            run_as=run_as,
            base_dir=Path(tempfile.mkdtemp(prefix="chatd-pg-")),
            port=_free_port(),
        )
        server = cls("", cluster)
        try:
            cluster.initdb()
            deadline = time.monotonic() + START_TIMEOUT_S
            # the free port can be taken between picking and binding: try a few.
            for attempt in range(1, PORT_ATTEMPTS + 1):
                try:
                    cluster.start()
                    break
                except _PortInUse:
                    if attempt == PORT_ATTEMPTS:
                        raise
                    log.info("postgres: port %s was taken, picking another", cluster.port)
                    cluster.set_port(_free_port())
            server._wait_accepting(deadline)
        except BaseException:
            server.destroy()
            raise
        log.info(
            "postgres on port %s: ready in %.2fs (%s, as %s)",
            cluster.port,
            time.monotonic() - began,
            cluster.base_dir,
            run_as.name,
        )
        return server

    @classmethod
    def from_url(cls, admin_url: str) -> PgServer:
        """Wrap an external server; `admin_url` must connect as a user allowed to
        create databases. Its database name is ignored: admin SQL uses `postgres`."""
        return cls(_with_dbname(admin_url, "postgres"))

    @property
    def port(self) -> int:
        if self._cluster is not None:
            return self._cluster.port
        return urlsplit(self._admin_url).port or 5432

    @property
    def base_dir(self) -> Path | None:
        """The temp dir holding data dir, socket and log; None for an external server."""
        return self._cluster.base_dir if self._cluster is not None else None

    @property
    def log_file(self) -> Path | None:
        return self._cluster.log_file if self._cluster is not None else None

    @property
    def _admin_url(self) -> str:
        if self._cluster is not None:
            return f"postgresql://{SUPERUSER}@127.0.0.1:{self._cluster.port}/postgres"
        return self._external_url

    def url(self, dbname: str = "postgres") -> str:
        return _with_dbname(self._admin_url, dbname)

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self._admin_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)

    def create_database(self, name: str, template: str | None = None) -> None:
        """CREATE DATABASE; with a template, no one may be connected to the template."""
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self._admin() as conn:
            conn.execute(query)

    def drop_database(self, name: str) -> None:
        """Drop `name` if it exists, disconnecting anyone still using it."""
        query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with self._admin() as conn:
            conn.execute(query)

    def _local(self, action: str) -> _Cluster:
        if self._cluster is None:
            raise NotImplementedError("cannot restart an external server")
        if not self._cluster.base_dir.exists():
            raise PgServerError(f"cannot {action}: {self._cluster.base_dir} was destroyed")
        return self._cluster

    def stop(self) -> None:
        """Fast shutdown; the data dir stays, so `start()` brings the data back."""
        cluster = self._local("stop")
        cluster.stop("fast")
        log.info("postgres on port %s: stopped", cluster.port)

    def start(self) -> None:
        """Start again on the same port; returns once it accepts connections."""
        cluster = self._local("start")
        deadline = time.monotonic() + START_TIMEOUT_S
        cluster.start()
        self._wait_accepting(deadline)

    def _wait_accepting(self, deadline: float) -> None:
        """pg_ctl -w already waited for "ready"; confirm over TCP, as the suite connects."""
        assert self._cluster is not None
        last_error: Exception | None = None
        while True:
            try:
                with psycopg.connect(self._admin_url, connect_timeout=CONNECT_TIMEOUT_S):
                    return
            except psycopg.OperationalError as exc:
                last_error = exc
            if time.monotonic() >= deadline:
                raise PgServerError(
                    self._cluster.failure(
                        f"server not accepting connections after {START_TIMEOUT_S:.0f}s: "
                        f"{last_error}",
                        None,
                    )
                )
            time.sleep(POLL_INTERVAL_S)

    def is_running(self) -> bool:
        if self._cluster is None:
            try:
                with self._admin():
                    return True
            except psycopg.OperationalError:
                return False
        return self._cluster.base_dir.exists() and self._cluster.is_running()

    def destroy(self) -> None:
        """Stop the server and remove its temp dir. Idempotent; no-op when external."""
        if self._finalizer is not None:
            self._finalizer()

    def __repr__(self) -> str:
        where = self._cluster.base_dir if self._cluster is not None else "external"
        return f"<PgServer {self.url()} {where}>"
