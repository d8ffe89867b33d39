"""Instance statistics and live connections, for the admin API.

Every instance makes a report every CHATD_INSTANCE_REPORT_S: who it is, what it
has served, and its live connections. With Redis, each writes its report to a
key of its own that expires after REPORT_TTL_INTERVALS intervals, so a crashed
instance drops out of the list by itself, and the admin API reads them all.
Without Redis there is one instance, and the report is made when asked for.

A report lists at most MAX_CONNECTIONS_LISTED connections (`truncated` says when
there were more; `connections` is always the full count).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import trio

import chatd
from chatd.bus.redis import FAULTS
from chatd.config import Settings
from chatd.hub.hub import Hub
from chatd.metrics import Metrics
from chatd.model import iso

log = logging.getLogger(__name__)

MAX_CONNECTIONS_LISTED = 10_000
REPORT_TTL_INTERVALS = 3
MIN_INTERVAL_S = 0.1  # CHATD_INSTANCE_REPORT_S=0 must not spin
READ_TIMEOUT_S = 2.0
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

RedisClient = Callable[[], Any]  # the bus's client, None while it is not connected


class InstanceReports:
    def __init__(
        self,
        settings: Settings,
        hub: Hub,
        metrics: Metrics,
        redis: RedisClient | None,
        instance_id: str,
    ) -> None:
        self._settings = settings
        self._hub = hub
        self._metrics = metrics
        self._redis = redis
        self.instance_id = instance_id
        self._started_at = datetime.now(UTC)
        # The event loop's lag is averaged over the time since the previous report.
        self._lag_seen = (0.0, 0.0)  # (sum, count) of the lag histogram then

    def key(self, instance_id: str) -> str:
        return f"{self._settings.redis_prefix}instance:{instance_id}"

    # -- making and writing ------------------------------------------------------

    def local(self) -> dict[str, Any]:
        """This instance's report, as of now."""
        members = self._hub.all_members()
        listed = members[:MAX_CONNECTIONS_LISTED]
        sample = self._metrics.registry.get_sample_value
        lag_sum = sample("chatd_event_loop_lag_seconds_sum") or 0.0
        lag_count = sample("chatd_event_loop_lag_seconds_count") or 0.0
        last_sum, last_count = self._lag_seen
        self._lag_seen = (lag_sum, lag_count)
        ticks = lag_count - last_count
        return {
            "instance_id": self.instance_id,
            "roles": sorted(self._settings.roles),
            "version": chatd.__version__,
            "pid": os.getpid(),
            "started_at": iso(self._started_at),
            "as_of": iso(datetime.now(UTC)),  # when this report was made
            "connections": len(members),
            "rooms_active": int(sample("chatd_rooms_active") or 0),
            "messages": {
                "received": int(sample("chatd_messages_received_total") or 0),
                "persisted": int(sample("chatd_messages_persisted_total") or 0),
                "delivered": int(sample("chatd_messages_delivered_total") or 0),
            },
            "event_loop_lag_s": round((lag_sum - last_sum) / ticks, 6) if ticks > 0 else None,
            "rss_bytes": rss_bytes(),
            "truncated": len(members) > len(listed),
            "live": [
                {
                    "user_id": member.user_id,
                    "room_id": member.room_id,
                    "connected_at": iso(datetime.fromtimestamp(member.connected_at, UTC)),
                    "address": member.peer_address(),
                }
                for member in listed
            ],
        }

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write this instance's report every interval while Redis answers, until
        cancelled; then take it down, so the instance leaves the list at once."""
        task_status.started()
        if self._redis is None:
            await trio.sleep_forever()  # reports are made when asked for
        interval_s = max(MIN_INTERVAL_S, self._settings.instance_report_s)
        ttl_s = max(1, round(interval_s * REPORT_TTL_INTERVALS))
        try:
            while True:
                client = self._redis()
                if client is not None:
                    try:
                        with trio.move_on_after(READ_TIMEOUT_S):
                            await client.set(
                                self.key(self.instance_id), _encode(self.local()), ex=ttl_s
                            )
                    except* FAULTS as group:
                        log.debug("admin: instance report not written: %s", group.exceptions[0])
                await trio.sleep(interval_s)
        finally:
            with trio.move_on_after(1, shield=True):
                client = self._redis()
                if client is not None:
                    try:
                        await client.delete([self.key(self.instance_id)])
                    except* (*FAULTS, RuntimeError):
                        # Best effort: the bus may have closed its client first (its pool
                        # says RuntimeError); the key expires by itself anyway.
                        pass

    # -- reading ------------------------------------------------------------------

    async def all(self) -> list[dict[str, Any]]:
        """Every live instance's latest report, each with `age_s` (how old it is);
        this instance's is made now. Without Redis, or while it is away: this one only."""
        reports: dict[str, dict[str, Any]] = {}
        client = None if self._redis is None else self._redis()
        if client is not None:
            try:
                with trio.fail_after(READ_TIMEOUT_S):
                    keys = [key async for key in client.scan_iter(match=self.key("*"), count=500)]
                    values = await client.mget(keys) if keys else ()
            except* (*FAULTS, trio.TooSlowError) as group:
                log.warning("admin: cannot read other instances' reports: %s", group.exceptions[0])
                values = ()
            for raw in values:
                if raw is None:
                    continue  # expired between the scan and the read
                try:
                    report = json.loads(raw)
                    reports[str(report["instance_id"])] = report
                except (ValueError, KeyError, TypeError):
                    log.warning("admin: ignoring a malformed instance report")
        reports[self.instance_id] = self.local()
        now = time.time()
        for report in reports.values():
            made = datetime.fromisoformat(report["as_of"]).timestamp()
            report["age_s"] = round(max(0.0, now - made), 3)
        return sorted(reports.values(), key=lambda report: str(report["instance_id"]))


def _encode(report: dict[str, Any]) -> str:
    return json.dumps(report, separators=(",", ":"))


def rss_bytes() -> int:
    """Resident memory now (Linux), else the peak."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if os.uname().sysname == "Darwin" else peak * 1024
