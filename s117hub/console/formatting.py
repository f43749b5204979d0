"""How values look on the console's pages: dates, ages, JSON, HL7 segments, SVG charts.

Charts are inline SVG drawn here on the server (no script, no library): each value becomes
a ``<rect>`` with a ``<title>`` tooltip. Every piece of text is escaped before it goes in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import jinja2
from markupsafe import Markup, escape


def when(value: datetime | str | None) -> str:
    """``2026-06-01 09:00:05 UTC``: the hub keeps UTC, and says so."""
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def day(value: date | str | None) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else value.isoformat()


def age(seconds: float | None) -> str:
    """``3 h 12 min``: long enough to read at a glance, short enough for a table cell."""
    if seconds is None:
        return "—"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, _ = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def hl7_segments(payload: str) -> list[str]:
    """An ER7 message one segment a line (stored with CR separators, sometimes LF)."""
    text = payload.replace("\r\n", "\r").replace("\n", "\r")
    return [segment for segment in text.split("\r") if segment.strip()]


def hl7_fields(payload: str) -> list[dict[str, Any]]:
    """Each segment with its numbered fields: ``PID-3``, ``ZLS-1`` as the mapping names them.

    MSH counts its own field separator as MSH-1, so its fields are numbered from 2.
    """
    parsed = []
    for segment in hl7_segments(payload):
        name, _, rest = segment.partition("|")
        values = rest.split("|") if rest else []
        first = 2 if name == "MSH" else 1
        fields = [{"label": f"{name}-{first + i}", "value": value}
                  for i, value in enumerate(values) if value != ""]
        parsed.append({"segment": name, "fields": fields})
    return parsed


def looks_like_hl7(payload: str) -> bool:
    return payload.startswith("MSH|")


def bar_chart(values: Sequence[float], labels: Sequence[str] | None = None, *,
              width: int = 360, height: int = 60, title: str = "") -> Markup:
    """A small bar chart; each bar's tooltip (``title`` element) is its label and value."""
    count = max(len(values), 1)
    peak = max([*values, 0]) or 1
    gap = 1 if count > 30 else 2
    bar = max((width - gap * (count - 1)) / count, 1)
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height + 14}" viewBox="0 0 {width} {height + 14}" role="img" '
             f'aria-label="{escape(title)}">', f"<title>{escape(title)}</title>"]
    for i, value in enumerate(values):
        if not value:
            continue  # an empty minute draws nothing (and keeps the page small)
        h = max(round(value / peak * height, 1), 0.5)
        x = round(i * (bar + gap), 1)
        tip = f"{labels[i]}: {_num(value)}" if labels and i < len(labels) else _num(value)
        parts.append(f'<rect class="bar" x="{x}" y="{round(height - h, 1)}" '
                     f'width="{round(bar, 1)}" height="{h}">'
                     f"<title>{escape(tip)}</title></rect>")
    parts.append(f'<line class="axis" x1="0" y1="{height}" x2="{width}" y2="{height}"/>')
    parts.append(f'<text class="peak" x="0" y="{height + 12}">max {escape(_num(peak))}'
                 "</text></svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def hbar_chart(rows: Sequence[tuple[str, float]], *, width: int = 360,
               title: str = "") -> Markup:
    """Horizontal bars with their label and value: for a few categories (stages, kinds)."""
    line, label_width = 18, 140
    height = max(len(rows), 1) * line
    peak = max([value for _, value in rows] + [0]) or 1
    room = width - label_width - 40
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}">', f"<title>{escape(title)}</title>"]
    for i, (label, value) in enumerate(rows):
        y = i * line
        w = round(value / peak * room, 1)
        parts.append(f'<text class="label" x="0" y="{y + 13}">{escape(label)}</text>'
                     f'<rect class="bar" x="{label_width}" y="{y + 3}" width="{w}" '
                     f'height="{line - 6}"><title>{escape(label)}: {escape(_num(value))}'
                     f'</title></rect><text class="value" x="{label_width + w + 4}" '
                     f'y="{y + 13}">{escape(_num(value))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def install(env: jinja2.Environment) -> None:
    env.filters.update(when=when, day=day, age=age, pretty_json=pretty_json,
                       hl7_segments=hl7_segments)
    env.globals.update(bar_chart=bar_chart, hbar_chart=hbar_chart, hl7_fields=hl7_fields,
                       looks_like_hl7=looks_like_hl7)
