"""Real PNG and JPEG files built in code (no image library in the environment)."""

from __future__ import annotations

import random
import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int = 8, height: int = 8, *, seed: int = 0, size: int | None = None) -> bytes:
    """An RGB PNG of random pixels; ``size`` pads it to exactly that many bytes (tEXt)."""
    rng = random.Random(seed)
    raw = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))
    head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                               0, 0, 0))
    body = _chunk(b"IDAT", zlib.compress(raw, 1))
    tail = _chunk(b"IEND", b"")
    if size is not None:
        filler = size - len(head) - len(body) - len(tail) - 12 - len(b"pad\x00")
        assert filler >= 0, "image already larger than the requested size"
        body += _chunk(b"tEXt", b"pad\x00" + b"x" * filler)
    return head + body + tail


def jpeg(width: int = 16, height: int = 16, *, comment: bytes = b"") -> bytes:
    """A baseline greyscale JPEG (flat grey: every block DC 0, EOB) with one-code tables."""

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    blocks = -(-width // 8) * -(-height // 8)
    bits = 2 * blocks  # "0" = DC category 0, "0" = EOB
    scan = bytearray(-(-bits // 8))
    if bits % 8:
        scan[-1] |= (1 << (8 - bits % 8)) - 1  # pad the last byte with 1 bits
    one_code = bytes([1] + [0] * 15) + b"\x00"
    out = b"\xff\xd8"
    out += segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    out += segment(0xDB, b"\x00" + bytes([1] * 64))
    out += segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    out += segment(0xC4, b"\x00" + one_code)
    out += segment(0xC4, b"\x10" + one_code)
    if comment:
        out += segment(0xFE, comment)
    out += segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    return out + bytes(scan) + b"\xff\xd9"
