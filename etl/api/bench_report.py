"""The bench's self-contained HTML report: latency over time and the percentile spectrum, as inline SVG
(no script, no CDN: it opens from a file anywhere)."""

from __future__ import annotations

import html
import math

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
W, H, PAD = 860, 320, 56


def _log_y(ms: float, top: float) -> float:
    """Latency on a log scale from 0.1 ms to `top` ms, as a y coordinate."""
    lo, hi = math.log10(0.1), math.log10(max(top, 1.0))
    v = (math.log10(max(ms, 0.1)) - lo) / (hi - lo or 1)
    return H - PAD - v * (H - 2 * PAD)


def _axes(x_label: str, top: float) -> list[str]:
    parts = [f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#444"/>',
             f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#444"/>',
             f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">{html.escape(x_label)}</text>',
             f'<text x="14" y="{H / 2}" transform="rotate(-90 14 {H / 2})" text-anchor="middle">latency (ms, log)</text>']
    tick = 0.1
    while tick <= top * 1.0001:
        y = _log_y(tick, top)
        parts.append(f'<line x1="{PAD - 4}" y1="{y:.1f}" x2="{W - PAD}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{PAD - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{tick:g}</text>')
        tick *= 10
    return parts


def latency_over_time(series: list, names: list[str], duration: float) -> str:
    top = max([p[1] for p in series] + [1.0])
    top = 10 ** math.ceil(math.log10(top))
    parts = _axes("due time of the request (s from the start)", top)
    span = max(duration, max([p[0] for p in series] + [1e-9]))
    for offset, ms, e, status in series:
        x = PAD + offset / span * (W - 2 * PAD)
        colour = "#000" if status == 0 or status >= 400 else COLOURS[e % len(COLOURS)]
        parts.append(f'<circle cx="{x:.1f}" cy="{_log_y(ms, top):.1f}" r="2" fill="{colour}"/>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">{"".join(parts)}</svg>'


def percentile_spectrum(series: list, names: list[str]) -> str:
    """HDR-style: x is 1/(1-p) on a log scale (50 %, 90 %, 99 %, 99.9 % equally spaced)."""
    by: dict[int, list[float]] = {}
    for _, ms, e, _ in series:
        by.setdefault(e, []).append(ms)
    top = 10 ** math.ceil(math.log10(max([p[1] for p in series] + [1.0])))
    parts = _axes("percentile", top)
    x_of = lambda p: PAD + math.log10(1 / (1 - p)) / 4 * (W - 2 * PAD)  # noqa: E731 - up to 99.99 %
    for p in (0.0, 0.5, 0.9, 0.99, 0.999, 0.9999):
        x = x_of(p)
        parts.append(f'<text x="{x:.1f}" y="{H - PAD + 16}" text-anchor="middle" font-size="11">{p * 100:g}%</text>')
    for e, values in sorted(by.items()):
        values.sort()
        n = len(values)
        pts = []
        for i, v in enumerate(values):
            p = min(i / n, 0.9999)
            pts.append(f"{x_of(p):.1f},{_log_y(v, top):.1f}")
        parts.append(f'<polyline fill="none" stroke="{COLOURS[e % len(COLOURS)]}" stroke-width="1.5" points="{" ".join(pts)}"/>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">{"".join(parts)}</svg>'


def render_html(result, names: list[str]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(e.endpoint)}</td><td>{e.requests}</td><td>{e.errors}</td>"
        + "".join(f"<td>{v:.1f}</td>" for v in (e.p50_ms, e.p90_ms, e.p95_ms, e.p99_ms, e.p999_ms, e.max_ms)) + "</tr>"
        for e in (*result.endpoints, result.overall))
    legend = " ".join(f'<span style="color:{COLOURS[i % len(COLOURS)]}">&#9679; {html.escape(n)}</span>'
                      for i, n in enumerate(names))
    verdict = ("<p style='color:green'>within every threshold</p>" if result.ok else
               "".join(f"<p style='color:#b00'>BREACH {html.escape(b)}</p>" for b in result.breaches))
    chunks = ", ".join(f"{s:.3f}" for s in result.chunk_seconds) or "none"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>etl bench {html.escape(result.base_url)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}</style>
</head><body><h1>etl bench: {html.escape(result.base_url)}</h1>{verdict}
<p>Open model: {result.target_rps:g} requests/s due, {result.achieved_rps:.1f}/s sent, {result.throughput_rps:.1f}/s answered,
over {result.duration_s:.1f} s. Latency is measured from each request's due time (no coordinated omission).
Errors: {result.error_rate:.2%} {html.escape(str(result.error_classes))}. Bulk insert, seconds per chunk of {result.chunk_size}:
{chunks}. Bench peak memory {result.peak_memory_mb:.1f} MB.</p>
<table><tr><th>endpoint</th><th>n</th><th>errors</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max (ms)</th></tr>{rows}</table>
<p>{legend} <span>&#9679; black: failed</span></p>
<h2>Latency over time</h2>{latency_over_time(result.series, names, result.duration_s)}
<h2>Percentile spectrum</h2>{percentile_spectrum(result.series, names)}
</body></html>"""
