"""`chatd search`, `chatd unread`, and finding whom `chatd dm` means."""

from __future__ import annotations

from typing import Any, TextIO

from chatd.client.api import ApiError, ChatApi, Highlighted
from chatd.client.terminal import bold, conversation_label, printable

SEARCH_PAGE_MAX = 50  # the server's most per page


class Refused(Exception):
    """The server answered, but not with what the command needs (no such user)."""


async def find_user(api: ChatApi, who: str) -> int:
    """The id of the user `who` names: an id, `@handle`, a handle, or an email (its
    local part is the handle)."""
    who = who.strip()
    if who.isascii() and who.isdigit():
        return int(who)
    handle = who.removeprefix("@")
    if "@" in handle:
        handle = handle.split("@", 1)[0]
    if not handle:
        raise Refused(f"{who!r} names nobody: give an email, a handle or a user id")
    found = await api.users_by_handle(handle)
    exact = [user for user in found if str(user["handle"]).casefold() == handle.casefold()]
    if len(exact) == 1:
        return int(exact[0]["id"])
    if exact:
        ids = ", ".join(str(user["id"]) for user in exact)
        raise Refused(f"several users have the handle {printable(handle)} (ids {ids}): give the id")
    near = dict.fromkeys(printable(str(user["handle"])) for user in found)
    others = ", ".join(list(near)[:5])
    hint = f"; handles starting so: {others}" if others else ""
    raise Refused(f"no user has the handle {printable(handle)}{hint}")


def marked(highlight: Highlighted, *, emphasis: bool) -> str:
    """The highlighted text on one line, what the query found in bold (a terminal)
    or [brackets] (anything else)."""
    shown = []
    for text, match in highlight.pieces:
        piece = printable(text.replace("\t", " ").replace("\r\n", "\n").replace("\n", " ↵ "))
        if match and piece:
            piece = bold(piece) if emphasis else f"[{piece}]"
        shown.append(piece)
    return "".join(shown)


async def search(
    api: ChatApi,
    query: str,
    *,
    room_id: int | None,
    limit: int,
    out: TextIO,
    err: TextIO,
    emphasis: bool,
) -> int:
    """Print up to `limit` matches, newest first: `room (#id)  message id  author  text`,
    tab-separated, one a line."""
    hits: list[Highlighted] = []
    cursor: str | None = None
    while len(hits) < limit:
        size = min(SEARCH_PAGE_MAX, limit - len(hits))
        page, cursor = await api.search(query, room_id=room_id, limit=size, cursor=cursor)
        hits.extend(page)
        if not page or cursor is None:
            break
    if not hits:
        print(f"-- no message matches {printable(query)}", file=err, flush=True)
        return 0
    me = int((await api.me())["id"])
    places: dict[int, tuple[str, dict[int, str]]] = {}
    for hit in hits:
        room = hit.message.room_id
        if room not in places:
            places[room] = await _place(api, room, me)
        label, handles = places[room]
        author = handles.get(hit.message.user_id) or f"user {hit.message.user_id}"
        line = f"{label} (#{room})\t{hit.message.id}\t{author}\t{marked(hit, emphasis=emphasis)}"
        print(line, file=out, flush=True)
    if cursor is not None:
        print(f"-- more matches: --limit {limit * 2} shows more", file=err, flush=True)
    return 0


async def _place(api: ChatApi, room_id: int, me: int) -> tuple[str, dict[int, str]]:
    """A room's label and its members' handles; `room N` if it cannot be read now."""
    try:
        room = await api.room(room_id)
        members = await api.members(room_id)
    except ApiError as exc:
        if exc.status in (403, 404):
            return f"room {room_id}", {}
        raise
    handles = {int(m["user_id"]): printable(str(m["handle"])) for m in members}
    return await conversation_label(api, room, me, members=members), handles


async def unread(api: ChatApi, *, out: TextIO) -> int:
    """`id  N unread  M mentions  name` for each room or DM of yours with something
    unread; nothing when all is read."""
    me = int((await api.me())["id"])
    for room in await api.rooms(joined=True):
        count = int(room.get("unread") or 0)
        if not count:
            continue
        mentions = int(room.get("mentions") or 0)
        label = await conversation_label(api, room, me)
        plural = "" if mentions == 1 else "s"
        line = f"{room['id']}\t{count} unread\t{mentions} mention{plural}\t{label}"
        print(line, file=out, flush=True)
    return 0


def room_line(room: dict[str, Any]) -> str:
    return f"{room['id']}\t{room['visibility']}\t{printable(str(room['name']))}"
