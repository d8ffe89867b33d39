"""Settings.from_env(): every CHATD_* variable is read here, once."""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_SQLITE_FILE = "chatd.db"
# What `serve --role` accepts besides "all" (which is all of them).
ROLES = ("api", "ws", "notifications")
_ORIGIN = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#\s,]+")


class ConfigError(ValueError):
    """A CHATD_* variable holds something chatd cannot use."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = f"sqlite:///{DEFAULT_SQLITE_FILE}"
    redis_url: str | None = None
    # Keys and channels start with this: several deployments can share one Redis.
    redis_prefix: str = "chatd:"
    recent_cache_size: int = 200
    presence_ttl_s: float = 30.0
    typing_interval_s: float = 2.0
    jwt_secret: str = ""
    access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 30 * 24 * 3600
    bcrypt_rounds: int = 12
    # A spent refresh token presented again within this many seconds is refused
    # without revoking the login (a client that lost the answer); later, it is theft.
    refresh_replay_grace_s: float = 10.0
    # Per-socket queue of frames not yet written; full means slow consumer. Frames
    # are shared between sockets, so a slot costs a pointer. Keep it well above
    # writer_batch_max: one committed batch lands in every outbox at once.
    outbox_size: int = 1024
    # Drafts waiting for the writer, per lane; full means senders wait (backpressure). A longer
    # queue measured no faster, only slower to answer when the database falls behind.
    writer_queue_size: int = 1024
    # Drafts per transaction at most: 512 commits ~20% more messages/s than 256 when
    # the writer is saturated. One batch can land in one room's inbox and in every
    # outbox at once, so keep it at half of room_inbox_size and outbox_size or less.
    writer_batch_max: int = 512
    # Batches committed at once (PostgreSQL), each for its own share of the rooms.
    writer_lanes: int = 2
    room_inbox_size: int = 1024
    # Messages per page of a ?since= resume: a page is read from the store and written
    # out before the next is read, so a replay holds one page, however long the gap.
    # There is no cap: a resume costs what paging REST history would, paced by the socket.
    replay_page: int = 200
    max_frame_bytes: int = 64 * 1024
    max_text_chars: int = 4000
    # Pages whose WebSockets are let in besides chatd's own (see handshake.origin_allowed):
    # "" none, "*" any, or "https://chat.example.com,https://other.example".
    allowed_origins: str = ""
    # Strict-Transport-Security max-age on every HTTP answer; 0 sends none. chatd speaks
    # plain HTTP: set this only when a TLS proxy in front answers every request.
    hsts_max_age_s: int = 0
    # SIGTERM to exit, all in: below Kubernetes' 30 s grace period with a 5 s preStop.
    drain_timeout_s: float = 20.0
    drain_batch: int = 200  # sockets closed (1012) per step, so clients reconnect spread out
    drain_step_s: float = 0.05
    db_pool_size: int = 10
    db_timeout_s: float = 10.0
    # Rate limits (chatd/ratelimit/, docs/security.md). A rate, burst or count of 0 turns
    # that limit off. With Redis every instance counts into one total per key; without
    # it, or while Redis is away, each instance counts alone.
    ws_send_per_s: float = 100.0  # chat messages per user, sustained, all sockets together
    ws_send_burst: int = 1000  # ... and at once after a quiet spell
    ws_send_share_s: float = 0.5  # how often an instance adds its users' sends to Redis
    ws_abuse_refusals: int = 50  # refused sends within ws_abuse_window_s: closed with 1008
    ws_abuse_window_s: float = 10.0
    rest_user_per_s: float = 20.0  # REST requests with a valid access token, per user
    rest_user_burst: int = 200
    rest_address_per_s: float = 5.0  # REST requests without one, per client address
    rest_address_burst: int = 100
    register_address_per_s: float = 0.1  # registrations per client address (each is a bcrypt)
    register_address_burst: int = 20
    # Wrong passwords within login_failure_window_s that lock an account or an address
    # for login_lockout_s; each further lockout doubles, up to login_lockout_max_s.
    login_account_failures: int = 5
    login_address_failures: int = 20
    login_failure_window_s: float = 15 * 60.0
    login_lockout_s: float = 60.0
    login_lockout_max_s: float = 3600.0
    # Conversations (docs/protocol.md): a group DM's size besides its creator; rooms this
    # small (and DMs) show who has read what, and broadcast each member's watermark at most
    # once per read_broadcast_s (the newest wins).
    group_dm_max: int = 8
    seen_by_max_members: int = 50
    read_broadcast_s: float = 1.0
    # Proxies in front that append the client's address to X-Forwarded-For (the
    # Kubernetes ingress: 1). 0: the client is the socket's peer.
    trusted_proxy_hops: int = 0
    # What this process serves (docs/operations.md): "all", or a comma-separated set of
    # "api" (REST), "ws" (WebSockets) and "notifications". Split roles share one service
    # through Redis and the database, so anything but "all" needs CHATD_REDIS_URL.
    role: str = "all"
    # The event stream (chatd/events/): every committed change is an outbox row; the relay
    # publishes rows to this broker ("amqp://user:pass@host:5672/vhost"). Empty: no broker,
    # the rows are still numbered and kept, and consumers in this process read them there.
    events_url: str = ""
    events_exchange: str = "chatd.events"
    events_retention_s: float = 7 * 24 * 3600.0  # published rows kept for replay this long
    relay_batch_max: int = 500  # outbox rows per publish-and-mark transaction
    relay_poll_s: float = 1.0  # how often the relay looks for rows other instances wrote
    # OpenTelemetry (chatd/tracing/): off unless an OTLP/HTTP endpoint is set, here or in
    # OTEL_EXPORTER_OTLP_ENDPOINT ("http://jaeger:4318").
    otel_endpoint: str = ""
    otel_service_name: str = "chatd"
    # Admin API (chatd/admin/): how often each instance writes its statistics and live
    # connections where the others read them (Redis), and how long a silent one counts.
    instance_report_s: float = 5.0
    # Names this instance on the bus, in its statistics and on its spans; empty: a random
    # one per process (tests set it to run two instances in one process).
    instance_id: str = ""

    def __post_init__(self) -> None:
        for entry in self.allowed_origins.split(","):
            if entry.strip() not in ("", "*") and not _ORIGIN.fullmatch(entry.strip()):
                raise ConfigError(
                    f"CHATD_ALLOWED_ORIGINS: {entry.strip()!r} is not an origin "
                    "like https://chat.example.com (scheme and host, no path)"
                )

        unknown = self.role_names - {"all", *ROLES}
        if unknown or not self.role_names:
            raise ConfigError(
                f'CHATD_ROLE: {self.role!r} is not a set of roles: say "all" or some of '
                + ", ".join(ROLES)
            )
        if self.roles != frozenset(ROLES) and not self.redis_url:
            # A process of some roles is one part of a service: the others reach its
            # users (and it theirs) through Redis only.
            raise ConfigError(
                f"CHATD_ROLE={self.role}: a process of some roles only is one part of a "
                "service, and its parts meet in Redis: set CHATD_REDIS_URL"
            )

    @property
    def role_names(self) -> frozenset[str]:
        """The roles asked for, as written ("all" stays "all")."""
        return frozenset(part.strip() for part in self.role.split(",") if part.strip())

    @property
    def roles(self) -> frozenset[str]:
        """The roles this process plays: "all" is every one of ROLES."""
        names = self.role_names
        return frozenset(ROLES) if "all" in names else names

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, field in cls.__dataclass_fields__.items():
            key = f"CHATD_{name.upper()}"
            if key not in env:
                continue
            raw = env[key]
            kind = field.type
            try:
                if kind == "int":
                    values[name] = int(raw)
                elif kind == "float":
                    values[name] = float(raw)
                elif name == "redis_url":
                    values[name] = raw or None
                else:
                    values[name] = raw
            except ValueError:
                raise ConfigError(f"{key}={raw!r} is not a valid {kind}") from None
        return cls(**values).with_secret()

    def with_secret(self) -> Settings:
        """Fill in a random JWT secret when none is configured (and say so)."""
        if self.jwt_secret:
            return self
        log.warning(
            "CHATD_JWT_SECRET is not set: using a random secret; "
            "tokens will not survive a restart and instances will not accept each other's"
        )
        return replace(self, jwt_secret=secrets.token_urlsafe(48))

    @property
    def sqlite_path(self) -> Path | None:
        if not self.database_url.startswith("sqlite:///"):
            return None
        return Path(self.database_url.removeprefix("sqlite:///"))
