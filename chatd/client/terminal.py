"""The terminal client: `chatd chat` tails a room and sends what is typed; `chatd send`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, TextIO

import trio

from chatd.client.api import ApiError, ChatApi, ChatMessage
from chatd.client.live import (
    Acked,
    Closed,
    Connected,
    Deleted,
    Disconnected,
    Edited,
    MemberChanged,
    Purged,
    Reacted,
    Received,
    RoomChanged,
    SendFailed,
    ServerError,
    open_live_room,
)

MAX_TEXT_CHARS = 4000
ACK_WAIT_S = 10.0
SNIPPET_CHARS = 40  # of a message quoted by an edit, deletion or reaction line
REMEMBERED_TEXTS = 10_000  # messages whose text a Transcript keeps for quoting
READ_MARK_EVERY_S = 1.0
READ_FLUSH_S = 3.0  # at the end, for the last read mark
BOLD, PLAIN = "\x1b[1m", "\x1b[0m"
# Anything a terminal could take as a command rather than text: C0/C1 controls
# (escape sequences) and the bidirectional overrides. Tabs and newlines stay.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    return _UNPRINTABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def bold(text: str) -> str:
    return f"{BOLD}{text}{PLAIN}"


def clock(when: datetime) -> str:
    """A timestamp as the local time of day."""
    return when.astimezone().strftime("%H:%M:%S")


def indented(text: str) -> str:
    """Shown safely; the later lines of a multi-line text indented under the first."""
    return printable(text).replace("\n", "\n    ")


def format_message(message: ChatMessage) -> str:
    """`[14:03:07] user 12: text`, in local time; later lines of the text indented.

    A deleted message shows as `(deleted)`, an edited one ends with `(edited)`,
    and reactions follow as `[👍 2, 🎉 1]`.
    """
    head = f"[{clock(message.created_at)}] user {message.user_id}: "
    if message.deleted:
        return head + "(deleted)"
    text = indented(message.text)
    if message.edited_at is not None:
        text += " (edited)"
    if message.reactions:
        counts = ", ".join(f"{printable(r.emoji)} {r.count}" for r in message.reactions)
        text += f"  [{counts}]"
    return head + text


def check_text(text: str) -> str | None:
    """Why the server would refuse this text, or None."""
    if not text.strip():
        return "a message cannot be empty"
    if len(text) > MAX_TEXT_CHARS:
        return f"a message is at most {MAX_TEXT_CHARS} characters"
    return None


class Transcript:
    """A room's events as lines for the terminal.

    It remembers the text of the messages it has shown, so that a later edit,
    deletion or reaction can say which message it is about: `message 7 ("hi")`.
    Lines that mention `me` are bold when `emphasis` is on (a terminal).
    """

    def __init__(self, me: int, *, emphasis: bool) -> None:
        self.me = me
        self.emphasis = emphasis
        self._texts: dict[int, str] = {}

    def message(self, message: ChatMessage) -> str:
        self._remember(message.id, None if message.deleted else message.text)
        line = format_message(message)
        return bold(line) if self.emphasis and self.me in message.mentions else line

    def edited(self, event: Edited) -> str:
        about = self._about(event.message_id)
        self._remember(event.message_id, event.text)
        return f"[{clock(event.edited_at)}] user {event.user_id} edited {about}: " + indented(
            event.text
        )

    def deleted(self, event: Deleted) -> str:
        about = self._about(event.message_id)
        self._remember(event.message_id, None)
        return f"[{clock(event.deleted_at)}] user {event.user_id} deleted {about}"

    def reacted(self, event: Reacted) -> str:
        when = clock(event.at or datetime.now(UTC))
        emoji, about = printable(event.emoji), self._about(event.message_id)
        if event.added:
            return f"[{when}] user {event.user_id} reacted {emoji} to {about} ({event.count})"
        return f"[{when}] user {event.user_id} took back {emoji} on {about} ({event.count} left)"

    def _about(self, message_id: int) -> str:
        text = self._texts.get(message_id)
        if not text:
            return f"message {message_id}"
        first = text.strip().split("\n", 1)[0]
        if len(first) > SNIPPET_CHARS:
            first = first[: SNIPPET_CHARS - 1] + "…"
        return f'message {message_id} ("{printable(first)}")'

    def _remember(self, message_id: int, text: str | None) -> None:
        self._texts.pop(message_id, None)
        if text is not None:
            self._texts[message_id] = text
            if len(self._texts) > REMEMBERED_TEXTS:
                del self._texts[next(iter(self._texts))]  # the oldest shown


def member_note(event: MemberChanged) -> str:
    who = f"user {event.user_id}"
    if event.change == "role_changed":
        role = {"owner": "the owner", "admin": "an admin", "member": "a member"}
        return f"{who} is now {role.get(event.role or '', printable(str(event.role)))}"
    if event.change == "removed":
        return f"{who} was removed"
    return f"{who} {printable(event.change)}"  # joined, left


def room_note(event: RoomChanged) -> str:
    room = event.room
    name = room.get("name")
    parts = [f"name {printable(name)}" if isinstance(name, str) and name else None]
    parts.append(f"visibility {printable(str(room.get('visibility')))}")
    if room.get("owner_id") is not None:
        parts.append(f"owner user {room.get('owner_id')}")
    return "room changed: " + ", ".join(part for part in parts if part)


async def conversation_label(
    api: ChatApi, room: dict[str, Any], me: int, *, members: list[dict[str, Any]] | None = None
) -> str:
    """`lobby`, or for a DM `DM with bob, carol` (their handles)."""
    if room.get("kind") != "dm":
        return printable(str(room.get("name")))
    if members is None:
        members = await api.members(int(room["id"]))
    others = [m for m in members if m["user_id"] != me]
    names = ", ".join(printable(str(m.get("handle") or f"user {m['user_id']}")) for m in others)
    return f"DM with {names or 'yourself'}"


class ReadMarker:
    """Moves the caller's read watermark to the newest message shown, at most once a
    READ_MARK_EVERY_S, so that `chatd unread` and other clients see it as read.

    Best effort: a refusal (not a member of a public room, say) ends it quietly;
    after a network failure it tries again with the next message.
    """

    def __init__(self, api: ChatApi, room_id: int) -> None:
        self.api = api
        self.room_id = room_id
        self.newest = 0  # shown
        self.marked = 0  # told to the server
        self.refused = False
        self._wanted = trio.Event()
        self._lock = trio.Lock()

    def shown(self, message_id: int) -> None:
        if message_id > self.newest:
            self.newest = message_id
            self._wanted.set()

    async def run(self) -> None:
        while not self.refused:
            await self._wanted.wait()
            self._wanted = trio.Event()
            await self.flush()
            await trio.sleep(READ_MARK_EVERY_S)

    async def flush(self) -> None:
        """Mark read what was shown, unless the server already knows or refused."""
        async with self._lock:
            target = self.newest
            if self.refused or target <= self.marked:
                return
            try:
                await self.api.mark_read(self.room_id, target)
            except ApiError as exc:
                self.refused = 0 < exc.status < 500
                return
            self.marked = max(self.marked, target)


class _Outcome:
    code = 0


async def chat(
    api: ChatApi,
    room_id: int,
    *,
    history: int,
    stdin: TextIO,
    out: TextIO,
    err: TextIO,
    emphasis: bool = False,
) -> int:
    """Print the room's recent history and then what happens in it; send each line typed.

    Messages, edits, deletions and reactions go to `out`; everything else (who
    joined, reconnects, refusals) to `err` as `-- ` notes. What is shown is marked
    read. Ends at end of input (Ctrl-D) once what was typed is acknowledged: 0, or
    1 if the room closes or a message was not confirmed.
    """

    def note(text: str) -> None:
        print(f"-- {text}", file=err, flush=True)

    def show(line: str) -> None:
        print(line, file=out, flush=True)

    me = await api.me()
    room = await api.room(room_id)  # first: its last_message_id is covered by the history
    label = await conversation_label(api, room, me["id"])
    title = label if room.get("kind") == "dm" else f"room {label}"
    recent, _ = await api.history(room_id, limit=max(history, 1))
    transcript = Transcript(me["id"], emphasis=emphasis)
    reads = ReadMarker(api, room_id)
    for message in recent[-history:] if history else []:
        show(transcript.message(message))
    # The newest event the history reflects: later edits and reactions are replayed.
    since = max(int(room.get("last_message_id") or 0), recent[-1].id if recent else 0)
    if recent:
        reads.shown(recent[-1].id)
    outcome = _Outcome()

    async with (
        open_live_room(api, room_id, user_id=me["id"], since=since) as live,
        trio.open_nursery() as nursery,
    ):

        async def type_lines() -> None:
            while True:
                line = await trio.to_thread.run_sync(stdin.readline, abandon_on_cancel=True)
                if not line:
                    break
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                problem = check_text(text)
                if problem:
                    note(f"not sent: {problem}")
                    continue
                await live.send(text)
            # End of input: let what was typed reach the server first.
            with trio.move_on_after(ACK_WAIT_S):
                await live.wait_all_acked()
            if live.pending:
                note(f"{len(live.pending)} message(s) not confirmed by the server")
                outcome.code = 1
            with trio.move_on_after(READ_FLUSH_S):
                await reads.flush()
            nursery.cancel_scope.cancel()

        nursery.start_soon(reads.run)
        connected_before = False
        async for event in live.events:
            if isinstance(event, Received):
                show(transcript.message(event.message))
                reads.shown(event.message.id)
            elif isinstance(event, Edited):
                show(transcript.edited(event))
            elif isinstance(event, Deleted):
                show(transcript.deleted(event))
            elif isinstance(event, Reacted):
                show(transcript.reacted(event))
            elif isinstance(event, MemberChanged):
                note(member_note(event))
            elif isinstance(event, RoomChanged):
                note(room_note(event))
            elif isinstance(event, Purged):  # what is on screen stays: say it is gone
                note(f"an administrator deleted this room's messages up to id {event.up_to}")
            elif isinstance(event, Connected):
                if connected_before:
                    note("reconnected")
                else:
                    note(
                        f"{title} (#{room_id}) as {me['email']}: "
                        "type a line and press Enter to send it; Ctrl-D quits"
                    )
                    nursery.start_soon(type_lines)
                connected_before = True
            elif isinstance(event, Disconnected):
                note(f"disconnected ({event.reason}); retrying in {event.retry_in_s:.1f} s")
            elif isinstance(event, SendFailed):
                note(f"not sent: {event.message} ({event.code})")
            elif isinstance(event, ServerError):
                note(f"server: {event.message} ({event.code})")
            elif isinstance(event, Closed):
                note(f"closed: {event.reason}")
                outcome.code = 1
                break
        nursery.cancel_scope.cancel()
    return outcome.code


async def send_one(
    api: ChatApi, room_id: int, text: str, *, timeout_s: float, out: TextIO, err: TextIO
) -> int:
    """Send one message, wait for its echo (the acknowledgement) and print its id: 0, else 1."""
    me = await api.me()
    await api.room(room_id)  # a missing or private room is a clear REST error, not a retry loop
    with trio.move_on_after(timeout_s):
        async with open_live_room(api, room_id, user_id=me["id"], since=None) as live:
            client_id = await live.send(text)
            async for event in live.events:
                if isinstance(event, Acked) and event.client_id == client_id:
                    print(event.message.id, file=out, flush=True)
                    return 0
                if isinstance(event, SendFailed) and event.client_id == client_id:
                    print(f"chatd: not sent: {event.message} ({event.code})", file=err)
                    return 1
                if isinstance(event, Closed):
                    print(f"chatd: not sent: {event.reason}", file=err)
                    return 1
                if isinstance(event, Disconnected):
                    print(f"chatd: disconnected ({event.reason}); retrying", file=err)
    print(f"chatd: no acknowledgement from the server within {timeout_s:g} s", file=err)
    return 1
