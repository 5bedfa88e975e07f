"""Small server-side charts and badges: SVG histograms render with no JavaScript and no CDN."""
from __future__ import annotations

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

register = template.Library()

COLOURS = {"easy": "#1f9d55", "medium": "#d97706", "hard": "#c0392b", "unscored": "#9ca3af"}


@register.simple_tag
def histogram(counts: list[int], low: float = 0.0, high: float = 1.0, colour: str = "#2f5bea",
              width: int = 360, height: int = 120, label: str = ""):
    """A bar chart of `counts` over [low, high], with axis ticks and the total."""
    n = len(counts) or 1
    top = max(counts) if counts and max(counts) > 0 else 1
    plot_h, left, bottom = height - 28, 34, height - 18
    bar_w = (width - left - 6) / n
    bars = format_html_join(
        "", '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}–{}: {}</title></rect>',
        ((f"{left + i * bar_w + 1:.1f}", f"{bottom - c / top * plot_h:.1f}", f"{max(bar_w - 2, 1):.1f}",
          f"{c / top * plot_h:.1f}", colour, f"{low + (high - low) * i / n:.2f}",
          f"{low + (high - low) * (i + 1) / n:.2f}", c)
         for i, c in enumerate(counts)))
    ticks = format_html_join(
        "", '<text x="{}" y="{}" font-size="10" text-anchor="middle" fill="#6b7280">{}</text>',
        ((f"{left + (width - left - 6) * f:.1f}", height - 4, f"{low + (high - low) * f:g}")
         for f in (0, 0.25, 0.5, 0.75, 1)))
    return format_html(
        '<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{label}">'
        '<line x1="{left}" y1="{b}" x2="{w}" y2="{b}" stroke="#cbd0d8"/>'
        '<text x="2" y="12" font-size="10" fill="#6b7280">{top}</text>{bars}{ticks}</svg>',
        w=width, h=height, left=left, b=bottom, top=top, bars=bars, ticks=ticks, label=label or "histogram")


@register.simple_tag
def stacked_bar(parts: dict, width: int = 360):
    """One horizontal bar split by bucket, always in the order easy, medium, hard, unscored, then the rest.

    The order is fixed here: a run's summary comes back from jsonb with its keys re-sorted.
    """
    total = sum(parts.values()) or 1
    order = list(COLOURS)
    ordered = sorted(parts.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    segments = format_html_join(
        "", '<div class="seg" style="width:{}%;background:{}" title="{}: {}"></div>',
        ((f"{100 * v / total:.2f}", COLOURS.get(k, "#9ca3af"), k, v) for k, v in ordered if v))
    return format_html('<div class="stacked" style="max-width:{}px">{}</div>', width, segments)


def _number(value) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


@register.filter
def pct(value, digits: int = 0):
    number = _number(value)
    return "–" if number is None else f"{100 * number:.{digits}f}%"


@register.filter
def num(value, digits: int = 2):
    number = _number(value)
    return "–" if number is None else f"{number:.{digits}f}"


@register.simple_tag
def bucket_badge(bucket: str, source: str = ""):
    mark = {"curator": " ✎", "pseudo_label": " ≈"}.get(source, "")
    return format_html('<span class="bucket b-{}">{}{}</span>', bucket, bucket, mark)


@register.simple_tag(takes_context=True)
def url_with(context, **changes):
    """The current URL's query string with some parameters replaced (None removes one)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return mark_safe("?" + params.urlencode()) if params else "?"


PALETTE = ("#2f5bea", "#d97706", "#1f9d55", "#c0392b", "#7c3aed", "#0e7490")


def value_range(low: float, high: float) -> tuple[float, float]:
    """The y range a line chart shows: from 0 when every value is positive and the lowest is near 0,
    and a band around a constant, so a flat line sits mid-chart instead of on an axis labelled 1e-05.

    >>> value_range(1e-05, 1.0), value_range(0.6, 0.9), value_range(0.5, 0.5), value_range(0.0, 0.0)
    ((0.0, 1.0), (0.6, 0.9), (0.0, 1.0), (-1.0, 1.0))
    """
    if low >= 0 and low <= 0.2 * high:
        low = 0.0
    if high > low:
        return low, high
    pad = abs(low) or 1.0
    return (0.0, 2 * low) if low > 0 else (low - pad, low + pad)


@register.simple_tag
def line_chart(series: dict, width: int = 420, height: int = 160, label: str = ""):
    """Lines of (x, y) points, one per series name, with a legend: reward curves and eval comparisons."""
    points = [p for values in series.values() for p in values]
    if not points:
        return format_html('<p class="muted">No points yet.</p>')
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = value_range(min(ys), max(ys))
    left, right, top, bottom = 44, width - 8, 8, height - 22

    def sx(x):
        return left + (x - x0) / (x1 - x0) * (right - left)

    def sy(y):
        return bottom - (y - y0) / (y1 - y0) * (bottom - top)

    lines, legend = [], []
    for i, (name, values) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
        lines.append(format_html('<polyline fill="none" stroke="{}" stroke-width="1.8" points="{}"><title>{}</title></polyline>',
                                 colour, path, name))
        if len(values) == 1:
            x, y = values[0]
            lines.append(format_html('<circle cx="{}" cy="{}" r="3" fill="{}"/>', f"{sx(x):.1f}", f"{sy(y):.1f}", colour))
        legend.append(format_html('<span class="legend"><i style="background:{}"></i>{}</span>', colour, name))
    axis = format_html(
        '<line x1="{l}" y1="{b}" x2="{r}" y2="{b}" stroke="#cbd0d8"/><line x1="{l}" y1="{t}" x2="{l}" y2="{b}" stroke="#cbd0d8"/>'
        '<text x="2" y="{t2}" font-size="10" fill="#6b7280">{ymax}</text><text x="2" y="{b}" font-size="10" fill="#6b7280">{ymin}</text>'
        '<text x="{l}" y="{h}" font-size="10" fill="#6b7280">{xmin}</text><text x="{r}" y="{h}" font-size="10" text-anchor="end" fill="#6b7280">{xmax}</text>',
        l=left, r=right, t=top, b=bottom, t2=top + 8, h=height - 4, ymax=f"{y1:.3g}", ymin=f"{y0:.3g}",
        xmin=f"{x0:g}", xmax=f"{x1:g}")
    return format_html('<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{a}">{axis}{lines}</svg><div>{legend}</div>',
                       w=width, h=height, a=label or "line chart", axis=axis, lines=mark_safe("".join(lines)),
                       legend=mark_safe("".join(legend)))
