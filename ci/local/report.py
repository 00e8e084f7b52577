"""reports/junit.xml (every stage merged) and reports/index.html (static, offline, no scripts).

The HTML shows each stage on a timeline with its status and duration, every failure with its message, and
every measurement as a table row with an inline SVG plot against its limits.
"""

from __future__ import annotations

import html
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ci import junit
from ci.junit import CaseRecord

COLORS = {"passed": "#2e7d32", "cached": "#00838f", "failed": "#c62828", "error": "#6a1b9a",
          "skipped": "#9e9e9e"}


@dataclass
class StageRow:
    """One bar of the timeline."""

    name: str
    status: str
    start_s: float
    duration_s: float
    reason: str = ""


def write_reports(root: Path, junit_files: Iterable[Path], outcomes=None, title: str = "hilci pipeline",
                  trends: list[dict] | None = None) -> Path:
    """Merge the stage JUnit files into reports/junit.xml and render reports/index.html; return the HTML path."""
    reports = root / "reports"
    files = [Path(f) for f in junit_files]
    merged = junit.merge(files, reports / "junit.xml")
    cases = junit.read_cases(merged)
    rows = [StageRow(o.name, o.status, o.start_s, o.duration_s, o.reason) for o in outcomes] if outcomes \
        else rows_from_cases(cases)
    out = reports / "index.html"
    page = render_html(title, rows, cases)
    if trends:
        page = page.replace("</body></html>", trend_section(trends) + "</body></html>")
    out.write_text(page)
    return out


def trend_section(trends: list[dict], width: int = 240, height: int = 36) -> str:
    """Each measurement over the last runs on the same board (ci.store.session.trends), the current run marked."""
    esc = html.escape
    rows = []
    for t in trends:
        values = [p["value"] for p in t["points"]]
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        step = (width - 8) / max(1, len(values) - 1)
        xy = [(4 + i * step, height - 4 - (v - low) / span * (height - 8)) for i, v in enumerate(values)]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        marks = "".join(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3.5' fill='#c62828'><title>this run "
                        f"{esc(p['commit'])}: {p['value']:g}</title></circle>"
                        for (x, y), p in zip(xy, t["points"], strict=True) if p["current"])
        svg = (f"<svg class='trend' width='{width}' height='{height}'><polyline points='{line}' fill='none' "
               f"stroke='#1565c0' stroke-width='1.5'/>{marks}</svg>")
        current = next((p["value"] for p in t["points"] if p["current"]), values[-1])
        rows.append(f"<tr><td>{esc(t['name'])}</td><td>{esc(t['board'])}</td><td>{len(values)}</td>"
                    f"<td>{low:g} … {high:g} {esc(t['unit'])}</td><td>{current:g} {esc(t['unit'])}</td>"
                    f"<td>{svg}</td></tr>")
    return ("<h2>Trends</h2><p>Each measurement over the last runs of this branch on the same board; "
            "the red dot is this run.</p><table class='trends'><tr><th>measurement</th><th>board</th>"
            "<th>runs</th><th>range</th><th>this run</th><th>trend</th></tr>" + "".join(rows) + "</table>")


def stage_of(case: CaseRecord) -> str:
    """The stage a testcase belongs to: classname hilci.<stage>[...], else the suite name."""
    for source in (case.classname, case.suite):
        if source.startswith("hilci."):
            return source.split(".")[1]
    return case.suite.split(".")[0] or "tests"


def rows_from_cases(cases: list[CaseRecord]) -> list[StageRow]:
    """Timeline rows without the runner's record (the Jenkins report stage): stages back to back."""
    order: dict[str, list[CaseRecord]] = defaultdict(list)
    for case in cases:
        order[stage_of(case)].append(case)
    rows, t = [], 0.0
    for name, group in order.items():
        duration = sum(c.time for c in group)
        worst = _worst(c.status for c in group)
        rows.append(StageRow(name, worst, t, duration))
        t += duration
    return rows


def _worst(statuses: Iterable[str]) -> str:
    rank = {"error": 4, "failed": 3, "passed": 1, "skipped": 0}
    statuses = list(statuses)
    return max(statuses, key=lambda s: rank.get(s, 0)) if statuses else "passed"


