"""Images with the standard library only: probe PNG/JPEG/GIF, decode and re-encode PNG pixels.

Colour statistics need decoded pixels, which the standard library can give
for 8-bit non-interlaced PNG; other formats get their size and format only.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Pixels decoded at most; larger images are described by size only.
MAX_DECODED_PIXELS = 4_000_000
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


class UnsupportedImage(ValueError):
    """The bytes are not an image this app understands."""


@dataclass(frozen=True)
class ImageInfo:
    """What the header says."""

    format: str  # png | jpeg | gif
    width: int
    height: int

    @property
    def content_type(self) -> str:
        """The MIME type of the format."""
        return f"image/{self.format}"


@dataclass(frozen=True)
class Pixels:
    """Decoded RGB pixels, row by row (3 bytes per pixel)."""

    width: int
    height: int
    rows: list[bytes]

    def iter_rgb(self, step: int = 1) -> Iterator[tuple[int, int, int]]:
        """Every ``step``-th pixel of every ``step``-th row."""
        for row in self.rows[::step]:
            for x in range(0, len(row), 3 * step):
                yield row[x], row[x + 1], row[x + 2]


def probe(data: bytes) -> ImageInfo:
    """Format and size from the header; ``UnsupportedImage`` otherwise."""
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return _checked(ImageInfo("png", width, height))
    if data[:6] in (b"GIF87a", b"GIF89a"):
        width, height = struct.unpack("<HH", data[6:10])
        return _checked(ImageInfo("gif", width, height))
    if data.startswith(b"\xff\xd8"):
        return _checked(_probe_jpeg(data))
    raise UnsupportedImage("not a PNG, JPEG or GIF image")


def _checked(info: ImageInfo) -> ImageInfo:
    if info.width <= 0 or info.height <= 0:
        raise UnsupportedImage(f"{info.format} image has no size")
    return info


def _probe_jpeg(data: bytes) -> ImageInfo:
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            raise UnsupportedImage("corrupt JPEG")
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return ImageInfo("jpeg", width, height)
        pos += 2 + length
    raise UnsupportedImage("JPEG without a frame header")


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        yield kind, data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IEND":
            return


def decode_png(data: bytes) -> Pixels | None:
    """RGB pixels of an 8-bit non-interlaced PNG; None for anything else (or too large)."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    header = palette = None
    idat = bytearray()
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IDAT":
            idat += body
    if header is None:
        return None
    width, height, depth, colour, _comp, _filter, interlace = header
    if depth != 8 or interlace or colour not in _CHANNELS or width * height > MAX_DECODED_PIXELS:
        return None
    if colour == 3 and palette is None:
        return None
    channels = _CHANNELS[colour]
    try:
        raw = zlib.decompress(bytes(idat))
    except zlib.error:
        return None
    stride = width * channels
    if len(raw) < (stride + 1) * height:
        return None
    rows = _unfilter(raw, width, height, channels)
    return Pixels(width, height, [_to_rgb(r, colour, palette) for r in rows])


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> list[bytes]:
    stride = width * bpp
    previous = bytearray(stride)
    rows: list[bytes] = []
    pos = 0
    for _ in range(height):
        kind = raw[pos]
        line = bytearray(raw[pos + 1 : pos + 1 + stride])
        pos += stride + 1
        _UNFILTERS.get(kind, _none)(line, previous, bpp)
        rows.append(bytes(line))
        previous = line
    return rows


def _none(line: bytearray, prev: bytearray, bpp: int) -> None:
    return None


def _sub(line: bytearray, prev: bytearray, bpp: int) -> None:
    for i in range(bpp, len(line)):
        line[i] = (line[i] + line[i - bpp]) & 0xFF


def _up(line: bytearray, prev: bytearray, bpp: int) -> None:
    for i in range(len(line)):
        line[i] = (line[i] + prev[i]) & 0xFF


def _average(line: bytearray, prev: bytearray, bpp: int) -> None:
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF


def _paeth(line: bytearray, prev: bytearray, bpp: int) -> None:
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        line[i] = (line[i] + predictor) & 0xFF


_UNFILTERS: dict[int, Callable[[bytearray, bytearray, int], None]] = {
    0: _none,
    1: _sub,
    2: _up,
    3: _average,
    4: _paeth,
}


def _to_rgb(row: bytes, colour: int, palette: bytes | None) -> bytes:
    if colour == 2:
        return row
    if colour == 6:
        out = bytearray(len(row) // 4 * 3)
        out[0::3], out[1::3], out[2::3] = row[0::4], row[1::4], row[2::4]
        return bytes(out)
    if colour == 3:
        assert palette is not None
        return b"".join(palette[3 * i : 3 * i + 3] for i in row)
    grey = row if colour == 0 else row[0::2]
    out = bytearray(len(grey) * 3)
    out[0::3] = out[1::3] = out[2::3] = grey
    return bytes(out)


def encode_png(pixels: Pixels, level: int = 9) -> bytes:
    """An RGB PNG of ``pixels`` (filter chosen per row, zlib ``level``), no ancillary chunks."""
    raw = bytearray()
    previous = bytes(pixels.width * 3)
    for row in pixels.rows:
        up = bytes((row[i] - previous[i]) & 0xFF for i in range(len(row)))
        # The classic heuristic: the filter whose output has the smallest absolute sum.
        if _cost(up) < _cost(row):
            raw += b"\x02" + up
        else:
            raw += b"\x00" + row
        previous = row
    header = struct.pack(">IIBBBBB", pixels.width, pixels.height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(raw), level))
        + _chunk(b"IEND", b"")
    )


def _cost(line: bytes) -> int:
    return sum(b if b < 128 else 256 - b for b in line)


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def paint_png(
    width: int, height: int, colour_at: Callable[[int, int], tuple[int, int, int]], level: int = 1
) -> bytes:
    """A PNG whose pixel (x, y) is ``colour_at(x, y)`` (demo and test images)."""
    rows = [bytes(c for x in range(width) for c in colour_at(x, y)) for y in range(height)]
    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"tEXt", b"Software\x00captioner demo")
        + _chunk(b"IDAT", zlib.compress(raw, level))
        + _chunk(b"IEND", b"")
    )
