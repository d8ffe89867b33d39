"""`chatd notifications`, the terminal client's view of them, against a real server."""

from __future__ import annotations

from tests.client.clients import client_env, run_chatd
from tests.helpers import Api
from tests.notifications.helpers import notifications, send, wait_for_notifications


async def test_chatd_notifications_lists_the_unread_and_marks_them_read(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    reply = await api.http.post(f"/api/v1/rooms/{room['id']}/join", headers=bob.headers)
    assert reply.status_code in (200, 201, 204), reply.text
    first = await send(api, ann, room["id"], f"@{bob.id} first")
    second = await send(api, ann, room["id"], f"@{bob.id} second\nline")
    [newest, oldest] = await wait_for_notifications(api, bob, 2)
    env = client_env(api.base_url, bob)

    done = await run_chatd("notifications", "--read", env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines() == [
        f"*{newest['id']}\tmention\troom {room['id']} message {second['id']}\tfrom {ann.id}"
        f"\t@{bob.id} second ↵ line",
        f"*{oldest['id']}\tmention\troom {room['id']} message {first['id']}\tfrom {ann.id}"
        f"\t@{bob.id} first",
        "marked read; 0 unread left",
    ]
    assert (await notifications(api, bob))["unread_count"] == 0
    done = await run_chatd("notifications", env=env)
    assert done.stdout.decode().splitlines() == ["no unread notifications"]
    done = await run_chatd("notifications", "--all", env=env)
    assert [line.split("\t")[0] for line in done.stdout.decode().splitlines()] == [
        f" {newest['id']}",
        f" {oldest['id']}",
    ]