def render_html(title: str, rows: list[StageRow], cases: list[CaseRecord]) -> str:
    esc = html.escape
    failures = [c for c in cases if c.status in ("failed", "error")]
    measured = [c for c in cases if c.measurements]
    counts = defaultdict(int)
    for c in cases:
        counts[c.status] += 1
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p class='meta'>generated {time.strftime('%Y-%m-%d %H:%M:%S')} · {len(cases)} testcases: "
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + "</p>",
        "<h2>Stages</h2>", timeline_svg(rows), stage_table(rows),
        f"<h2>Failures ({len(failures)})</h2>",
    ]
    if failures:
        parts.append("<table><tr><th>stage</th><th>test</th><th>status</th><th>message</th></tr>")
        for c in failures:
            detail = f"<details><summary>details</summary><pre>{esc(c.text[-4000:])}</pre></details>" if c.text else ""
            parts.append(f"<tr class='{c.status}'><td>{esc(stage_of(c))}</td><td>{esc(c.name)}</td>"
                         f"<td>{c.status}</td><td>{esc(c.message)}{detail}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    parts.append(f"<h2>Measurements ({sum(len(c.measurements) for c in measured)})</h2>")
    for case in measured:
        parts.append(f"<h3>{esc(stage_of(case))} · {esc(case.name)}</h3>")
        parts.append(measurement_table(case.measurements))
    parts.append("<h2>All testcases</h2><table><tr><th>stage</th><th>classname</th><th>test</th>"
                 "<th>status</th><th>time</th></tr>")
    for c in cases:
        parts.append(f"<tr class='{c.status}'><td>{esc(stage_of(c))}</td><td>{esc(c.classname)}</td>"
                     f"<td>{esc(c.name)}</td><td>{c.status}</td><td>{c.time:.3f} s</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def stage_table(rows: list[StageRow]) -> str:
    esc = html.escape
    out = ["<table><tr><th>stage</th><th>status</th><th>duration</th><th>detail</th></tr>"]
    for r in rows:
        out.append(f"<tr class='{r.status}'><td>{esc(r.name)}</td><td>{r.status}</td>"
                   f"<td>{r.duration_s:.1f} s</td><td>{esc(r.reason)}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def timeline_svg(rows: list[StageRow], width: int = 900) -> str:
    """Gantt-style bars: one row per stage, x = seconds since the run started."""
    if not rows:
        return "<p>No stages ran.</p>"
    label_w, bar_h, gap = 110, 22, 6
    total = max((r.start_s + r.duration_s for r in rows), default=0.0) or 1.0
    scale = (width - label_w - 140) / total  # room for the '12.3 s passed' label after the last bar
    height = len(rows) * (bar_h + gap) + 24
    svg = [f"<svg class='timeline' width='{width}' height='{height}' role='img' "
           f"aria-label='stage timeline' xmlns='http://www.w3.org/2000/svg'>"]
    for i, r in enumerate(rows):
        y = i * (bar_h + gap)
        x = label_w + r.start_s * scale
        w = max(r.duration_s * scale, 2)
        color = COLORS.get(r.status, "#555")
        svg.append(f"<text x='0' y='{y + 16}'>{html.escape(r.name)}</text>")
        svg.append(f"<rect x='{x:.1f}' y='{y}' width='{w:.1f}' height='{bar_h}' fill='{color}'>"
                   f"<title>{html.escape(r.name)}: {r.status}, {r.duration_s:.2f} s</title></rect>")
        svg.append(f"<text x='{x + w + 4:.1f}' y='{y + 16}'>{r.duration_s:.1f} s {r.status}</text>")
    svg.append(f"<text x='{label_w}' y='{height - 4}' class='axis'>0 s</text>")
    svg.append(f"<text x='{width - 140}' y='{height - 4}' class='axis'>{total:.1f} s</text></svg>")
    return "".join(svg)


def measurement_table(measurements: dict[str, dict[str, str]]) -> str:
    esc = html.escape
    out = ["<table><tr><th>measurement</th><th>value</th><th>limits</th><th>verdict</th><th>plot</th>"
           "<th>statistics</th></tr>"]
    for name, fields in measurements.items():
        unit = fields.get("unit", "")
        limits = " ".join(p for p in (f"≥ {fields['low']}" if "low" in fields else "",
                                      f"≤ {fields['high']}" if "high" in fields else "") if p)
        stats = ", ".join(f"{k} {fields[k]}" for k in ("n", "min", "mean", "p50", "p90", "p99", "max", "jitter")
                          if k in fields)
        verdict = fields.get("verdict", "")
        out.append(f"<tr class='{'passed' if verdict == 'pass' else 'failed'}'><td>{esc(name)}</td>"
                   f"<td>{esc(fields.get('value', ''))} {esc(unit)}</td><td>{esc(limits)}</td>"
                   f"<td>{esc(verdict)}</td><td>{measurement_svg(fields)}</td><td>{esc(stats)}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def _float(fields: dict[str, str], key: str) -> float | None:
    try:
        return float(fields[key])
    except (KeyError, ValueError):
        return None


def measurement_svg(fields: dict[str, str], width: int = 260, height: int = 26) -> str:
    """A number line: the distribution's min–max whisker, p50–p90 box and p99 tick (or the value's dot),
    with the limits as red lines."""
    value = _float(fields, "value")
    points = [v for v in (_float(fields, k) for k in ("min", "max", "low", "high", "value", "p99")) if v is not None]
    if value is None or not points:
        return ""
    lo, hi = min(points), max(points)
    span = (hi - lo) or abs(hi) or 1.0
    lo, hi = lo - span * 0.08, hi + span * 0.08

    def x(v: float) -> float:
        return 6 + (v - lo) / (hi - lo) * (width - 12)

    mid = height / 2
    parts = [f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>",
             f"<line x1='6' y1='{mid}' x2='{width - 6}' y2='{mid}' stroke='#ddd'/>"]
    vmin, vmax, p50, p90, p99 = (_float(fields, k) for k in ("min", "max", "p50", "p90", "p99"))
    if None not in (vmin, vmax, p50, p90):
        parts.append(f"<line x1='{x(vmin):.1f}' y1='{mid}' x2='{x(vmax):.1f}' y2='{mid}' stroke='#555'/>")
        parts.append(f"<rect x='{x(p50):.1f}' y='{mid - 6}' width='{max(x(p90) - x(p50), 1.5):.1f}' height='12' "
                     f"fill='#90caf9' stroke='#1565c0'/>")
        if p99 is not None:
            parts.append(f"<line x1='{x(p99):.1f}' y1='{mid - 8}' x2='{x(p99):.1f}' y2='{mid + 8}' "
                         f"stroke='#1565c0' stroke-width='2'/>")
    color = "#2e7d32" if fields.get("verdict") == "pass" else "#c62828"
    parts.append(f"<circle cx='{x(value):.1f}' cy='{mid}' r='4' fill='{color}'/>")
    for key in ("low", "high"):
        limit = _float(fields, key)
        if limit is not None:
            parts.append(f"<line x1='{x(limit):.1f}' y1='2' x2='{x(limit):.1f}' y2='{height - 2}' "
                         f"stroke='#c62828' stroke-dasharray='3,2'/>")
    parts.append("</svg>")
    return "".join(parts)


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{margin:0 0 4px} .meta{color:#666;margin:0 0 16px}
table{border-collapse:collapse;margin:8px 0 16px;width:100%}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5} tr.failed td:first-child{border-left:4px solid #c62828}
tr.error td:first-child{border-left:4px solid #6a1b9a} tr.passed td:first-child{border-left:4px solid #2e7d32}
tr.skipped td:first-child{border-left:4px solid #9e9e9e} tr.cached td:first-child{border-left:4px solid #00838f}
pre{white-space:pre-wrap;font-size:12px;background:#fafafa;padding:6px}
svg text{font:12px system-ui,sans-serif} svg .axis{fill:#888}
"""
