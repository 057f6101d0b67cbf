"""SVG building blocks for the evaluation report: escaping, number format, scales, axes, legend."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

COLOURS = {"normal": "#3b75af", "anomaly": "#e07b39", "baseline": "#8c8c8c", "threshold": "#c0392b"}
SVG_NS = "http://www.w3.org/2000/svg"


def esc(value) -> str:
    """HTML/XML-escape a value for text and attribute content (quotes too)."""
    return html.escape(str(value), quote=True)


def fmt(x) -> str:
    """A number for people: 4 significant digits, '-' for missing, 'nan' for NaN."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, (float, np.floating)):
        return "nan" if math.isnan(x) else f"{float(x):.4g}"
    return str(x)


def _num(x: float) -> str:
    """A coordinate for SVG: finite, short."""
    if not math.isfinite(x):
        raise ValueError(f"non-finite SVG coordinate {x}")
    return f"{x:.2f}".rstrip("0").rstrip(".") or "0"


@dataclass(frozen=True)
class Scale:
    """Maps data values in ``[lo, hi]`` to pixels in ``[px_lo, px_hi]`` (linear or log10)."""

    lo: float
    hi: float
    px_lo: float
    px_hi: float
    log: bool = False

    def _t(self, v: float) -> float:
        if self.log:
            a, b = math.log10(self.lo), math.log10(self.hi)
            v = math.log10(max(v, self.lo))
        else:
            a, b = self.lo, self.hi
        return (v - a) / (b - a) if b > a else 0.5

    def __call__(self, v: float) -> float:
        return self.px_lo + self._t(float(v)) * (self.px_hi - self.px_lo)

    def ticks(self, target: int = 5) -> list[float]:
        if self.log:
            first, last = math.ceil(math.log10(self.lo)), math.floor(math.log10(self.hi))
            powers = [10.0**e for e in range(first, last + 1)]
            if len(powers) < 4:  # few decades: 1-2-5 ticks so the axis stays readable
                powers = [
                    m * 10.0**e
                    for e in range(first - 1, last + 1)
                    for m in (1, 2, 5)
                    if self.lo <= m * 10.0**e <= self.hi
                ]
            if len(powers) > 2 * target:
                step = math.ceil(len(powers) / target)
                powers = powers[::step]
            return powers or [self.lo, self.hi]
        span = self.hi - self.lo
        if span <= 0:
            return [self.lo]
        raw = span / target
        mag = 10.0 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
        start = math.ceil(self.lo / step) * step
        return [
            round(start + i * step, 12)
            for i in range(int((self.hi - start) / step + 1e-9) + 1)
            if start + i * step <= self.hi + 1e-12
        ]


def _svg_open(width: int, height: int, label: str) -> list[str]:
    return [
        f'<svg xmlns="{SVG_NS}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{esc(label)}" font-family="sans-serif" '
        'font-size="12">',
        f"<title>{esc(label)}</title>",
    ]


def _frame(x: float, y: float, w: float, h: float) -> str:
    return (
        f'<rect class="frame" x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" '
        'fill="none" stroke="#bbb"/>'  # light, so a curve along the edge stays visible
    )


def _x_axis(scale: Scale, y: float, label: str) -> list[str]:
    out = []
    for t in scale.ticks():
        px = scale(t)
        out.append(
            f'<line x1="{_num(px)}" x2="{_num(px)}" y1="{_num(y)}" y2="{_num(y + 4)}" '
            'stroke="#444"/>'
        )
        out.append(
            f'<text x="{_num(px)}" y="{_num(y + 16)}" text-anchor="middle">{esc(fmt(t))}</text>'
        )
    out.append(
        f'<text x="{_num((scale.px_lo + scale.px_hi) / 2)}" y="{_num(y + 32)}" '
        f'text-anchor="middle">{esc(label)}</text>'
    )
    return out


def _y_axis(scale: Scale, x: float, label: str, mid_y: float, percent: bool = False) -> list[str]:
    out = []
    for t in scale.ticks():
        py = scale(t)
        text = f"{fmt(t * 100)}%" if percent else fmt(t)
        out.append(
            f'<line x1="{_num(x - 4)}" x2="{_num(x)}" y1="{_num(py)}" y2="{_num(py)}" '
            'stroke="#444"/>'
        )
        out.append(
            f'<text x="{_num(x - 6)}" y="{_num(py + 4)}" text-anchor="end">{esc(text)}</text>'
        )
    out.append(
        f'<text transform="translate(14 {_num(mid_y)}) rotate(-90)" text-anchor="middle">'
        f"{esc(label)}</text>"
    )
    return out


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    """One row of swatches above the plot, where it cannot hide data."""
    out = []
    for colour, text in items:
        out.append(
            f'<rect x="{_num(x)}" y="{_num(y - 9)}" width="10" height="10" fill="{colour}"/>'
        )
        out.append(f'<text x="{_num(x + 14)}" y="{_num(y)}">{esc(text)}</text>')
        x += 14 + 7 * len(text) + 16  # ~7 px per character at 12 px
    return out
