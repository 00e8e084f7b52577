"""`hilci soak --rig R --duration D`: loop the HIL suites' soak profile on one rig for D, sampling the Jetson's
`tegrastats` and the test processes' memory, and gate on the trends (`hilci.hil.soak`); the result is a JUnit
file and a history record (stage `soak`, filed under the rig's board) like any run's. docs/soak.md.

Exit 0 when every figure passed or was inconclusive, 1 when one failed, 2 for bad input (one line).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from hilci.errors import UsageError

STAND_IN = [sys.executable, "-m", "hilci.hil.emulators.tegrastats"]
BOARD_DEVICE = "tegrastats"  # `--fault tegrastats:throttle:...`: the board's own faults, for the stand-in
GRACE_S = 120.0  # the last round may start just before the end; its tests have their own time limits


def register(sub: argparse._SubParsersAction) -> None:
    from hilci.pipeline.project import add_pipeline_option

    p = sub.add_parser("soak", help="loop the HIL suites on a rig for a while and gate on their trends",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rig", required=True, help="rig YAML")
    p.add_argument("--duration", default=None, help="how long: 90s, 30m, 8h (default: hilci.yaml soak.duration)")
    p.add_argument("--board", default=None, help="the board the record is filed under (default: the rig file's name)")
    p.add_argument("--fault", action="append", default=[], metavar="DEVICE:KIND[:k=v,...]",
                   help="a fault kept for the whole soak on an emulated rig, e.g. servo:drift:ramp=2, imu:leak:ramp=20, "
                        "tegrastats:throttle:ramp=5 (the tegrastats stand-in's)")
    p.add_argument("--tegrastats", default=None, metavar="CMD",
                   help="the tegrastats command (default: tegrastats; on an emulated rig the stand-in "
                        "`python -m hilci.hil.emulators.tegrastats`)")
    p.add_argument("--engine", default=None, help="the engine under test (default: the rig's own `engine`)")
    p.add_argument("-m", dest="marker", default=None, help="pytest -m: the profile (default: hilci.yaml soak.marker)")
    p.add_argument("-k", dest="keyword", default=None, help="pytest -k narrowing the profile")
    p.add_argument("--out", default=None, help="folder for the raw samples and the log (default reports/soak/BOARD)")
    p.add_argument("--junit", default=None, help="the JUnit file (default OUT/soak.xml; Jenkins: the stage's own)")
    add_pipeline_option(p)
    p.set_defaults(func=cmd_soak)


def cmd_soak(args: argparse.Namespace) -> int:
    from hilci.hil.faults import FaultError, parse_fault, parse_targeted
    from hilci.hil.rig import RigError, load_rig
    from hilci.hil.soak import parse_duration
    from hilci.pipeline.config import load
    from hilci.pipeline.project import project_from_args
    from hilci.pipeline.sections import SoakSettings

    project = project_from_args(args, data_on_stdout=False)
    root, pipeline = project.root, project.pipeline
    config = load(root, pipeline)
    cfg = config.soak or SoakSettings()
    rig_path = Path(args.rig) if Path(args.rig).is_absolute() else Path.cwd() / args.rig
    try:
        rig = load_rig(rig_path)
    except (RigError, UsageError) as exc:
        raise UsageError(str(exc)) from None
    try:
        seconds = parse_duration(args.duration or cfg.duration, "--duration" if args.duration else
                                 "hilci.yaml: soak.duration")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    board_faults, device_faults = [], []
    kinds = {d.name: d.kind for d in rig.devices.values()}
    for text in args.fault:
        device, _, rest = text.partition(":")
        try:
            if device == BOARD_DEVICE:
                board_faults.append(parse_fault(rest, file=f"--fault {text}", device_kind="Jetson",
                                                allowed=("throttle", "leak")).to_dict())
            else:
                parse_targeted(text, kinds, tests=False)
                device_faults.append(text)
        except FaultError as exc:
            raise UsageError(f"--fault {exc}") from None
    if (board_faults or device_faults) and not rig.emulate:
        raise UsageError(f"--fault: {rig.path} is a real rig (emulate: false); faults need an emulated one")
    tegra_cmd = (args.tegrastats.split() if args.tegrastats else
                 [*STAND_IN, *[f"--fault={_spell(f)}" for f in board_faults]] if rig.emulate else ["tegrastats"])
    board = args.board or rig_path.stem
    out = Path(args.out) if args.out else root / "reports" / "soak" / board
    out.mkdir(parents=True, exist_ok=True)
    hil_cfg = config.settings("hil")
    tests = getattr(hil_cfg, "tests", "hil_tests")
    result = run_soak(root, rig_path, tests, seconds, cfg, out, tegra_cmd, device_faults,
                      marker=args.marker or cfg.marker, keyword=args.keyword if args.keyword is not None else
                      cfg.keyword, engine=args.engine, board=board, emulated=rig.emulate)
    junit_file = Path(args.junit) if args.junit else out / "soak.xml"
    code = _finish(root, pipeline, result, board, rig_path, junit_file)
    _note_in_fleet(rig.name, result, code)
    return code


def _note_in_fleet(rig: str, result: dict, code: int) -> None:
    """`hilci rigs` shows each rig's last soak from the fleet state the sessions share (hilci.hil.fleet)."""
    from hilci.hil import fleet
    from hilci.results.measurements import FAIL

    failed = [m.name for m in result["figures"] if m.verdict == FAIL]
    verdict = "error" if result["problem"] else ("failed" if code else "passed")
    try:
        fleet.note_soak(rig, {"verdict": verdict, "failed": failed, "duration_s": round(result["duration_s"], 1)},
                        fleet.folder())
    except OSError as exc:  # the soak's own results are written already; the fleet view is a convenience
        print(f"note: last soak not noted in the fleet state ({exc.strerror})", file=sys.stderr)


