"""reports/junit.xml (every stage merged) and reports/index.html (static, offline, no scripts).

The HTML answers, top to bottom: what ran where (commit, branch, rig, board, host, platform); which stages
passed and how long they took (a cached stage with the duration of the run that produced it), each linked to
its log; what failed, grouped by cause with failed measurements first; and every measurement with the
statistic behind its value, its limits and its verdict (no limits: information, not a pass), distributions as
histograms with axes. `render_html` takes extra sections (HTML strings) for what other parts add.
"""

from __future__ import annotations

import html
import math
import os
import platform
import re
import socket
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hilci.report.facts import group_failures, produced_duration, stage_detail, stage_of, suite_properties
from hilci.results import junit
from hilci.results.junit import INFRASTRUCTURE, CaseRecord
from hilci.results.measurements import STAT_FIELDS
from hilci.results.view import (
    INFO,
    has_limits,
    is_failed,
    limits_text,
    number,
    statistic,
    value_text,
    verdict,
)
from hilci.util.provenance import commit, git

COLORS = {"passed": "#2e7d32", "cached": "#00838f", "failed": "#c62828", "error": "#6a1b9a",
          "skipped": "#9e9e9e"}
esc = html.escape


@dataclass
class StageRow:
    """One stage of this run: a bar of the timeline and a row of the stage table."""

    name: str
    status: str
    start_s: float
    duration_s: float
    reason: str = ""
    log: str = ""  # relative to reports/ (the link from index.html), "" when there is none
    produced_s: float | None = None  # a cached stage: how long the run that produced it took


# -- reading -------------------------------------------------------------------------------------------------
def write_reports(root: Path, junit_files: Iterable[Path], outcomes=None, title: str = "hilci pipeline",
                  sections: Iterable[str] = (), trends: list[dict] | None = None,
                  rigs: list[dict] | None = None) -> Path:
    """Merge the stage JUnit files into reports/junit.xml and render reports/index.html; return the HTML path."""
    reports = root / "reports"
    files = [Path(f) for f in junit_files]
    merged = junit.merge(files, reports / "junit.xml")
    cases = junit.read_cases(merged)
    props = stage_properties(suite_properties(merged))
    if outcomes:
        rows = [StageRow(o.name, o.status, o.start_s, o.duration_s, o.reason, _log_link(reports, o.log),
                         produced_duration(props.get(o.name, {}), [c for c in cases if stage_of(c) == o.name]))
                for o in outcomes]
    else:
        rows = rows_from_cases(cases, props, reports)
    out = reports / "index.html"
    if rigs:
        sections = [*sections, rig_section(rigs)]
    if trends:
        sections = [*sections, trend_section(trends)]
    out.write_text(render_html(title, rows, cases, run_facts(root, props), sections))
    return out


