"""Small charts as inline SVG for the reports: no script, no font, nothing fetched.

`line_chart` draws one or more series of (x, y) points on shared axes, linear or log in y, with
the x axis numeric or named (categories, evenly spaced). Text is escaped; numbers are formatted.
"""

from __future__ import annotations

import math
from html import escape

from markupsafe import Markup

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _nice(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    out, t = [], first
    while t <= hi + step * 1e-9:
        out.append(round(t, 10))
        t += step
    return out


def line_chart(series: list[tuple[str, list[tuple[float, float]]]], *, x_label: str, y_label: str,
               log_y: bool = False, categories: list[str] | None = None, width: int = 760, height: int = 260,
               marks: bool | None = None, title: str = "") -> Markup:
    """`series`: (name, [(x, y), ...]); with `categories`, x is an index into them. Empty: a note."""
    points = [(x, y) for _, pts in series for x, y in pts if x is not None and y is not None]
    if not points:
        return Markup('<p class="none">no data to plot</p>')
    pad_l, pad_r, pad_t, pad_b = 64, 16, 14, 40
    legend_h = 18 if len(series) > 1 else 0
    h = height + legend_h
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x_lo, x_hi = (0, max(len(categories) - 1, 1)) if categories else (min(xs), max(xs))
    if x_hi == x_lo:
        x_hi = x_lo + 1
    if log_y:
        y_lo = 10 ** math.floor(math.log10(max(min(y for y in ys if y > 0) if any(y > 0 for y in ys) else 0.1, 1e-3)))
        y_hi = 10 ** math.ceil(math.log10(max(max(ys), y_lo * 10)))
        fy = lambda y: (math.log10(max(y, y_lo)) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo))  # noqa: E731
        y_ticks, t = [], y_lo
        while t <= y_hi * 1.0001:
            y_ticks.append(t)
            t *= 10
    else:
        y_lo, y_hi = min(0.0, min(ys)), max(ys) if max(ys) > min(0.0, min(ys)) else min(0.0, min(ys)) + 1
        y_ticks = _ticks(y_lo, y_hi)
        y_hi = max(y_hi, y_ticks[-1])
        fy = lambda y: (y - y_lo) / (y_hi - y_lo)  # noqa: E731
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    X = lambda x: pad_l + (x - x_lo) / (x_hi - x_lo) * plot_w  # noqa: E731
    Y = lambda y: pad_t + plot_h - fy(y) * plot_h  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{h}" '
             f'viewBox="0 0 {width} {h}" font-family="sans-serif" font-size="11" role="img">'
             + (f"<title>{escape(title)}</title>" if title else "")]
    for t in y_ticks:
        y = Y(t)
        parts.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{width - pad_r}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{pad_l - 5}" y="{y + 4:.1f}" text-anchor="end">{escape(_nice(t))}</text>')
    if categories:
        for i, c in enumerate(categories):
            parts.append(f'<text x="{X(i):.1f}" y="{pad_t + plot_h + 15}" text-anchor="middle">{escape(c)}</text>')
    else:
        for t in _ticks(x_lo, x_hi):
            parts.append(f'<line x1="{X(t):.1f}" y1="{pad_t + plot_h}" x2="{X(t):.1f}" y2="{pad_t + plot_h + 4}" stroke="#444"/>'
                         f'<text x="{X(t):.1f}" y="{pad_t + plot_h + 15}" text-anchor="middle">{escape(_nice(t))}</text>')
    parts.append(f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - pad_r}" y2="{pad_t + plot_h}" stroke="#444"/>'
                 f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + plot_h}" stroke="#444"/>'
                 f'<text x="{pad_l + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>'
                 f'<text x="12" y="{pad_t + plot_h / 2:.0f}" transform="rotate(-90 12 {pad_t + plot_h / 2:.0f})" '
                 f'text-anchor="middle">{escape(y_label + (" (log)" if log_y else ""))}</text>')
    for i, (name, pts) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        pts = [(x, y) for x, y in pts if x is not None and y is not None]
        if not pts:
            continue
        coords = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts)
        if len(pts) > 1:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{coords}"/>')
        if marks if marks is not None else len(pts) <= 60:
            parts += [f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="2.5" fill="{colour}"><title>{escape(name)}: '
                      f'{escape(_nice(y))}</title></circle>' for x, y in pts]
        if len(series) > 1:
            lx = pad_l + (i % 4) * 170
            ly = height + 4 + (i // 4) * 14
            parts.append(f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{colour}"/>'
                         f'<text x="{lx + 14}" y="{ly + 9}">{escape(name[:26])}</text>')
    if len(series) > 4:  # the legend wraps: make room
        extra = ((len(series) - 1) // 4) * 14
        parts[0] = parts[0].replace(f'height="{h}" viewBox="0 0 {width} {h}"',
                                    f'height="{h + extra}" viewBox="0 0 {width} {h + extra}"')
    parts.append("</svg>")
    return Markup("".join(parts))
