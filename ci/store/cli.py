"""The store's commands: `hilci plan`, `hilci history`, `hilci compare`, `hilci store gc` (and `hilci run -n`)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

DEFAULT_PROTECT = ("main", "master")


def register(sub: argparse._SubParsersAction) -> None:
    plan = sub.add_parser("plan", help="for each stage: run or cached, and why (what changed since the entry)")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON (what the Jenkinsfile reads)")
    plan.add_argument("--jenkins", action="store_true",
                      help="plan every board of the matrix and write the cached stages' JUnit (Jenkins's plan step)")
    plan.add_argument("--rig", default=None, help="rig YAML for the matrix stages (default: hilci run's)")
    plan.add_argument("--output", default=None, metavar="FILE",
                      help="write the plan to FILE and print only the cached stages' ids, one a line "
                           "(what the Jenkinsfile reads)")
    plan.add_argument("--only", action="append", default=[], metavar="STAGE")
    plan.add_argument("--from", dest="start_from", metavar="STAGE")
    from hilci.pipeline.project import add_pipeline_option

    add_pipeline_option(plan)
    plan.set_defaults(func=cmd_plan)

    hist = sub.add_parser("history", help="measurements over past runs, from the store, with a sparkline")
    hist.add_argument("--measurement", "-m", default=None, help="one measurement: every run's value")
    hist.add_argument("--branch", "-b", default=None, help="branch (default: the current one)")
    hist.add_argument("--board", default=None, help="board or rig (default: every board)")
    hist.add_argument("--last", type=int, default=30, help="runs to show (default: %(default)s)")
    hist.set_defaults(func=cmd_history)

    comp = sub.add_parser("compare", help="the measurement differences between two commits")
    comp.add_argument("rev_a")
    comp.add_argument("rev_b")
    comp.add_argument("--board", default=None)
    comp.set_defaults(func=cmd_compare)

    store = sub.add_parser("store", help="the shared store: gc")
    ssub = store.add_subparsers(dest="store_command", metavar="COMMAND", required=True)
    gc = ssub.add_parser("gc", help="evict old entries; never what the last green run of a protected branch uses")
    gc.add_argument("--keep-days", type=float, default=30.0, help="keep entries younger than this (default 30)")
    gc.add_argument("--max-gb", type=float, default=50.0, help="evict oldest entries above this size (default 50)")
    gc.add_argument("--protect", action="append", default=[], metavar="BRANCH",
                    help="protected branch (repeatable; default: the trusted branches of hilci.yaml with history)")
    gc.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    gc.set_defaults(func=cmd_gc)
    show = ssub.add_parser("url", help="print the store URL in use (without credentials)")
    show.set_defaults(func=cmd_url)


def _context(pipeline_spec: str | None = None, data_on_stdout: bool = False):
    """The project a command runs in (the path every command takes to root and pipeline) and its config."""
    from hilci.pipeline.project import open_project
    from hilci.stage.run import load_config

    project = open_project(pipeline_spec, to_stderr=data_on_stdout)
    project.pipeline.validate(project.root)
    return project, load_config(project.root, project.pipeline)


def _open(use_cache: bool = True, pipeline_spec: str | None = None, data_on_stdout: bool = False):
    from hilci.store.session import StoreSession

    project, config = _context(pipeline_spec, data_on_stdout)
    return project, StoreSession.open(project.root, project.pipeline, config, use_cache=use_cache)


def _session(use_cache: bool = True, pipeline_spec: str | None = None):
    return _open(use_cache, pipeline_spec)[1]


def cmd_plan(args: argparse.Namespace) -> int:
    from hilci.store.plan import as_json, as_text, make_plan

    project, session = _open(use_cache=not getattr(args, "no_cache", False),
                             pipeline_spec=getattr(args, "pipeline", None), data_on_stdout=getattr(args, "json", False))
    try:
        stages = project.stages(args.only, args.start_from)
        rig = project.rig(args.rig)
        rows = make_plan(session, stages, rig=rig, jenkins=args.jenkins)
    finally:
        notes = session.close()
    if getattr(args, "json", False):
        data = as_json(session, rows)
        data["notes"] = notes
        text = json.dumps(data, indent=1) + "\n"
        if getattr(args, "output", None):
            out = session.root / args.output
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
            sys.stdout.write("".join(f"{ident}\n" for ident in data["cached"]))
        else:
            sys.stdout.write(text)
    else:
        sys.stdout.write(as_text(session, rows))
        for note in notes:
            print(f"note: {note}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from hilci.store import history

    session = _session()
    try:
        if session.store is None:
            print(f"hilci: error: {session.notes[0]}", file=sys.stderr)
            return 2
        branch = args.branch or session.origin["branch"]
        ns = session.trust.history_ns(branch)
        hist = history.History()
        for board in [args.board] if args.board else history.boards(session.store, branch, ns):
            part = history.recent(session.store, branch, board, ns, last=args.last,
                                  keep=lambda r: not r.get("cached") and bool(r["measurements"]))
            hist.records += part.records
            hist.skipped += part.skipped
        hist.records.sort(key=lambda r: r["start"])
    finally:
        session.close()
    for skipped in hist.skipped:
        print(f"skipped: {skipped}")
    measured = [r for r in hist.records if not r.get("cached") and r["measurements"]]
    if not measured:
        print(f"no history for branch {branch}" + (f" on {args.board}" if args.board else "") +
              f" in {session.display}")
        return 0
    print(f"history of {branch} in {session.display}: {len(measured)} stage runs")
    if args.measurement:
        points = history.values(measured, args.measurement)[-args.last:]
        if not points:
            print(f"no values of {args.measurement}")
            return 1
        unit = str(points[-1][0]["measurements"][args.measurement].get("unit") or "")
        print(f"{args.measurement} [{unit}]  {history.sparkline([v for _, v in points])}")
        print(f"{'when (UTC)':<20}  {'commit':<8}  {'board':<10}  {'value':>10}  verdict")
        for record, value in points:
            verdict = record["measurements"][args.measurement].get("verdict", "")
            if args.measurement in (record.get("regressed") or ()):  # its limits passed; its gate did not
                verdict = "regressed"
            print(f"{record['start_utc']:<20}  {record['commit'][:7]:<8}  {record['board']:<10}  {value:>10.4g}  "
                  f"{verdict}")
        return 0
    names = sorted({(r["board"], n) for r in measured for n in r["measurements"]})
    print(f"{'board':<10}  {'measurement':<32}  {'runs':>4}  {'last':>10}  {'min':>10}  {'max':>10}  trend")
    for board, name in names:
        points = history.values([r for r in measured if r["board"] == board], name)[-args.last:]
        if not points:
            continue
        series = [v for _, v in points]
        unit = str(points[-1][0]["measurements"][name].get("unit") or "")
        print(f"{board:<10}  {name:<32}  {len(series):>4}  {series[-1]:>10.4g}  {min(series):>10.4g}  "
              f"{max(series):>10.4g}  {history.sparkline(series)} {unit}")
    return 0


def _resolve(root: Path, rev: str) -> str:
    try:
        proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=root,
                              capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return rev


def cmd_compare(args: argparse.Namespace) -> int:
    from hilci.errors import UsageError
    from hilci.store import history

    session = _session()
    try:
        if session.store is None:
            raise UsageError(session.notes[0])
        hist = history.load(session.store)
    finally:
        session.close()
    for skipped in hist.skipped:
        print(f"skipped: {skipped}")
    sides = []
    for rev in (args.rev_a, args.rev_b):
        full = _resolve(session.root, rev)
        recs = [r for r in hist.records if str(r.get("commit", "")).startswith(full) and not r.get("cached")
                and (args.board is None or r["board"] == args.board)]
        if not recs:
            raise UsageError(f"no history for commit {rev} in {session.display}")
        values: dict[tuple[str, str], tuple[float, str]] = {}
        for r in recs:  # oldest first: the newest run of a commit wins
            for name, fields in r["measurements"].items():
                if isinstance(fields.get("value"), (int, float)):
                    values[(r["board"], name)] = (float(fields["value"]), str(fields.get("unit") or ""))
        sides.append(values)
    a, b = sides
    settings = session.config.gates
    print(f"{'board':<10}  {'measurement':<32}  {args.rev_a[:10]:>12}  {args.rev_b[:10]:>12}  {'change':>10}  "
          f"{'unit':<6}  verdict")
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        unit = (vb or va)[1]
        change, verdict = "", ""
        if va and vb:
            change, verdict = compare_values(key[1], unit, va[0], vb[0], settings)
        fa = f"{va[0]:.4g}" if va else "-"
        fb = f"{vb[0]:.4g}" if vb else "-"
        print(f"{key[0]:<10}  {key[1]:<32}  {fa:>12}  {fb:>12}  {change:>10}  {unit:<6}  {verdict}")
    return 0


def compare_values(name: str, unit: str, old: float, new: float, settings) -> tuple[str, str]:
    """The change from `old` to `new` (a percentage only over a positive baseline, else the difference) and
    whether it is better or worse by the measurement's direction ('changed' when it has none)."""
    from hilci.pipeline.sections import HIGHER, LOWER
    from hilci.store.gates import direction_of

    diff = new - old
    change = f"{diff / old * 100:+.1f}%" if old > 0 else f"{diff:+.4g}"
    if diff == 0:
        return change, "same"
    direction = (settings.measurements.get(name) or {}).get("direction") or direction_of(name, unit)
    if direction == LOWER:
        return change, "better" if diff < 0 else "worse"
    if direction == HIGHER:
        return change, "better" if diff > 0 else "worse"
    return change, "changed (no direction)"


