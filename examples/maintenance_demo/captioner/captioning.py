"""The deterministic captioner: a caption from an image's size and colour statistics.

No model, no network: the same bytes, platform and style always give the same
caption, which keeps the app's side effects countable in tests and demos.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .imaging import Pixels, decode_png, probe

#: Reference colours a pixel is named after (nearest in RGB).
NAMED_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("black", (18, 18, 18)),
    ("white", (242, 242, 242)),
    ("grey", (128, 128, 128)),
    ("red", (200, 35, 35)),
    ("orange", (240, 140, 30)),
    ("yellow", (240, 220, 50)),
    ("green", (50, 160, 70)),
    ("teal", (30, 150, 150)),
    ("blue", (40, 80, 200)),
    ("purple", (130, 55, 170)),
    ("pink", (240, 140, 185)),
    ("brown", (120, 75, 40)),
)
PLATFORMS = ("instagram", "x", "mastodon", "pinterest")
STYLES = ("friendly", "concise", "descriptive")
#: Pixels sampled at most for the statistics.
MAX_SAMPLES = 20_000


@dataclass(frozen=True)
class ColourStats:
    """Colour statistics of a decoded image (all ratios in 0..1)."""

    mean: tuple[int, int, int]
    brightness: float
    contrast: float
    saturation: float
    palette: tuple[tuple[str, float], ...]  # named colour, share; largest first

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "mean": list(self.mean),
            "brightness": round(self.brightness, 3),
            "contrast": round(self.contrast, 3),
            "saturation": round(self.saturation, 3),
            "palette": [[name, round(share, 3)] for name, share in self.palette],
        }


@dataclass(frozen=True)
class Analysis:
    """What the captioner knows about an image."""

    format: str
    width: int
    height: int
    colours: ColourStats | None

    @property
    def orientation(self) -> str:
        """landscape, portrait or square."""
        ratio = self.width / self.height
        return "square" if 0.9 <= ratio <= 1.1 else ("landscape" if ratio > 1 else "portrait")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "orientation": self.orientation,
            "colours": self.colours.to_dict() if self.colours else None,
        }


def colour_stats(pixels: Pixels) -> ColourStats:
    """Mean colour, brightness, contrast, saturation and the named-colour palette."""
    step = max(1, math.isqrt(pixels.width * pixels.height // MAX_SAMPLES))
    names: Counter[str] = Counter()
    total = [0, 0, 0]
    luma_sum = luma_sq = sat_sum = 0.0
    n = 0
    for r, g, b in pixels.iter_rgb(step):
        n += 1
        total[0] += r
        total[1] += g
        total[2] += b
        luma = (0.299 * r + 0.587 * g + 0.114 * b) / 255
        luma_sum += luma
        luma_sq += luma * luma
        high, low = max(r, g, b), min(r, g, b)
        sat_sum += (high - low) / high if high else 0.0
        names[_nearest(r, g, b)] += 1
    n = max(n, 1)
    mean_luma = luma_sum / n
    variance = max(0.0, luma_sq / n - mean_luma * mean_luma)
    palette = tuple(
        (name, count / n) for name, count in sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return ColourStats(
        mean=(total[0] // n, total[1] // n, total[2] // n),
        brightness=mean_luma,
        contrast=min(1.0, 2 * math.sqrt(variance)),
        saturation=sat_sum / n,
        palette=palette[:4],
    )


def _nearest(r: int, g: int, b: int) -> str:
    best, best_distance = "grey", 1 << 30
    for name, (cr, cg, cb) in NAMED_COLOURS:
        distance = (r - cr) ** 2 + (g - cg) ** 2 + (b - cb) ** 2
        if distance < best_distance:
            best, best_distance = name, distance
    return best


def analyse(data: bytes) -> Analysis:
    """Size, format and (for PNG) colour statistics of ``data``."""
    info = probe(data)
    pixels = decode_png(data) if info.format == "png" else None
    return Analysis(info.format, info.width, info.height, colour_stats(pixels) if pixels else None)


def describe(analysis: Analysis, style: str = "friendly") -> str:
    """One or two sentences describing the image."""
    colours = analysis.colours
    shape = f"{analysis.orientation} {'shot' if analysis.orientation != 'square' else 'frame'}"
    if colours is None:
        text = f"A {shape} in {analysis.format.upper()} format."
    else:
        mood = _mood(colours)
        main = colours.palette[0][0]
        text = f"A {mood + ' ' if mood else ''}{shape} washed in {main}"
        accents = [name for name, share in colours.palette[1:3] if share >= 0.1]
        text += f", with touches of {' and '.join(accents)}." if accents else "."
    if style == "concise":
        return text.split(",")[0].rstrip(".") + "."
    if style == "descriptive":
        text += f" {analysis.width}\u00d7{analysis.height} pixels."
    return text


def _mood(colours: ColourStats) -> str:
    words = []
    if colours.brightness < 0.25:
        words.append("moody")
    elif colours.brightness > 0.7:
        words.append("bright")
    if colours.saturation < 0.15:
        words.append("muted")
    elif colours.contrast > 0.5:
        words.append("high-contrast")
    return ", ".join(words)


def generate_caption(data: bytes, platform: str = "instagram", style: str = "friendly") -> str:
    """The caption of ``data`` for ``platform`` in ``style`` (deterministic)."""
    analysis = analyse(data)
    text = describe(analysis, style)
    tags = [analysis.orientation]
    if analysis.colours is not None:
        tags = [name for name, _ in analysis.colours.palette[:2]] + tags
    if platform == "x":
        return (text + f" #{tags[0]}")[:280]
    if platform == "mastodon":
        return text + "\n\n" + " ".join(f"#{t.capitalize()}" for t in tags)
    if platform == "pinterest":
        return text + f" Save it for {' and '.join(tags[:2])} inspiration."
    return text + "\n\n" + " ".join(f"#{t}" for t in tags)
