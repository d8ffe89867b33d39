"""The terminal client: `chatd chat` tails a room and sends what is typed; `chatd send`."""

from __future__ import annotations

import re
from typing import TextIO

import trio

from chatd.client.api import ChatApi, ChatMessage
from chatd.client.live import (
    Acked,
    Closed,
    Connected,
    Disconnected,
    Received,
    SendFailed,
    ServerError,
    open_live_room,
)

MAX_TEXT_CHARS = 4000
ACK_WAIT_S = 10.0
# Anything a terminal could take as a command rather than text: C0/C1 controls
# (escape sequences) and the bidirectional overrides. Tabs and newlines stay.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    return _UNPRINTABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def format_message(message: ChatMessage) -> str:
    """`[14:03:07] user 12: text`, in local time; later lines of the text indented."""
    when = message.created_at.astimezone().strftime("%H:%M:%S")
    text = printable(message.text).replace("\n", "\n    ")
    return f"[{when}] user {message.user_id}: {text}"


def check_text(text: str) -> str | None:
    """Why the server would refuse this text, or None."""
    if not text.strip():
        return "a message cannot be empty"
    if len(text) > MAX_TEXT_CHARS:
        return f"a message is at most {MAX_TEXT_CHARS} characters"
    return None


class _Outcome:
    code = 0


async def chat(
    api: ChatApi, room_id: int, *, history: int, stdin: TextIO, out: TextIO, err: TextIO
) -> int:
    """Print the room's recent history and then its live messages; send each line typed.

    Ends at end of input (Ctrl-D) once what was typed is acknowledged: 0, or
    1 if the room closes or a message was not confirmed.
    """

    def note(text: str) -> None:
        print(f"-- {text}", file=err, flush=True)

    me = await api.me()
    room = await api.room(room_id)
    recent, _ = await api.history(room_id, limit=max(history, 1))
    for message in recent[-history:] if history else []:
        print(format_message(message), file=out, flush=True)
    since = recent[-1].id if recent else 0
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
            nursery.cancel_scope.cancel()

        connected_before = False
        async for event in live.events:
            if isinstance(event, Received):
                print(format_message(event.message), file=out, flush=True)
            elif isinstance(event, Connected):
                if connected_before:
                    note("reconnected")
                else:
                    note(
                        f"room {printable(room['name'])} (#{room_id}) as {me['email']}: "
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
