"""Tiny server-side SVG charts for the audit overview: time bars and horizontal bars.

Inline SVG needs no script and no stylesheet from elsewhere, so the review page keeps its strict
Content-Security-Policy (`default-src 'none'`). Colours are presentation attributes, not `style`
attributes. Every bar carries a `<title>` (the browser's tooltip) with its exact value. Every
label is XML-escaped: rule ids and app names come from configuration and policy files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

#: Series colours, colour-blind safe (Okabe-Ito), in the order the series are given.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
_FONT = 'font-family="system-ui,sans-serif" font-size="11" fill="#444"'


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is >= value (at least 1): axis tops."""
    if value <= 1:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 5, 10):
        if m * exp >= value:
            return float(m * exp)
    return float(10 * exp)  # pragma: no cover (the loop always returns)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"


def time_bars(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    chart_id: str,
    title: str,
    width: int = 640,
    height: int = 200,
    every: int | None = None,
) -> str:
    """Stacked bars, one per time bucket; `labels` are the buckets' names (x axis, thinned to every
    `every`-th), `series` the stacked values per bucket, in drawing order."""
    n = max(len(labels), 1)
    left, right, top, bottom = 40, 8, 22, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(vals[i] for vals in series.values()) for i in range(len(labels))]
    ymax = nice_max(max(totals, default=0))
    bw = plot_w / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(chart_id)}" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="14" {_FONT} font-weight="bold">{escape(title)}</text>',
    ]
    for frac in (0, 0.5, 1):  # y axis: 0, half, top
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e2e2e2"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{_num(ymax * frac)}</text>')
    step = every or max(1, math.ceil(n / 8))
    for i, label in enumerate(labels):
        x = left + i * bw
        base = float(top + plot_h)
        for k, (name, vals) in enumerate(series.items()):
            v = vals[i]
            if v <= 0:
                continue
            h = plot_h * v / ymax
            base -= h
            parts.append(
                f'<rect class="bar" x="{x + 1:.1f}" y="{base:.1f}" width="{max(bw - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(label)}: {escape(name)} {_num(v)}</title></rect>'
            )
        if i % step == 0:
            parts.append(
                f'<text x="{x + bw / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle" {_FONT}>'
                f"{escape(label)}</text>"
            )
    lx = left
    for k, name in enumerate(series):  # legend under the axis labels
        parts.append(f'<rect x="{lx}" y="{height - 11}" width="9" height="9" fill="{PALETTE[k % len(PALETTE)]}"/>')
        parts.append(f'<text x="{lx + 12}" y="{height - 3}" {_FONT}>{escape(name)}</text>')
        lx += 24 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def hbars(items: Sequence[tuple[str, float]], *, chart_id: str, title: str, width: int = 310, bar_h: int = 18) -> str:
    """Horizontal bars, largest first as given: a name on the left, its bar and value on the right."""
    top = 22
    longest = max((min(len(name), 28) for name, _ in items), default=0)
    label_w = int(min(max(longest * 6.6 + 10, 90), 200))  # about 6.6 px per character at 11 px
    height = top + max(len(items), 1) * bar_h + 6
    vmax = max((v for _, v in items), default=0) or 1
    plot_w = width - label_w - 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(chart_id)}" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="14" {_FONT} font-weight="bold">{escape(title)}</text>',
    ]
    if not items:
        parts.append(f'<text x="0" y="{top + 12}" {_FONT}>none in this range</text>')
    for i, (name, v) in enumerate(items):
        y = top + i * bar_h
        short = name if len(name) <= 28 else name[:27] + "…"
        w = max(plot_w * v / vmax, 1)
        parts.append(f'<text x="0" y="{y + 12}" {_FONT}>{escape(short)}</text>')
        parts.append(
            f'<rect class="bar" x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{bar_h - 5}" fill="{PALETTE[0]}">'
            f"<title>{escape(name)}: {_num(v)}</title></rect>"
        )
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 12}" {_FONT}>{_num(v)}</text>')
    parts.append("</svg>")
    return "".join(parts)