def cmd_gc(args: argparse.Namespace) -> int:
    from hilci.errors import UsageError
    from hilci.store.gc import collect

    if args.keep_days < 0 or args.max_gb < 0:
        raise UsageError("store gc: --keep-days and --max-gb must be >= 0")
    session = _session()
    try:
        if session.store is None:
            raise UsageError(session.notes[0])
        report = collect(session.store, keep_days=args.keep_days, max_gb=args.max_gb,
                         protect=tuple(args.protect) or _trusted_branches(session), dry_run=args.dry_run)
    finally:
        session.close()
    print(("dry run: " if args.dry_run else "") + report.text(session.display))
    return 0


def _trusted_branches(session) -> tuple[str, ...]:
    """The branches with history in the shared layout that hilci.yaml's `trusted_branches` match (main, master,
    release/* by default)."""
    from urllib.parse import unquote

    from hilci.store.trust import is_trusted

    found = [unquote(n) for n in session.store.names("history")]
    return tuple(b for b in found if is_trusted(b, session.trust.patterns)) or DEFAULT_PROTECT


def cmd_url(args: argparse.Namespace) -> int:
    from hilci.store.backend import display_url, store_url

    project, config = _context(data_on_stdout=True)
    print(display_url(store_url(project.root, config)))
    return 0
