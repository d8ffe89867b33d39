"""Graceful drain on SIGTERM: stop being ready, hand every socket back, commit the queue.

Clients closed with 1012 ("service restart") reconnect — the load balancer
sends them to another instance, since this one now fails /readyz — and
resume with ?since=, so nothing they were sent is missed. Whatever they
had queued for the writer is committed before the process exits; what
they had not yet seen acknowledged they resend with the same client_id.
"""

from __future__ import annotations

import logging

import trio

from chatd.closecodes import SERVICE_RESTART
from chatd.service import Service

log = logging.getLogger(__name__)

# Left of the drain budget for the HTTP server to finish in-flight requests.
HTTP_GRACE_S = 2.0


async def drain(service: Service) -> None:
    settings = service.settings
    service.draining.set()
    members = service.hub.all_members()
    log.info("draining: closing %d sockets, then flushing the writer", len(members))
    with trio.move_on_after(max(0.0, settings.drain_timeout_s - HTTP_GRACE_S)) as budget:
        # In steps, so a big instance's clients do not all reconnect in the same instant.
        while pending := [m for m in service.hub.all_members() if m.close_code is None]:
            for member in pending[: settings.drain_batch]:
                member.kick(SERVICE_RESTART, "server restarting")
            await trio.sleep(settings.drain_step_s)
        await service.hub.wait_empty()
        await service.writer.flush()
    if budget.cancelled_caught:
        log.warning("drain: deadline of %s s reached; exiting anyway", settings.drain_timeout_s)
    else:
        log.info("drained")
