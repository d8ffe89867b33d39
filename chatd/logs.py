"""setup_logging(): one JSON object per line on stdout, or readable lines on a terminal.

CHATD_LOG_FORMAT (json, text or auto: text on a terminal, else JSON) and
CHATD_LOG_LEVEL are read here rather than in Settings: logging has to be
running before Settings.from_env(), which may itself log a warning.

Every line carries the request id and user id of the HTTP request or
WebSocket connection it was logged for, when there is one. They live in
context variables: each request runs in a task of its own, and a Trio task
starts with a copy of its parent's context, so a value set while handling
one request is never seen by another.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from queue import Full, Queue
from types import TracebackType
from typing import Any, TextIO

request_id_var: ContextVar[str | None] = ContextVar("chatd_request_id", default=None)
user_id_var: ContextVar[int | None] = ContextVar("chatd_user_id", default=None)

FORMATS = ("json", "text", "auto")
QUEUE_RECORDS = 10_000
_listener: logging.handlers.QueueListener | None = None

DEFAULT_LEVEL = "INFO"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What every LogRecord has; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(
    set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
    | {"message", "asctime", "taskName", "request_id", "user_id"}
)


class ContextFilter(logging.Filter):
    """Stamps each record with the ids of the request it was logged in.

    A handler's filter runs in the logging call's own thread and context
    (trio.to_thread carries the context into worker threads), unlike a
    formatter behind a queue. An id passed in `extra=` wins.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "user_id", None) is None:
            record.user_id = user_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "event", "request_id"?, "user_id"?, "exc"?, extras...}"""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key in ("request_id", "user_id"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # ASCII only: the line survives any stdout encoding; newlines stay escaped.
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with the request's ids appended when there are any."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{key}={value}"
            for key in ("request_id", "user_id")
            if (value := getattr(record, key, None)) is not None
        ]
        if not ids:
            return line
        head, newline, rest = line.partition("\n")  # after the message, before a traceback
        return f"{head} [{' '.join(ids)}]{newline}{rest}"


class _Handoff(logging.handlers.QueueHandler):
    """Hands each record to the writer thread: a logging call never waits on stdout.

    A slow reader of the process's output (a full pipe) would otherwise stop
    the event loop inside write(). Formatting happens in the writer thread
    too. When the queue is full, records are dropped and counted, and the
    count is logged once there is room again.
    """

    queue: Queue[logging.LogRecord]

    def __init__(self, records: Queue[logging.LogRecord]) -> None:
        super().__init__(records)
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = record.getMessage()  # what the arguments say now, not when written
        record.args = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            if self.dropped:
                note = logging.makeLogRecord(
                    {"name": __name__, "levelno": logging.WARNING, "levelname": "WARNING"}
                )
                note.msg = f"{self.dropped} log lines dropped: the output was not read fast enough"
                self.queue.put_nowait(note)
                self.dropped = 0
            self.queue.put_nowait(record)
        except Full:
            self.dropped += 1


@atexit.register
def _stop_listener() -> None:
    if _listener is not None:
        _listener.stop()  # writes out what is queued


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("chatd").critical("uncaught exception: exiting", exc_info=(kind, exc, tb))


def rfc3339(timestamp: float) -> str:
    """2026-01-31T12:34:56.789Z"""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def choose_format(requested: str, stream: TextIO) -> str:
    if requested == "auto":
        isatty = getattr(stream, "isatty", None)
        return "text" if isatty is not None and isatty() else "json"
    return requested


def setup_logging(env: Mapping[str, str] | None = None, stream: TextIO | None = None) -> None:
    """Send every log record to stdout (or `stream`), replacing any earlier setup."""
    env = os.environ if env is None else env
    stream = sys.stdout if stream is None else stream
    problems: list[str] = []

    requested = env.get("CHATD_LOG_FORMAT", "auto").strip().lower() or "auto"
    if requested not in FORMATS:
        problems.append(f"CHATD_LOG_FORMAT={requested!r} is not one of {', '.join(FORMATS)}")
        requested = "auto"
    level_name = env.get("CHATD_LOG_LEVEL", DEFAULT_LEVEL).strip().upper() or DEFAULT_LEVEL
    level = logging.getLevelNamesMapping().get(level_name)
    if level is None:
        problems.append(f"CHATD_LOG_LEVEL={level_name!r} is not a logging level")
        level = logging.getLevelNamesMapping()[DEFAULT_LEVEL]

    writer = logging.StreamHandler(stream)
    formatter = JsonFormatter() if choose_format(requested, stream) == "json" else TextFormatter()
    writer.setFormatter(formatter)
    handler = _Handoff(Queue(QUEUE_RECORDS))
    handler.addFilter(ContextFilter())  # in the logging call's own thread and context
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    global _listener
    if _listener is not None:
        _listener.stop()
    _listener = logging.handlers.QueueListener(handler.queue, writer)
    _listener.start()
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings.warn() output too, as log lines
    sys.excepthook = _log_uncaught  # and a crash's traceback
    # A bad setting is no reason not to start: say so, and carry on with the default.
    for problem in problems:
        logging.getLogger(__name__).warning("%s; using the default", problem)
