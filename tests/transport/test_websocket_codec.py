"""The client-frame decoder against wsproto's encoder, an independent implementation."""

from __future__ import annotations

import os

import pytest
from wsproto.frame_protocol import FrameProtocol, Opcode

from chatd.closecodes import MESSAGE_TOO_BIG, PROTOCOL_ERROR
from chatd.hub.frames import text_frame
from chatd.transport.websocket.codec import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    ProtocolError,
    close_frame,
    next_frame,
    parse_close,
    unmask,
)

LIMIT = 4 * 1024 * 1024


def client() -> FrameProtocol:
    return FrameProtocol(client=True, extensions=[])


def decode_all(data: bytes, limit: int = LIMIT) -> list[tuple[int, bool, bytes]]:
    frames, at = [], 0
    while (frame := next_frame(data, at, limit)) is not None:
        opcode, fin, payload, at = frame
        frames.append((opcode, fin, payload))
    assert at == len(data), "every byte belongs to a frame"
    return frames


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_masked_frames_of_every_length_encoding_decode(size: int) -> None:
    payload = os.urandom(size)
    wire = bytes(client().send_data(payload, fin=True))
    assert decode_all(wire) == [(BINARY, True, payload)]


def test_a_fragmented_message_with_a_ping_between_decodes_frame_by_frame() -> None:
    sender = client()
    wire = (
        bytes(sender.send_data("héllo ", fin=False))
        + bytes(sender.ping(b"are you there"))
        + bytes(sender.send_data("wörld", fin=True))
    )
    assert decode_all(wire) == [
        (TEXT, False, "héllo ".encode()),
        (PING, True, b"are you there"),
        (CONTINUATION, True, "wörld".encode()),
    ]


def test_a_frame_split_anywhere_waits_for_the_rest() -> None:
    wire = bytes(client().send_data(b"x" * 300, fin=True))
    for cut in range(len(wire)):
        assert next_frame(wire[:cut], 0, LIMIT) is None
    assert next_frame(wire, 0, LIMIT) is not None


def test_close_frames_carry_code_and_reason() -> None:
    wire = bytes(client().close(4404, "room deleted"))
    [(opcode, fin, payload)] = decode_all(wire)
    assert (opcode, fin, parse_close(payload)) == (CLOSE, True, 4404)
    assert parse_close(b"") == 1005
    # Ours: a reason longer than a close frame holds is cut at a character boundary.
    ours = close_frame(1013, "é" * 100)
    assert len(ours) <= 2 + 125
    (ours[4:]).decode()


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (text_frame(b"unmasked"), PROTOCOL_ERROR),  # a server frame: clients must mask
        (bytes([0x81 | 0x40, 0x80, 0, 0, 0, 0]), PROTOCOL_ERROR),  # RSV1 without an extension
        (bytes([0x83, 0x80, 0, 0, 0, 0]), PROTOCOL_ERROR),  # reserved data opcode
        (bytes([0x0B | 0x80, 0x80, 0, 0, 0, 0]), PROTOCOL_ERROR),  # reserved control opcode
        (bytes([0x09, 0x80, 0, 0, 0, 0]), PROTOCOL_ERROR),  # a fragmented ping
        (bytes([0x89, 0xFE, 0, 200]) + b"\0" * 4, PROTOCOL_ERROR),  # a 200-byte ping
    ],
)
def test_protocol_violations_are_refused(wire: bytes, code: int) -> None:
    with pytest.raises(ProtocolError) as refused:
        decode_all(wire)
    assert refused.value.code == code


def test_an_oversized_frame_is_refused_from_its_header_alone() -> None:
    header_only = bytes([0x82, 0xFF]) + (LIMIT + 1).to_bytes(8, "big")
    with pytest.raises(ProtocolError) as refused:
        next_frame(header_only, 0, LIMIT)
    assert refused.value.code == MESSAGE_TOO_BIG


def test_unmask_is_its_own_inverse_for_every_tail_length() -> None:
    mask = os.urandom(4)
    for size in range(0, 13):
        data = os.urandom(size)
        masked = unmask(data, mask)
        assert unmask(masked, mask) == data
        assert masked == bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def test_server_text_frames_read_back_with_wsproto() -> None:
    reader = FrameProtocol(client=True, extensions=[])
    for size in (3, 126, 70_000):
        reader.receive_bytes(text_frame(b"a" * size))
        [frame] = list(reader.received_frames())
        assert (frame.opcode, frame.payload, frame.message_finished) == (
            Opcode.TEXT,
            "a" * size,
            True,
        )