def stage_properties(suites: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Suite properties gathered per stage (a stage may hold several suites: its gates and pytest's)."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for name, props in suites.items():
        stage = props.get("hilci.stage") or (name.split(".")[1] if name.startswith("hilci.") else name.split(".")[0])
        for key, value in props.items():
            out[stage].setdefault(key, value)
    return dict(out)


def trend_section(trends: list[dict], width: int = 240, height: int = 36) -> str:
    """Each measurement over the last runs on the same board (hilci.store.session.trends), the current run marked."""
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


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}%"


OUTCOME_MARKS = {"passed": ("▮", "pass"), "infrastructure": ("▮", "infra"), "regressed": ("▮", "fail"),
                 "failed": ("▮", "fail"), "error": ("▮", "fail")}


def rig_section(rigs: list[dict]) -> str:
    """Each rig over its last runs (hilci.store.righealth): pass rate, infrastructure failures, retries and its
    soaks, one mark per run (green passed, amber the rig's failure, red the code's), a sick rig flagged with why."""
    esc = html.escape
    rows = []
    for rig in rigs:
        marks = "".join(f"<span class='run {OUTCOME_MARKS.get(o, ('▮', 'other'))[1]}' title='{esc(o)}'>"
                        f"{OUTCOME_MARKS.get(o, ('▮', ''))[0]}</span>" for o in rig["outcomes"])
        soaks = rig["soaks"]
        last = soaks[-1] if soaks else None
        soak = (f"<span class='verdict {verdict_class('pass' if last['status'] == 'passed' else 'fail')}'>"
                f"{esc(last['status'])}</span> {esc(last['start_utc'][:16].replace('T', ' '))} "
                f"({len(soaks)} soak{'s' if len(soaks) != 1 else ''})") if last else "none yet"
        figures = []
        for name, f in sorted(rig["soak_figures"].items()):
            values = f["values"]
            label = name.removeprefix("soak.")
            spark = history_spark(values)
            figures.append(f"<div class='soakfig {verdict_class(f.get('verdict', ''))}'>{esc(label)} "
                           f"<b>{values[-1]:.3g}</b> {esc(f['unit'])} <span class='spark'>{esc(spark)}</span></div>")
        sick = (f"<div class='sickwhy'>sick: {esc(rig['sick'])}</div>") if rig["sick"] else ""
        rows.append(f"<tr class='rig{' sick' if rig['sick'] else ''}' data-board='{esc(rig['board'])}'>"
                    f"<td>{esc(rig['board'])}{sick}</td><td>{rig['runs']}</td><td>{_pct(rig['pass_pct'])}</td>"
                    f"<td>{_pct(rig['infra_pct'])}</td><td>{rig['retried']}</td><td class='runs'>{marks}</td>"
                    f"<td>{soak}{''.join(figures)}</td></tr>")
    return ("<h2>Rigs</h2><p>Each rig over its last runs of this branch: how many passed, how many failed because "
            "of the rig (infrastructure) rather than the code, tests retried after the device was brought back, "
            "and its scheduled soaks (each figure's last value and its trend over the soaks).</p>"
            "<div class='scroll'><table class='rigs'><tr><th>rig</th><th>runs</th><th>passed</th><th>infrastructure</th><th>retried</th>"
            "<th>last runs</th><th>soak</th></tr>" + "".join(rows) + "</table></div>")


def history_spark(values: list[float]) -> str:
    """Bars scaled between the series' min and max (one value: one bar)."""
    bars = "▁▂▃▄▅▆▇█"
    low, high = min(values), max(values)
    span = high - low
    return "".join(bars[0 if span == 0 else min(7, int((v - low) / span * 7.999))] for v in values)


def _log_link(reports: Path, log: str) -> str:
    path = reports.parent / log if log else None
    return str(path.relative_to(reports)) if path and path.is_file() and reports in path.parents else ""


def rows_from_cases(cases: list[CaseRecord], props: dict[str, dict[str, str]] | None = None,
                    reports: Path | None = None) -> list[StageRow]:
    """Timeline rows without the runner's record (the Jenkins report stage): stages back to back."""
    order: dict[str, list[CaseRecord]] = defaultdict(list)
    for case in cases:
        order[stage_of(case)].append(case)
    rows, t = [], 0.0
    for name, group in order.items():
        duration = sum(c.time for c in group)
        log = f"logs/{name}.log" if reports is not None and (reports / "logs" / f"{name}.log").is_file() else ""
        produced = produced_duration((props or {}).get(name, {}), group)
        status = "cached" if produced is not None and _worst(c.status for c in group) == "passed" \
            else _worst(c.status for c in group)
        rows.append(StageRow(name, status, t, duration, log=log, produced_s=produced))
        t += duration
    return rows


def _worst(statuses: Iterable[str]) -> str:
    rank = {"error": 4, "failed": 3, "passed": 1, "skipped": 0}
    statuses = list(statuses)
    return max(statuses, key=lambda s: rank.get(s, 0)) if statuses else "passed"


FACTS = (  # (label, suite properties that carry it, first found wins)
    ("commit", ("hilci.commit",)),
    ("branch", ("hilci.branch",)),
    ("rig", ("hilci.rig", "hil.rigs")),
    ("board", ("hilci.board",)),
    ("host", ("hilci.host", "hil.hostname")),
    ("platform", ("hil.platform",)),
    ("Jetson", ("hil.jetson.model",)),
    ("L4T", ("hil.l4t",)),
    ("power mode", ("hil.power_mode",)),
    ("note", ("hil.host",)),
)


def run_facts(root: Path, props: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    """What ran where, for the header: from the suites' properties, else from git, the CI's variables and
    this machine."""
    found: dict[str, list[str]] = {}
    for label, keys in FACTS:
        values = []
        for stage_props in props.values():
            value = next((stage_props[k] for k in keys if stage_props.get(k)), "")
            if value and value not in values:
                values.append(value)
        if values:
            found[label] = values
    fallback = {"commit": lambda: commit(root),
                "branch": lambda: (os.environ.get("BRANCH_NAME") or os.environ.get("GIT_BRANCH")
                                   or git(root, "rev-parse", "--abbrev-ref", "HEAD")),
                "host": socket.gethostname}
    for label, get in fallback.items():
        if label not in found:
            value = get()
            if value:
                found[label] = [value]
    if "commit" in found:
        found["commit"] = [c[:12] for c in found["commit"]]
    if "rig" in found:  # hil.rigs spells them name=path[,name=path]
        found["rig"] = [", ".join(f"{n} ({p})" if p else n for n, _, p in (r.partition("=") for r in v.split(",")))
                        for v in found["rig"]]
    facts = [(label, ", ".join(found[label])) for label, _ in FACTS if label in found]
    facts.append(("report made on", f"{socket.gethostname()} · {platform.system()} {platform.machine()} · "
                                    f"Python {platform.python_version()} · {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"))
    return facts


# -- rendering -----------------------------------------------------------------------------------------------
def render_html(title: str, rows: list[StageRow], cases: list[CaseRecord],
                facts: Iterable[tuple[str, str]] = (), sections: Iterable[str] = ()) -> str:
    """The whole page; `sections` are extra HTML blocks placed before the list of every testcase."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        header_html(title, rows, cases, list(facts)),
        stages_html(rows, cases),
        failures_html(cases, rows),
        measurements_html(cases),
        *sections,
        testcases_html(cases),
        "</body></html>",
    ]
    return "\n".join(parts)


def header_html(title: str, rows: list[StageRow], cases: list[CaseRecord], facts: list[tuple[str, str]]) -> str:
    bad = [r for r in rows if r.status in ("failed", "error")]
    failed_tests = sum(c.status in ("failed", "error") for c in cases)
    rigs = sum(c.status in ("failed", "error") and c.failure_class == INFRASTRUCTURE for c in cases)
    if bad:
        verdict_line = (f"<span class='badge failed'>{esc(bad[0].status.upper())}</span> "
                        f"{len(bad)} of {len(rows)} stages did not pass · {failed_tests} of {len(cases)} tests failed"
                        + (f" ({rigs} for the rig: infrastructure)" if rigs else ""))
    elif failed_tests:  # every stage passed, yet a testcase failed (a regression gate): the run failed
        regressed = sum(c.status in ("failed", "error") and c.suite == "hilci.regressions" for c in cases)
        why = f" ({regressed} regressed)" if regressed else ""
        verdict_line = (f"<span class='badge failed'>FAILED</span> {len(rows)} stages passed · "
                        f"{failed_tests} of {len(cases)} tests failed{why}")
    else:
        verdict_line = f"<span class='badge passed'>PASSED</span> {len(rows)} stages · {len(cases)} tests"
    counts = defaultdict(int)
    for c in cases:
        counts[c.status] += 1
    tally = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    dl = "".join(f"<div{' class=wide' if len(v) > 24 else ''}><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>"
                 for k, v in facts)
    return (f"<header><h1>{esc(title)}</h1><p class='verdict'>{verdict_line}</p>"
            f"<dl class='facts'>{dl}</dl><p class='meta'>testcases: {esc(tally) or 'none'}</p></header>")


def stages_html(rows: list[StageRow], cases: list[CaseRecord]) -> str:
    by_stage: dict[str, list[CaseRecord]] = defaultdict(list)
    for c in cases:
        by_stage[stage_of(c)].append(c)
    out = ["<section><h2>Stages</h2>", timeline_svg(rows),
           "<div class='scroll'><table class='stages cards'><tr><th>stage</th><th>status</th><th>duration</th>"
           "<th>detail</th><th>log</th></tr>"]
    for r in rows:
        detail = (stage_detail(by_stage[r.name]) if r.status != "skipped" else "") or r.reason
        if r.status == "cached" and r.reason:
            detail = f"{detail} · {r.reason}"
        log = link(r.log, Path(r.log).name) if r.log else ""
        out.append(f"<tr class='{r.status}'><td>{esc(r.name)}</td><td data-label='status'>{r.status}</td>"
                   f"<td class='num' data-label='duration'>{duration_html(r)}</td><td data-label='detail'>"
                   f"{esc(detail)}</td><td data-label='log'>{log}</td></tr>")
    out.append("</table></div></section>")
    return "\n".join(out)


def duration_html(row: StageRow) -> str:
    """A cached stage shows how long it took when it ran; the restore time of this run is the small print."""
    if row.produced_s is None:
        unknown = "<br><small>restored; the producing run's time was not recorded</small>" \
            if row.status == "cached" else ""
        return f"{row.duration_s:.1f} s{unknown}"
    return f"{row.produced_s:.1f} s<br><small>when produced; restored in {row.duration_s:.1f} s</small>"


def timeline_svg(rows: list[StageRow], width: int = 900) -> str:
    """Gantt-style bars: one row per stage, x = seconds since the run started, with a time axis."""
    if not rows:
        return "<p>No stages ran.</p>"
    label_w, bar_h, gap, axis_h = 90, 22, 6, 28
    total = max((r.start_s + r.duration_s for r in rows), default=0.0) or 1.0
    plot_w = width - label_w - 230  # room for the '12.3 s cached (40.2 s when produced)' label
    scale = plot_w / total
    height = len(rows) * (bar_h + gap) + axis_h
    svg = [f"<svg class='timeline' viewBox='0 0 {width} {height}' width='{width}' height='{height}' role='img' "
           f"aria-label='stage timeline' xmlns='http://www.w3.org/2000/svg'>"]
    for i, r in enumerate(rows):
        y = i * (bar_h + gap)
        x = label_w + r.start_s * scale
        w = max(r.duration_s * scale, 2)
        color = COLORS.get(r.status, "#555")
        label = f"{r.duration_s:.1f} s {r.status}"
        if r.produced_s is not None:
            label += f" ({r.produced_s:.1f} s when produced)"
        svg.append(f"<text x='0' y='{y + 16}'>{esc(r.name)}</text>")
        if r.status == "skipped":  # it never ran: no bar, and no place on the time axis
            svg.append(f"<text x='{label_w}' y='{y + 16}' class='tick'>skipped</text>")
            continue
        svg.append(f"<rect x='{x:.1f}' y='{y}' width='{w:.1f}' height='{bar_h}' fill='{color}'>"
                   f"<title>{esc(r.name)}: {esc(label)}</title></rect>")
        svg.append(f"<text x='{x + w + 4:.1f}' y='{y + 16}'>{esc(label)}</text>")
    base = len(rows) * (bar_h + gap)
    svg.append(_axis(label_w, label_w + plot_w, base, 0.0, total, "s"))
    svg.append("</svg>")
    return "".join(svg)


def _axis(x0: float, x1: float, y: float, lo: float, hi: float, unit: str) -> str:
    """A horizontal axis from x0 to x1 at y, ticks at round values of [lo, hi], the unit at its end."""
    def x(v: float) -> float:
        return x0 + (v - lo) / ((hi - lo) or 1.0) * (x1 - x0)

    out = [f"<line x1='{x0}' y1='{y}' x2='{x1}' y2='{y}' class='ax'/>"]
    for tick in nice_ticks(lo, hi):
        out.append(f"<line x1='{x(tick):.1f}' y1='{y}' x2='{x(tick):.1f}' y2='{y + 4}' class='ax'/>"
                   f"<text x='{x(tick):.1f}' y='{y + 16}' text-anchor='middle' class='tick'>{number(tick)}</text>")
    out.append(f"<text x='{x1 + 6:.1f}' y='{y + 16}' class='tick'>{esc(unit)}</text>")
    return "".join(out)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) within [lo, hi]."""
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        return [lo]
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def failures_html(cases: list[CaseRecord], rows: list[StageRow]) -> str:
    groups = group_failures(cases)
    failed = sum(len(g.cases) for g in groups)
    logs = {r.name: r.log for r in rows if r.log}
    if not groups:
        return "<section><h2>Failures (none)</h2><p>Every testcase passed or was skipped.</p></section>"
    out = [f"<section><h2>Failures ({count(failed, 'test')}, {count(len(groups), 'cause')})</h2>"]
    for g in groups:
        kind = "failed measurement" if g.measured else g.status
        if all(c.failure_class == INFRASTRUCTURE for c in g.cases):
            kind = "infrastructure"  # the device or rig, not the code: Jenkins shows it as an error
        names = [case_link(c) for c in g.cases]
        shown = ", ".join(names[:6])
        rest = (f"<details><summary>and {len(names) - 6} more</summary>{', '.join(names[6:])}</details>"
                if len(names) > 6 else "")
        detail = next((c.text for c in g.cases if c.text), "")
        more = f"<details><summary>details</summary><pre>{esc(detail[-4000:])}</pre></details>" if detail else ""
        log = f" · {link(logs[g.stage], 'log')}" if g.stage in logs else ""
        judged = "".join(f"<p class='measured'>{esc(name)}: {esc(value_text(f))}, limits {esc(limits_text(f))}</p>"
                         for name, f in g.cases[0].measurements.items() if is_failed(f))
        out.append(f"<div class='cause {g.status}'><p class='what'><span class='tag'>{esc(kind)}</span> "
                   f"<b>{esc(g.cause)}</b></p><p class='where'>{esc(g.stage)} · {count(len(g.cases), 'test')}"
                   f"{log}: {shown}</p>{judged}{rest}{more}</div>")
    out.append("</section>")
    return "\n".join(out)


def case_link(case: CaseRecord) -> str:
    """A failed testcase's name, linked to its device log when it kept one (index.html sits in reports/,
    one level below the folder the tests ran in, which the log's relative path starts from)."""
    name = html.escape(case.name)
    path = case.device_log
    if not path:
        return name
    href = Path(path).as_uri() if Path(path).is_absolute() else "../" + Path(path).as_posix()
    return f"{name} {link(href, 'device log', 'devlog')}"


def link(href: str, text: str, cls: str = "") -> str:
    """An escaped <a>: every link in the report (stage logs, device logs) is made here."""
    attr = f" class='{html.escape(cls)}'" if cls else ""
    return f"<a{attr} href='{html.escape(href)}'>{html.escape(text)}</a>"


def count(n: int, noun: str) -> str:
    """'1 test', '3 tests'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def measurements_html(cases: list[CaseRecord]) -> str:
    measured = [c for c in cases if c.measurements]
    total = sum(len(c.measurements) for c in measured)
    failed = [(c, name, f) for c in measured for name, f in c.measurements.items() if is_failed(f)]
    out = [f"<section><h2>Measurements ({total})</h2>"]
    if failed:
        out.append(f"<h3>Failed measurements ({len(failed)})</h3>")
        out.append(measurement_table([(f"{stage_of(c)} · {c.name}", name, f) for c, name, f in failed]))
    by_stage: dict[str, list[tuple[str, str, dict[str, str]]]] = defaultdict(list)
    for case in measured:  # one table per stage; a test's name heads its first measurement only
        for i, (name, fields) in enumerate(case.measurements.items()):
            by_stage[stage_of(case)].append((case.name if i == 0 else "", name, fields))
    for stage, rows in by_stage.items():
        out.append(f"<h3>{esc(stage)} ({len(rows)})</h3>")
        out.append(measurement_table(rows))
    out.append("</section>")
    return "\n".join(out)


PLAIN_FIELDS = {"value", "unit", "low", "high", "verdict", "gate", *STAT_FIELDS}  # the rest: shown as recorded


def verdict_class(word: str) -> str:
    return {"pass": "passed", "fail": "failed", INFO: "info"}.get(word, re.sub(r"[^a-z-]", "", word.lower()) or "info")


def measurement_table(rows: list[tuple[str, str, dict[str, str]]]) -> str:
    """One row per measurement: its test, value with its statistic, limits, verdict, a plot and the statistics."""
    out = ["<div class='scroll'><table class='measurements cards'><tr><th>test</th><th>measurement</th>"
           "<th>value</th><th>limits</th><th>verdict</th><th>plot</th><th>statistics</th></tr>"]
    for test, name, fields in rows:
        word = verdict(fields)
        shown = [k for k in STAT_FIELDS if k in fields] + [k for k in fields if k not in PLAIN_FIELDS]
        stats = " · ".join(f"{k.replace('_', ' ')} {number(fields[k])}" for k in shown)
        plot = histogram_svg(fields) if statistic(fields) else measurement_svg(fields)
        out.append(f"<tr class='{verdict_class(word)}'><td>{esc(test)}</td><td>{esc(name)}</td>"
                   f"<td class='num' data-label='value'>{esc(value_text(fields))}</td>"
                   f"<td class='lim' data-label='limits'>{esc(limits_text(fields))}</td><td data-label='verdict'>"
                   f"<span class='verdict {verdict_class(word)}'>{esc(word)}</span></td><td>{plot}</td>"
                   f"<td class='stats'>{esc(stats)}</td></tr>")
    out.append("</table></div>")
    return "\n".join(out)


def _float(fields: dict[str, str], key: str) -> float | None:
    try:
        value = float(fields[key])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None


def measurement_svg(fields: dict[str, str], width: int = 240, height: int = 34) -> str:
    """A number line for a judged value: the value's dot between its limits (red dashed), ends labelled."""
    value = _float(fields, "value")
    if value is None or not has_limits(fields):
        return ""
    points = [v for v in (_float(fields, k) for k in ("low", "high", "value")) if v is not None]
    lo, hi = min(points), max(points)
    span = (hi - lo) or abs(hi) or 1.0
    lo, hi = lo - span * 0.1, hi + span * 0.1

    def x(v: float) -> float:
        return 6 + (v - lo) / (hi - lo) * (width - 12)

    mid = 12
    parts = [f"<svg class='plot' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
             f"xmlns='http://www.w3.org/2000/svg'>",
             f"<line x1='6' y1='{mid}' x2='{width - 6}' y2='{mid}' class='ax'/>"]
    for key in ("low", "high"):
        limit = _float(fields, key)
        if limit is not None:
            parts.append(f"<line x1='{x(limit):.1f}' y1='2' x2='{x(limit):.1f}' y2='{mid + 8}' class='limit'/>"
                         f"<text x='{x(limit):.1f}' y='{height - 2}' text-anchor='middle' class='tick'>"
                         f"{number(limit)}</text>")
    color = COLORS["failed"] if is_failed(fields) else COLORS["passed"]
    parts.append(f"<circle cx='{x(value):.1f}' cy='{mid}' r='4' fill='{color}'><title>{esc(value_text(fields))}"
                 f"</title></circle></svg>")
    return "".join(parts)


QUANTILE_BINS = (("min", "p50", 0.50), ("p50", "p90", 0.40), ("p90", "p99", 0.09), ("p99", "max", 0.01))


def histogram_svg(fields: dict[str, str], width: int = 320, height: int = 150) -> str:
    """A distribution's histogram from its recorded quantiles: bins min–p50–p90–p99–max hold 50, 40, 9 and 1%
    of the n samples; bar height = samples per unit on a log scale (so the tail shows beside the bulk), with
    both axes, the limits (red, dashed) and the gated statistic (blue)."""
    edges = {k: _float(fields, k) for k in ("min", "p50", "p90", "p99", "max")}
    n = _float(fields, "n") or 0.0
    if any(v is None for v in edges.values()) or n <= 0:
        return measurement_svg(fields)
    limits = [v for v in (_float(fields, "low"), _float(fields, "high")) if v is not None]
    lo, hi = min([edges["min"], *limits]), max([edges["max"], *limits])
    span = (hi - lo) or abs(hi) or 1.0
    lo, hi = max(lo - span * 0.05, 0.0) if lo >= 0 else lo - span * 0.05, hi + span * 0.05
    left, right, top, bottom = 52, width - 24, 12, height - 32
    unit = fields.get("unit", "")

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (right - left)

    bins = [(edges[a], edges[b], share * n, f"{a}–{b}") for a, b, share in QUANTILE_BINS]
    densities = [count / (b - a) for a, b, count, _ in bins if b > a and count > 0]
    low_exp = math.floor(math.log10(min(densities))) - 1 if densities else 0  # the thinnest bin still shows
    high_exp = max(math.ceil(math.log10(max(densities))) if densities else 1, low_exp + 1)

    def y(density: float) -> float:
        share = (math.log10(density) - low_exp) / (high_exp - low_exp) if density > 0 else 0.0
        return bottom - min(max(share, 0.0), 1.0) * (bottom - top)

    svg = [f"<svg class='plot hist' width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img' "
           f"aria-label='histogram' xmlns='http://www.w3.org/2000/svg'>"]
    for a, b, count, label in bins:
        top_y = y(count / (b - a)) if b > a else top  # every sample of the bin at one value: a full-height line
        svg.append(f"<rect x='{x(a):.1f}' y='{top_y:.1f}' width='{max(x(b) - x(a), 1.5):.1f}' "
                   f"height='{bottom - top_y:.1f}' class='bar'><title>{label}: {number(count)} of {number(n)} "
                   f"samples, {number(a)}–{number(b)} {esc(unit)}</title></rect>")
    for limit in limits:
        svg.append(f"<line x1='{x(limit):.1f}' y1='{top}' x2='{x(limit):.1f}' y2='{bottom}' class='limit'>"
                   f"<title>limit {number(limit)} {esc(unit)}</title></line>")
    value, stat = _float(fields, "value"), statistic(fields)
    if value is not None:
        anchor = "end" if x(value) > (left + right) / 2 else "start"
        shift = -3 if anchor == "end" else 3
        svg.append(f"<line x1='{x(value):.1f}' y1='{top}' x2='{x(value):.1f}' y2='{bottom}' class='gate'/>"
                   f"<text x='{x(value) + shift:.1f}' y='{top + 8}' text-anchor='{anchor}' class='tick gate-label'>"
                   f"{esc(stat)} {number(value)}</text>")
    svg.append(_axis(left, right, bottom, lo, hi, unit))
    svg.append(f"<line x1='{left}' y1='{top}' x2='{left}' y2='{bottom}' class='ax'/>")
    step = max(1, math.ceil((high_exp - low_exp) / 4))
    for exp in range(low_exp, high_exp + 1, step):
        svg.append(f"<line x1='{left - 4}' y1='{y(10.0 ** exp):.1f}' x2='{left}' y2='{y(10.0 ** exp):.1f}' "
                   f"class='ax'/><text x='{left - 6}' y='{y(10.0 ** exp) + 3:.1f}' text-anchor='end' class='tick'>"
                   f"{number(10.0 ** exp)}</text>")
    svg.append(f"<text transform='translate(10 {(top + bottom) / 2:.0f}) rotate(-90)' text-anchor='middle' "
               f"class='tick'>samples per {esc(unit or 'unit')}</text></svg>")
    return "".join(svg)


def case_status(case: CaseRecord) -> str:
    """A testcase's status with its class when the rig failed it, and whether it was run again."""
    text = case.status + (" (infrastructure)" if case.failure_class == INFRASTRUCTURE and case.status != "passed"
                          else "")
    return text + (f", retried: {case.retried}" if case.retried else "")


def testcases_html(cases: list[CaseRecord]) -> str:
    out = [f"<section><details><summary><h2>All testcases ({len(cases)})</h2></summary><div class='scroll'>"
           "<table><tr><th>stage</th><th>classname</th><th>test</th><th>status</th><th>time</th></tr>"]
    for c in cases:
        out.append(f"<tr class='{c.status}'><td>{esc(stage_of(c))}</td><td>{esc(c.classname)}</td>"
                   f"<td>{esc(c.name)}</td><td>{esc(case_status(c))}</td><td class='num'>{c.time:.3f} s</td></tr>")
    out.append("</table></div></details></section>")
    return "\n".join(out)


CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;padding:0 16px;color:#222;max-width:1280px}
h1{margin:0 0 4px} h2{margin:28px 0 8px} h3{margin:18px 0 4px;font-size:15px} .meta{color:#666;margin:4px 0}
.verdict{font-size:16px;margin:6px 0 10px} .badge{color:#fff;padding:2px 8px;border-radius:4px;font-weight:600}
.badge.passed{background:#2e7d32} .badge.failed{background:#c62828}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:4px 16px;margin:0}
.facts div{border-left:3px solid #ddd;padding:0 8px} .facts dt{color:#666;font-size:12px} .facts dd{margin:0;
overflow-wrap:anywhere}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;margin:8px 0 16px;width:100%}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5} td.num,td.lim{white-space:nowrap;font-variant-numeric:tabular-nums} td.stats{font-size:12px;color:#555}
tr.failed td:first-child{border-left:4px solid #c62828} tr.error td:first-child{border-left:4px solid #6a1b9a}
tr.passed td:first-child{border-left:4px solid #2e7d32} tr.skipped td:first-child{border-left:4px solid #9e9e9e}
tr.cached td:first-child{border-left:4px solid #00838f} tr.info td:first-child{border-left:4px solid #90a4ae}
tr.inconclusive td:first-child{border-left:4px solid #ef6c00}
.verdict.passed{color:#2e7d32;font-weight:600} .verdict.failed{color:#c62828;font-weight:600}
.verdict.info{color:#607d8b} .verdict.inconclusive{color:#ef6c00;font-weight:600}
.cause{border:1px solid #ddd;border-left:4px solid #c62828;padding:6px 10px;margin:8px 0}
.cause.error{border-left-color:#6a1b9a} .cause p{margin:2px 0} .cause .where{color:#555;font-size:13px}
.tag{font-size:11px;text-transform:uppercase;background:#fdecea;color:#b71c1c;padding:1px 6px;border-radius:3px}
pre{white-space:pre-wrap;font-size:12px;background:#fafafa;padding:6px;overflow-wrap:anywhere}
summary h2{display:inline} svg text{font:12px system-ui,sans-serif} svg .tick{font-size:10px;fill:#555}
svg .ax{stroke:#777} svg .limit{stroke:#c62828;stroke-dasharray:4,3} svg .gate{stroke:#1565c0;stroke-width:2}
svg .bar{fill:#90caf9;stroke:#1565c0} svg .gate-label{fill:#1565c0}
svg.timeline{max-width:100%;height:auto}
.run{font-size:15px;letter-spacing:-2px} .run.pass{color:#2e7d32} .run.infra{color:#ef6c00} .run.fail{color:#c62828}
.run.other{color:#9e9e9e} tr.rig td:first-child{border-left:4px solid #2e7d32} tr.rig.sick td:first-child{border-left:4px
solid #ef6c00} .sickwhy{color:#e65100;font-size:12px;font-weight:600} .soakfig{font-size:12px;color:#444}
.soakfig.failed b{color:#c62828} .spark{color:#1565c0;letter-spacing:-1px}
.facts div.wide{grid-column:span 2}
@media (max-width:640px){body{margin:8px auto;padding:0 8px;font-size:13px} svg.timeline{display:none}
.facts{grid-template-columns:1fr 1fr} td,th{padding:3px 5px}
table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;border:0}
table.cards tr:first-child{display:none} table.cards tr{border:1px solid #ddd;margin:0 0 8px;padding:4px 6px}
table.cards td{padding:1px 0} table.cards td:first-child{font-weight:600;border-left:0!important}
table.cards tr.failed{border-left:4px solid #c62828} table.cards tr.error{border-left:4px solid #6a1b9a}
table.cards tr.passed{border-left:4px solid #2e7d32} table.cards tr.cached{border-left:4px solid #00838f}
table.cards tr.skipped{border-left:4px solid #9e9e9e} table.cards tr.info{border-left:4px solid #90a4ae}
table.cards tr.inconclusive{border-left:4px solid #ef6c00}
table.cards td[data-label]::before{content:attr(data-label) ": ";color:#666} table.cards td:empty{display:none}}
"""