def _spell(fault: dict) -> str:
    kind = fault.pop("kind")
    return kind + ":" + ",".join(f"{k}={v}" for k, v in fault.items())


def run_soak(root: Path, rig: Path, tests: str, seconds: float, cfg, out: Path, tegra_cmd: list[str],
             faults: list[str], *, marker: str, keyword: str, engine: str | None, board: str,
             emulated: bool) -> dict:
    """Run the loop with its samplers; returns what `_finish` needs (inputs, figures, timing, pytest's exit)."""
    from hilci.hil import soak, tegrastats

    runs = out / "runs.jsonl"
    runs.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", tests, "--rig", str(rig), "-p", "no:cacheprovider", "-q", "-rfE",
           "--hil-soak", f"{seconds:g}", "--hil-soak-out", str(runs), "--hil-logs", str(out / "hil-logs"),
           "--board", board]
    if marker:
        cmd += ["-m", marker]
    if keyword:
        cmd += ["-k", keyword]
    if engine:
        cmd += ["--engine", engine]
    for text in faults:
        cmd += ["--hil-soak-fault", text]
    reader = tegrastats.Reader(tegra_cmd, int(cfg.interval_s * 1000)).start()
    start, t0 = time.time(), time.monotonic()
    log = (out / "pytest.log").open("w")
    proc = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rss = soak.RssSampler(proc.pid, cfg.interval_s).start()
    timed_out = False
    try:
        proc.wait(seconds + GRACE_S)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    finally:
        rss.stop()
        reader.stop()
        log.close()
    rounds = [json.loads(line) for line in runs.read_text().splitlines() if line.strip()] if runs.is_file() else []
    first = [r["mono"] for r in rounds if r.get("round") == 1]
    inputs = soak.Inputs(rounds=rounds, rss=rss.samples, tegra=reader.samples, tegra_problem=reader.problem,
                         warm_until=max(first) if first else t0,
                         until=max((r["mono"] for r in rounds), default=float("inf")))
    figures = soak.judge(inputs, cfg)
    problem = ""
    if timed_out:
        problem = f"pytest did not finish within {seconds + GRACE_S:g} s (log: {out / 'pytest.log'})"
    elif proc.returncode not in (0, 1) or not rounds:
        tail = (out / "pytest.log").read_text().strip().splitlines()[-1:] or ["no output"]
        problem = f"pytest could not run the soak (exit {proc.returncode}): {tail[0]}"
    _save_samples(out, inputs)
    return {"emulated": emulated, "inputs": inputs, "figures": figures, "start": start, "duration_s": time.monotonic() - t0,
            "problem": problem, "seconds": seconds}


