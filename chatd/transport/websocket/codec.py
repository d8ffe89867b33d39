"""RFC 6455 framing: client frames in, server control frames out.

Hand-written rather than wsproto's FrameProtocol because of what a chat
server does most: it keeps thousands of idle sockets (wsproto keeps a dozen
objects per connection alive; this keeps none while no frame is half read)
and it sends one message to many sockets (its frames are encoded once in
chatd.hub.frames and shared, which wsproto's per-connection encoder cannot do).
The test suite checks this decoder against wsproto's encoder.
"""

from __future__ import annotations

import struct

from chatd.closecodes import MESSAGE_TOO_BIG, PROTOCOL_ERROR

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DATA_OPCODES = (CONTINUATION, TEXT, BINARY)


class ProtocolError(Exception):
    """The peer broke the protocol: the connection closes with `code`."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code
        self.why = why


Frame = tuple[int, bool, bytes, int]  # opcode, fin, payload, end offset in the buffer


def next_frame(buffer: bytes | bytearray, start: int, limit: int) -> Frame | None:
    """The client frame at buffer[start:], or None until all of it has arrived.

    `limit` bounds a data frame's payload: a larger one is refused as soon as
    its header is read, before anything of it is buffered.
    """
    end = len(buffer)
    if end - start < 2:
        return None
    first, second = buffer[start], buffer[start + 1]
    if first & 0x70:
        raise ProtocolError(PROTOCOL_ERROR, "reserved bits set (no extension was agreed)")
    if not second & 0x80:
        raise ProtocolError(PROTOCOL_ERROR, "client frames must be masked")
    opcode, fin, length, at = first & 0x0F, bool(first & 0x80), second & 0x7F, start + 2
    if length == 126:
        if end - at < 2:
            return None
        length = int.from_bytes(buffer[at : at + 2], "big")
        at += 2
    elif length == 127:
        if end - at < 8:
            return None
        length = int.from_bytes(buffer[at : at + 8], "big")
        at += 8
    if opcode >= CLOSE:
        if opcode not in (CLOSE, PING, PONG):
            raise ProtocolError(PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        if not fin or length > 125:
            raise ProtocolError(PROTOCOL_ERROR, "control frames are short and unfragmented")
    elif opcode not in DATA_OPCODES:
        raise ProtocolError(PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
    elif length > limit:
        raise ProtocolError(MESSAGE_TOO_BIG, "message too big")
    if end - at < 4 + length:
        return None
    mask = bytes(buffer[at : at + 4])
    at += 4
    return opcode, fin, unmask(bytes(buffer[at : at + length]), mask), at + length


def unmask(data: bytes, mask: bytes) -> bytes:
    """XOR with the repeated 4-byte key, as one big-integer operation (no Python loop)."""
    size = len(data)
    if not size:
        return data
    key = (mask * (size // 4 + 1))[:size]
    value = int.from_bytes(data, "little") ^ int.from_bytes(key, "little")
    return value.to_bytes(size, "little")


def control_frame(opcode: int, payload: bytes = b"") -> bytes:
    return bytes((0x80 | opcode, len(payload))) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    # A close frame's payload is at most 125 bytes: the code's 2, and 123 of reason.
    payload = struct.pack("!H", code) + _truncate_utf8(reason.encode(), 123)
    return control_frame(CLOSE, payload)


def parse_close(payload: bytes) -> int:
    """The code of a peer's close frame (1005, "no status", when it sent none)."""
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005


def _truncate_utf8(data: bytes, size: int) -> bytes:
    return data[:size].decode("utf-8", "ignore").encode()
