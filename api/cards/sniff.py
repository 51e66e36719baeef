"""What an uploaded card image is, decided by its bytes (never by the header alone).

A structural check, not a magic-number peek: PNG chunks with their CRCs, IHDR
first and IEND last; JPEG marker segments up to the scan with a sane SOF. The
declared ``Content-Type`` may only agree or stay silent; the body is read in
chunks and refused the moment it passes the cap (413, never buffered beyond).
"""

import struct
import zlib

from fastapi import Request

from api.core.problems import Problem

MAX_IMAGE_BYTES = 5 * 1024 * 1024
PNG = "image/png"
JPEG = "image/jpeg"
# Declared types we accept as "the client says it is an image"; the bytes decide which.
DECLARED = {PNG: PNG, JPEG: JPEG, "image/jpg": JPEG, "image/pjpeg": JPEG}
UNDECLARED = {"", "application/octet-stream"}

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOR_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _is_png(data: bytes) -> bool:
    """Signature, IHDR first and sane, every chunk's CRC right, IDAT present, IEND last."""
    if not data.startswith(PNG_SIGNATURE):
        return False
    pos, first, seen_idat = len(PNG_SIGNATURE), True, False
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > len(data) or not kind.isalpha():
            return False
        if zlib.crc32(data[pos + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            return False
        if first:
            if kind != b"IHDR" or length != 13:
                return False
            width, height, depth, color = struct.unpack(">IIBB", data[pos + 8 : pos + 18])
            if not (width and height) or depth not in PNG_COLOR_DEPTHS.get(color, set()):
                return False
            first = False
        elif kind == b"IDAT":
            seen_idat = True
        elif kind == b"IEND":
            return seen_idat and end == len(data)
        pos = end
    return False


def _is_jpeg(data: bytes) -> bool:
    """SOI, well-formed marker segments up to SOS with a sane SOF before it, EOI at the end."""
    if len(data) < 4 or data[:3] != b"\xff\xd8\xff":
        return False
    pos, seen_sof = 2, False
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers
            pos += 2
            continue
        if marker in (0xD8, 0xD9):  # a second SOI or an EOI before any scan
            return False
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            return False
        if marker in JPEG_SOF:
            if length < 8:
                return False
            height, width, components = struct.unpack(">HHB", data[pos + 5 : pos + 10])
            if not (height and width) or not 1 <= components <= 4:
                return False
            seen_sof = True
        if marker == 0xDA:  # start of scan: the entropy-coded data follows until EOI
            end = len(data)
            while end > pos and data[end - 1] == 0:  # some writers pad with NULs
                end -= 1
            return seen_sof and data[end - 2 : end] == b"\xff\xd9"
        pos += 2 + length
    return False


def sniff_image(data: bytes) -> str | None:
    """``image/png``, ``image/jpeg`` or None, from the bytes alone."""
    if _is_png(data):
        return PNG
    if _is_jpeg(data):
        return JPEG
    return None


def declared_type(content_type: str | None) -> str | None:
    """The header's claim: a supported type, None for "not said", else a 415."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in UNDECLARED:
        return None
    if media in DECLARED:
        return DECLARED[media]
    raise unsupported(f"{media or 'this type'} is not accepted; send image/png or image/jpeg")


def unsupported(detail: str) -> Problem:
    return Problem(415, "unsupported_media_type", detail)


def too_large() -> Problem:
    return Problem(413, "payload_too_large", f"images are at most {MAX_IMAGE_BYTES} bytes")


async def read_capped(request: Request, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit``: never buffered beyond.

    A declared ``Content-Length`` above the limit is refused before reading anything.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large()
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise too_large()
        body += chunk
    return bytes(body)