def _save_samples(out: Path, inputs) -> None:
    """The raw series beside the JUnit, for a person who wants to plot them."""
    data = {"rss_mb": inputs.rss, "tegrastats": [
        {"t": s.t, "ram_used_mb": s.ram_used_mb, "gpu_load_pct": s.gpu_load_pct, "gpu_mhz": s.gpu_mhz,
         "temps": s.temps} for s in inputs.tegra]}
    (out / "samples.json").write_text(json.dumps(data))


def _finish(root: Path, pipeline, result: dict, board: str, rig: Path, junit_path: Path) -> int:
    from hilci.hil import soak
    from hilci.results import junit
    from hilci.results.measurements import FAIL

    figures, inputs = result["figures"], result["inputs"]
    failed = [m for m in figures if m.verdict == FAIL]
    status = "error" if result["problem"] else ("failed" if failed else "passed")
    cases = [junit.make_case(m.name, f"{board}.soak", measurements=[m]) for m in figures]
    if result["problem"]:
        cases.append(junit.make_case("run", f"{board}.soak", error=result["problem"]))
    junit_file = junit.write_suite(junit_path, f"soak.{board}", cases, [
        ("hilci.stage", "soak"), ("hilci.board", board), ("hilci.rig", str(rig)),
        ("hilci.soak.duration_s", f"{result['seconds']:g}"),
        ("hilci.soak.rounds", str(max((r["round"] for r in inputs.rounds), default=0)))])
    record_note = _record(root, pipeline, result, board, rig, status, junit_file)
    rounds = max((r["round"] for r in inputs.rounds), default=0)
    print(f"soak {board}: {rounds} rounds, {len(inputs.rounds)} test runs in {result['duration_s']:.0f} s, "
          f"{len(inputs.rss)} memory and {len(inputs.tegra)} tegrastats samples")
    for m in figures:
        print(f"  {soak.line(m)}")
    for problem in (inputs.tegra_problem, result["problem"]):  # each once, one line
        if problem:
            print(f"hilci soak: {problem}", file=sys.stderr)
    if record_note:
        print(f"note: {record_note}")
    print(f"soak {board}: {status.upper()} ({junit_file.relative_to(root) if junit_file.is_relative_to(root) else junit_file})")
    return 0 if status == "passed" else 1


def _record(root: Path, pipeline, result: dict, board: str, rig: Path, status: str,
            junit_file: Path) -> str:
    """The soak's history record (stage `soak`), through the run's store session: spooled when it is away."""
    from hilci.stage.run import load_config
    from hilci.store import history
    from hilci.store.backend import LOCAL_DIR
    from hilci.store.session import StoreSession
    from hilci.util.provenance import environment_facts

    session = StoreSession.open(root, pipeline, load_config(root, pipeline))
    try:
        inputs = result["inputs"]
        record = history.make_record(origin=session.origin, board=board, rig=str(rig), stage="soak",
                                     start=result["start"], duration_s=result["duration_s"], status=status, key="",
                                     measurements=history.measurements_of(junit_file),
                                     environment=environment_facts())
        counts: dict[str, int] = {}
        for run in inputs.rounds:
            counts["runs"] = counts.get("runs", 0) + 1
            if run.get("failure_class"):
                counts[run["failure_class"]] = counts.get(run["failure_class"], 0) + 1
        record["failures"] = {k: v for k, v in counts.items() if k != "runs"}
        record["soak"] = {"seconds": result["seconds"], "runs": counts.get("runs", 0),
                          "rounds": max((r["round"] for r in inputs.rounds), default=0)}
        record["emulated"] = result["emulated"]
        note = history.append(session.store, record, root / LOCAL_DIR, session.trust.write_ns)
        return "" if note in ("", "kept") else note
    finally:
        for line in session.close():
            print(f"note: {line}", file=sys.stderr)

