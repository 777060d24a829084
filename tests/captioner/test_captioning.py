"""The deterministic captioner and the standard-library image code it stands on."""

from __future__ import annotations

import struct
import zlib

import pytest
from maintenance_demo.captioner.captioning import analyse, generate_caption
from maintenance_demo.captioner.imaging import (
    PNG_SIGNATURE,
    UnsupportedImage,
    decode_png,
    encode_png,
    paint_png,
    probe,
)


def _sea(x: int, y: int) -> tuple[int, int, int]:
    return (40, 80, 200) if y < 30 else (242, 242, 242)


def test_caption_is_derived_from_size_and_colours_and_is_deterministic() -> None:
    """Same bytes, same caption; the dominant colours and the orientation are named."""
    png = paint_png(90, 40, _sea)
    first = generate_caption(png, "instagram")
    assert first == generate_caption(png, "instagram")
    assert first.startswith("A high-contrast landscape shot washed in blue, with touches of white.")
    assert "#blue #white #landscape" in first
    assert (
        generate_caption(png, "x", "concise")
        == "A high-contrast landscape shot washed in blue. #blue"
    )
    dark = paint_png(20, 40, lambda x, y: (10, 10, 10))
    assert generate_caption(dark, "pinterest").startswith("A moody, muted portrait shot")


def test_png_decode_handles_every_filter_and_reencode_round_trips() -> None:
    """Rows filtered Sub/Up/Average/Paeth decode to the painted pixels; encode_png keeps them."""
    pixels = decode_png(paint_png(7, 5, lambda x, y: (x * 30, y * 40, (x + y) * 10)))
    assert pixels is not None
    rows = pixels.rows
    raw = bytearray()
    previous = bytes(len(rows[0]))
    for kind, row in zip((1, 2, 3, 4, 0), rows, strict=True):
        raw.append(kind)
        out = bytearray(len(row))
        for i in range(len(row)):
            a = row[i - 3] if i >= 3 else 0
            b = previous[i]
            c = previous[i - 3] if i >= 3 else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            paeth = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            predictor = {0: 0, 1: a, 2: b, 3: (a + b) >> 1, 4: paeth}[kind]
            out[i] = (row[i] - predictor) & 0xFF
        raw += out
        previous = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    filtered = (
        PNG_SIGNATURE
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 7, 5, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )
    assert decode_png(filtered) == pixels
    assert decode_png(encode_png(pixels)) == pixels


def test_probe_reads_jpeg_and_gif_sizes_and_refuses_the_rest() -> None:
    """Non-PNG images are described by format and size only."""
    jpeg = (
        b"\xff\xd8\xff\xe0"
        + struct.pack(">H", 4)
        + b"JF"
        + b"\xff\xc0"
        + struct.pack(">HBHH", 11, 8, 300, 400)
    )
    assert (probe(jpeg).format, probe(jpeg).width, probe(jpeg).height) == ("jpeg", 400, 300)
    gif = b"GIF89a" + struct.pack("<HH", 640, 480)
    assert analyse(gif).to_dict()["orientation"] == "landscape"
    assert analyse(gif).colours is None
    with pytest.raises(UnsupportedImage):
        probe(b"hello world")
