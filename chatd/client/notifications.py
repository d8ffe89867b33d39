"""`chatd notifications`: your mentions and missed DMs, newest first; --read marks them read."""

from __future__ import annotations

from typing import Any, TextIO

from chatd.client.api import ChatApi
from chatd.client.terminal import printable

SHOWN_MAX = 200  # the server's largest page: one request


def notification_line(notification: dict[str, Any]) -> str:
    """id, kind, where, who and the excerpt, tab-separated; unread ones starred."""
    excerpt = str(notification["excerpt"]).replace("\n", " ↵ ")
    return "\t".join(
        (
            f"{'*' if not notification['read'] else ' '}{notification['id']}",
            str(notification["kind"]),
            f"room {notification['room_id']} message {notification['message_id']}",
            f"from {notification['sender_id']}",
            printable(excerpt),
        )
    )


async def notifications(api: ChatApi, *, everything: bool, mark_read: bool, out: TextIO) -> int:
    page = await api.notifications(unread_only=not everything, limit=SHOWN_MAX)
    for notification in page["items"]:
        print(notification_line(notification), file=out)
    if mark_read and page["items"]:
        unread = await api.mark_notifications_read(up_to=int(page["items"][0]["id"]))
        print(f"marked read; {unread} unread left", file=out)
    elif not page["items"]:
        print("no notifications" if everything else "no unread notifications", file=out)
    return 0
