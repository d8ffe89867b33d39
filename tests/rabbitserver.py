"""A throwaway RabbitMQ broker on free ports, which fault tests may stop, kill and restart.

The Debian package's /usr/sbin wrappers switch to the `rabbitmq` user and read
/etc/rabbitmq (which pins the node name and port 5672 of the machine's own broker), so
the server and rabbitmqctl run from /usr/lib/rabbitmq/bin with everything pointed at a
temp dir: an empty env file and plugin list, our own config (port), node name, data,
logs and HOME (its own Erlang cookie). A broker the machine runs is never touched.

Each test gets a vhost of its own on the session's broker (`add_vhost`): exchanges and
queues of one test cannot meet another's, and a vhost costs a second to make.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SBIN = Path("/usr/lib/rabbitmq/bin")
SERVER = SBIN / "rabbitmq-server"
CTL = SBIN / "rabbitmqctl"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
CTL_TIMEOUT_S = 60.0
LOG_TAIL_CHARS = 3000
DIST_PORT_TRIES = 3


def missing_rabbitmq_reason() -> str | None:
    for binary in (SERVER, CTL):
        if not os.access(binary, os.X_OK):
            return f"{binary} is missing (apt-get install rabbitmq-server)"
    return None


def _wait_gone(group: int, timeout_s: float) -> bool:
    """Until no process of this process group is left; False on the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)  # another process's exit: nothing to wait on but asking again
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DistPortTaken(RuntimeError):
    """The node could not listen on its Erlang distribution port."""


class RabbitServer:
    def __init__(self) -> None:
        self.port = _free_port()
        self.dist_port = _free_port()
        self.node = f"chatd-test-{self.port}@localhost"
        self.dir = Path(tempfile.mkdtemp(prefix="chatd-rabbit-"))
        (self.dir / "rabbitmq-env.conf").write_text("")
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            # A test machine's disk may be nearly full: don't refuse publishers for it.
            "disk_free_limit.absolute = 1MB\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, vhost: str = "/") -> str:
        path = "%2F" if vhost == "/" else vhost
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{path}"

    @property
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(self.dir),  # the Erlang cookie lives here, shared by server and ctl
            RABBITMQ_CONF_ENV_FILE=str(self.dir / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_PID_FILE=str(self.dir / "rabbit.pid"),
            ERL_EPMD_ADDRESS="127.0.0.1",  # an epmd we start listens on loopback only
            ERL_CRASH_DUMP=str(self.dir / "erl_crash.dump"),  # not the working directory
        )
        return env

    def start(self) -> None:
        for attempt in range(DIST_PORT_TRIES):
            try:
                self._start()
                return
            except DistPortTaken:
                # Another process took the free port we chose (or our previous VM's socket
                # lingers after a restart): the distribution port is ours to choose again.
                if attempt == DIST_PORT_TRIES - 1:
                    raise
                self.dist_port = _free_port()

    def _start(self) -> None:
        log = (self.dir / "server.out").open("ab")
        # A session of its own: stop() and kill() signal the script and the VM together.
        self._proc = subprocess.Popen(
            [str(SERVER)],
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                output = (self.dir / "server.out").read_text(errors="replace")
                if "dist_port_already_used" in output[-LOG_TAIL_CHARS:]:
                    raise DistPortTaken(self.dist_port)
                raise RuntimeError(
                    f"rabbitmq-server exited ({self._proc.returncode}):\n"
                    f"{output[-LOG_TAIL_CHARS:]}\nlogs:\n{self.log_tail()}"
                )
            if self._answers():
                return
            time.sleep(0.1)  # the VM is booting: nothing to wait on but the port
        raise RuntimeError(f"rabbitmq-server did not open port {self.port}:\n{self.log_tail()}")

    def _answers(self) -> bool:
        """The AMQP listener is open and greets a client (it opens last while booting)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"AMQP\x00\x00\x09\x01")
                return conn.recv(1) == b"\x01"  # a method frame: connection.start
        except OSError:
            return False

    def stop(self) -> None:
        """A clean shutdown: the broker closes connections and keeps durable state."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """A crash: nothing is flushed or said goodbye."""
        self._signal(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _signal(self, sig: signal.Signals) -> None:
        """Signal the session (the script and the VM), and wait until all of it is gone:
        the script can exit before the VM has (and a VM still shutting down holds its
        node name, so the next start would fail)."""
        if self._proc is None:
            return
        group = self._proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        try:
            self._proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self._proc.wait(timeout=STOP_TIMEOUT_S)
        self._proc = None
        if not _wait_gone(group, STOP_TIMEOUT_S):
            # Still there after a clean stop's time: a crash, then (the VM's helpers too).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            _wait_gone(group, STOP_TIMEOUT_S)

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            [str(CTL), "-n", self.node, *args],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=CTL_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout

    def add_vhost(self, name: str) -> str:
        """A vhost guest may use; its amqp:// URL."""
        self.ctl("add_vhost", name)
        self.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return self.url(name)

    def log_tail(self) -> str:
        # The server's own output last: why the latest start failed, if it did.
        parts = [*sorted((self.dir / "log").glob("*.log")), self.dir / "server.out"]
        text = "".join(p.read_text(errors="replace") for p in parts if p.exists())
        return text[-LOG_TAIL_CHARS:]

    def destroy(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
