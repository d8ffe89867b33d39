"""`chatd admin`, for real: create-user on the database, then every other command as a
subprocess against a running `chatd serve`, each printing what it did."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import trio

from chatd.closecodes import DISCONNECTED_BY_ADMIN, ROOM_CLOSED
from tests.admin.test_admin_api import closed_with
from tests.helpers import PASSWORD, Api
from tests.processes import Instance, instance_env, run_instance

ROOT_EMAIL = "root@example.com"
ROOT_PASSWORD = "a long root password"


async def chatd_admin(
    database_url: str, *args: str, stdin: str = "", login: tuple[str, str] | None = None
) -> tuple[int, str, str]:
    """`chatd admin *args`: (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
    env |= {"CHATD_DATABASE_URL": database_url, "CHATD_BCRYPT_ROUNDS": "4"}
    if login is not None:
        env |= {"CHATD_EMAIL": login[0], "CHATD_PASSWORD": login[1]}
    done = await trio.run_process(
        [sys.executable, "-m", "chatd", "admin", *args],
        env=env,
        stdin=stdin.encode(),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_create_user_makes_an_administrator_who_runs_every_command(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'admin.db'}"
    # A new database: create-user migrates it, creates the account, makes it an admin.
    code, out, err = await chatd_admin(
        database_url, "create-user", ROOT_EMAIL, "--password-stdin", stdin=ROOT_PASSWORD + "\n"
    )
    assert (code, out.strip()) == (0, f"created administrator 1 ({ROOT_EMAIL})"), err
    code, _, err = await chatd_admin(database_url, "create-user", "x@example.com")
    assert code == 2 and "--password-stdin" in err  # no terminal to ask on, and no stdin flag

    server: Instance = await nursery.start(run_instance, instance_env(database_url), ())
    api: Api = server.api
    url = api.base_url
    root = (url, ROOT_EMAIL, ROOT_PASSWORD)

    async def admin(*args: str, who: tuple[str, str, str] = root) -> str:
        code, out, err = await chatd_admin(database_url, *args, "--url", who[0], login=who[1:])
        assert code == 0, (args, out, err)
        return out

    ann = await api.signup("ann@example.com")
    rid = (await api.create_room(ann, "general"))["id"]
    async with api.socket(ann, rid) as ws:
        await ws.send_many(2)
        [line] = (await admin("instances")).splitlines()
        assert "1 connection(s), 1 room(s)" in line and "2 received / 2 persisted" in line
        listed = await admin("connections", "--room", str(rid))
        assert f"user {ann.id} room {rid} since " in listed and "from 127.0.0.1:" in listed
        assert await admin("close-room", str(rid)) == f"closed room {rid} (general)\n"
        assert await closed_with(ws) == ROOM_CLOSED
    assert await admin("reopen-room", str(rid)) == f"reopened room {rid} (general)\n"
    purged = await admin("purge-room", str(rid), "--yes")
    assert purged == f"purged room {rid}: 2 message(s) deleted, up to id 2\n"
    assert await api.all_history(ann, rid) == []
    async with api.socket(ann, rid) as ws:
        said = await admin("disconnect", "ann", "--revoke")
        assert said == f"disconnected user {ann.id} everywhere; their sessions are revoked\n"
        assert await closed_with(ws) == DISCONNECTED_BY_ADMIN
    assert await admin("grant", "ann@example.com") == f"user {ann.id} is an administrator\n"
    as_ann = (url, "ann@example.com", PASSWORD)
    assert "connection(s)" in await admin("instances", who=as_ann)  # ann logs in again
    assert await admin("revoke", str(ann.id)) == f"user {ann.id} is not an administrator\n"
    code, _, err = await chatd_admin(database_url, "instances", "--url", url, login=as_ann[1:])
    assert code == 1 and "administrators" in err

    audit = (await admin("audit", "--limit", "20")).splitlines()
    actions = [line.split(": ", 1)[1].split(" ", 1)[0] for line in audit]
    assert actions == [
        "user.revoke_admin",
        "user.grant_admin",
        "user.disconnect",
        "room.purge",
        "room.reopen",
        "room.close",
        "user.create_admin",
    ]
    assert audit[-1].endswith(
        "command line: user.create_admin user 1 via=chatd admin create-user created=True"
    )

    # An existing account is promoted, and no password is asked for.
    code, out, _ = await chatd_admin(database_url, "create-user", "ANN@example.com")
    assert (code, out) == (0, f"made administrator {ann.id} (ann@example.com)\n")


async def test_purge_room_asks_before_deleting(tmp_path: Path) -> None:
    code, _, err = await chatd_admin(f"sqlite:///{tmp_path / 'x.db'}", "purge-room", "1")
    assert code == 2 and "--yes" in err
