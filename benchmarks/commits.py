"""The store across a stream of commits, and regression detection (issue 9's benchmarks); prints its figures.

1. A commit stream: a scratch git repository with the project, commits replayed with a realistic mix (half touch
   only `ci/` or `hil_tests/`, a quarter docs or tests, a quarter `conversion/` or the train/quantize settings),
   each run by `hilci run` on one of two clones sharing one SeaweedFS store (two agents). Printed: GPU-stage
   seconds with the store against without it (without = every commit runs the GPU stages: commits x their mean
   time on a miss), the hit rate per stage, the store's own seconds per stage against the stage's time, and
   bytes uploaded per commit.
2. Regression detection: `noise` runs of noise-only history of a latency (3% jitter), then a 20% regression,
   each judged by the gates against the history before it: flagged on the first regressed run? false alarms?

3. Trust: a PR stream beside main, each PR build forging the outputs of main's next commit (bytes its key does not
   see): how many forged outputs main restores (goal 0).
4. A store frozen mid-run (it answers the run's first look, then accepts connections and never answers): the run's extra seconds over one without a store (goal:
   one deadline, however many calls).
5. History at scale: gate, `hilci history`, trends and gc's protected keys at 100, 1,000 and 10,000 commits x 4
   boards on the folder store (goal: flat within 2x).

--quick (what `make test` runs): the stream on the small fixture pipeline with a file:// store, 4 commits, the
regression check on 8 noise runs, 2 PR rounds, a 1 s deadline, history at 100 and 400 commits; it proves the
script runs and prints its lines, never a time.
Full: python benchmarks/commits.py [--commits 40] [--stages train,quantize,convert,hil] [--noise 30]
      [--parts gates,prs,frozen,history,stream]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.scratch import child_env, scratch_copy  # noqa: E402 - needs the repository on sys.path

GPU_STAGES = ("train", "quantize")
GIT_TIMEOUT_S = 60


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@hilci", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    if proc.returncode:
        raise SystemExit(f"bench: git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


# -- the kinds of commit in the stream ----------------------------------------------------------------------------
def _append(path: Path, line: str) -> None:
    with open(path, "a") as fh:
        fh.write(line)


def _bump_setting(path: Path, section: str, key: str, i: int) -> None:
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    value = data.setdefault(section, {}).get(key, 1)
    data[section][key] = value + 1 if i % 2 else max(1, value - 1)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def project_changes(root: Path) -> dict[str, list]:
    """Edits by kind for the real project: (label, function(i))."""
    code = [p for p in ("ci/jenkins/client.py", "ci/kube/cluster.py", "ci/hil/plugin.py", "hil_tests/conftest.py")
            if (root / p).exists()]
    docs = [p for p in ("docs/hil.md", "docs/jenkins.md", "tests/test_definition.py") if (root / p).exists()]
    model = [p for p in ("conversion/train.py", "conversion/quantize.py") if (root / p).exists()]
    return {
        "ci/hil_tests": [(p, lambda i, p=p: _append(root / p, f"\n# commit {i}: a change outside the model\n"))
                         for p in code],
        "docs/tests": [(p, lambda i, p=p: _append(root / p, f"\n# commit {i}\n" if p.endswith(".py")
                                                  else f"\n<!-- commit {i} -->\n")) for p in docs],
        "model": [(p, lambda i, p=p: _append(root / p, f"\n# commit {i}: a model change\n")) for p in model]
        + [("hilci.yaml train.epochs", lambda i: _bump_setting(root / "hilci.yaml", "train", "epochs", i)),
           ("hilci.yaml quantize.qat_epochs", lambda i: _bump_setting(root / "hilci.yaml", "quantize",
                                                                       "qat_epochs", i))],
    }


def fixture_changes(root: Path) -> dict[str, list]:
    """Edits by kind for the fixture pipeline of --quick (gen reads src/input.txt: the 'model')."""
    (root / "ci").mkdir(exist_ok=True)
    (root / "docs").mkdir(exist_ok=True)
    return {"ci/hil_tests": [("ci/x.py", lambda i: _append(root / "ci" / "x.py", f"# {i}\n"))],
            "docs/tests": [("docs/x.md", lambda i: _append(root / "docs" / "x.md", f"{i}\n"))],
            "model": [("src/input.txt", lambda i: _append(root / "src" / "input.txt", f"{i}\n"))]}


def stream_kinds(n: int, seed: int = 1) -> list[str]:
    """n commit kinds: half ci/hil_tests, a quarter docs/tests, a quarter model, shuffled (first is model)."""
    kinds = ["ci/hil_tests"] * (n // 2) + ["docs/tests"] * (n // 4)
    kinds += ["model"] * (n - len(kinds))
    rng = random.Random(seed)
    rest = kinds[1:]
    rng.shuffle(rest)
    return ["model"] + rest if "model" in kinds else kinds


# -- one agent's run ---------------------------------------------------------------------------------------------
def hilci_run(clone: Path, env: dict[str, str], stages: str, timeout_s: float) -> tuple[dict, float, int, str]:
    cmd = [sys.executable, "-m", "hilci", "run"] + (["--only", stages] if stages else [])
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=timeout_s)
    wall = time.perf_counter() - start
    run_file = clone / "reports" / "run.json"
    data = json.loads(run_file.read_text()) if run_file.is_file() else {"stages": [], "store": {}}
    return data, wall, proc.returncode, proc.stdout + proc.stderr


def commit_stream(n: int, *, quick: bool, stages: str, timeout_s: float) -> None:
    from tests import seaweed

    with tempfile.TemporaryDirectory(prefix="hilci-commits-") as tmp:
        tmp_path = Path(tmp)
        origin = tmp_path / "origin"
        origin.mkdir()
        if quick:
            from tests.fixture_pipelines import make_project
            from tests.test_runner import GOOD

            make_project(origin, GOOD)
            changes = fixture_changes(origin)
            env = child_env(CI="true", PYTHONPATH=str(REPO), HILCI_PIPELINE="tests.fixture_pipelines:PIPELINE",
                            HILCI_STORE=(tmp_path / "store").as_uri())
            server = None
        else:
            scratch_copy(origin)
            changes = project_changes(origin)
            server = seaweed.start(tmp_path)
            env = child_env(CI="true", HILCI_STORE=server.url("bench"), **server.env())
        git(origin, "init", "-q", "-b", "main")
        git(origin, "add", "-A")
        git(origin, "commit", "-q", "-m", "the project")
        clones = []
        for name in ("agent-a", "agent-b"):
            git(tmp_path, "clone", "-q", str(origin), name)
            clones.append(tmp_path / name)
        kinds = stream_kinds(n)
        per_stage: dict[str, list[tuple[str, float]]] = defaultdict(list)  # stage: (status, seconds)
        store_s: dict[str, float] = defaultdict(float)
        uploaded: list[int] = []
        failures: list[str] = []
        try:
            for i, kind in enumerate(kinds):
                options = changes[kind]
                label, change = options[i % len(options)]
                change(i)
                git(origin, "add", "-A")
                git(origin, "commit", "-q", "-m", f"commit {i}: {kind} ({label})")
                clone = clones[i % 2]
                git(clone, "pull", "-q", "--ff-only")
                commit = git(clone, "rev-parse", "HEAD")
                run_env = {**env, "HILCI_COMMIT": commit, "HILCI_BRANCH": "main", "HILCI_BUILD": f"#{i}"}
                data, wall, code, out = hilci_run(clone, run_env, stages, timeout_s)
                bad = [s["name"] for s in data["stages"] if s["status"] not in ("passed", "cached")]
                if code not in (0, 1) or set(bad) & set(GPU_STAGES):
                    print(out[-3000:])
                    raise SystemExit(f"bench: commit {i} ({kind}) failed with exit code {code}")
                if code == 1:  # a gate of a later stage (a busy shared host), or a regression: counted, not fatal
                    failures.append(f"commit {i}: {', '.join(bad) or 'regression gate'}: "
                                    + next((line for line in out.splitlines() if "FAILED" in line or
                                            line.startswith("regression:")), "").strip()[:160])
                for s in data["stages"]:
                    per_stage[s["name"]].append((s["status"], s["duration_s"]))
                for name, secs in (data.get("store") or {}).get("seconds", {}).items():
                    store_s[name] += secs
                uploaded.append(int((data.get("store") or {}).get("uploaded_bytes", 0)))
                summary = " ".join(f"{s['name']}={s['status'][:1]}" for s in data["stages"])
                print(f"bench: commit {i:2d}: {kind:<12} agent-{'ab'[i % 2]} {wall:6.1f} s  {summary}", flush=True)
        finally:
            if server is not None:
                server.stop()
    report_stream(kinds, per_stage, store_s, uploaded, quick, failures)


def report_stream(kinds, per_stage, store_s, uploaded, quick: bool, failures: list[str]) -> None:
    n = len(kinds)
    model_share = kinds.count("model") / n
    gpu = [s for s in GPU_STAGES if s in per_stage] or list(per_stage)[:1]
    with_store = sum(secs for s in gpu for _, secs in per_stage[s])
    without = 0.0
    for s in gpu:
        misses = [secs for status, secs in per_stage[s] if status == "passed"]
        without += (sum(misses) / len(misses) if misses else 0.0) * len(per_stage[s])
    label = "fixture stages " + "+".join(gpu) if quick else "GPU stages " + "+".join(gpu)
    print(f"bench: commit stream: {n} commits on two agents sharing one store ({kinds.count('model')} touch the model, "
          f"share {model_share:.2f})")
    print(f"bench: {label}: seconds with the store {with_store:.1f} s, without {without:.1f} s "
          f"(commits x mean miss time): ratio {with_store / without if without else 0:.2f} "
          f"(goal <= the model share {model_share:.2f})")
    for name, rows in per_stage.items():
        hits = sum(status == "cached" for status, _ in rows)
        own = sum(secs for status, secs in rows if status == "passed")
        print(f"bench: stage {name:<9}: hit rate {hits}/{len(rows)} = {hits / len(rows):.2f}; store "
              f"{store_s.get(name, 0.0):.2f} s against the stage's own {own:.1f} s "
              f"({(store_s.get(name, 0.0) / own * 100) if own else 0:.1f}%)")
    print(f"bench: bytes uploaded per commit: mean {sum(uploaded) / n / 1e3:.1f} kB, max {max(uploaded) / 1e3:.1f} kB")
    print(f"bench: runs with a failed gate or a regression (exit 1): {len(failures)}/{n}")
    for line in failures:
        print(f"bench: failed run: {line}")


# -- regression detection ----------------------------------------------------------------------------------------
def regression_detection(noise_runs: int, tmp_root: Path | None = None) -> None:
    """Records written to a store one by one, each run judged by the gates against the history before it."""
    from hilci.pipeline.sections import GateSettings
    from hilci.store import gates, history
    from hilci.store.backend import Store

    with tempfile.TemporaryDirectory(prefix="hilci-gates-", dir=tmp_root) as tmp:
        store = Store(Path(tmp).as_uri())
        settings = GateSettings()
        rng = random.Random(3)
        alarms, flagged_first, t0 = 0, False, time.time()
        for i in range(noise_runs + 1):
            regressed = i == noise_runs
            value = 5.0 * (1 + rng.gauss(0, 0.03)) * (1.2 if regressed else 1.0)
            record = history.make_record(
                origin={"commit": f"{i:02x}{'0' * 38}", "branch": "main", "build": f"#{i}"}, board="orin-nx", rig="",
                stage="hil", start=t0 + i, duration_s=1.0, status="passed", key="", environment={},
                measurements={"imu.jitter.p99": {"value": value, "unit": "ms", "high": 8.0, "verdict": "pass"}})
            base = history.load(store, "main", "orin-nx").records
            verdict = gates.judge_record(record, base, "main", settings)[0]
            if regressed:
                flagged_first = verdict.regressed
                message = verdict.message
            else:
                alarms += verdict.regressed
            history.append(store, record, Path(tmp))
        store.close()
    print(f"bench: regression detection: {noise_runs} noise runs then +20%, flagged on the first regressed run: "
          f"{'yes' if flagged_first else 'NO'}; false alarms {alarms}/{noise_runs} (goal yes, 0)")
    print(f"bench: the gate said: {message}")


# -- trust, a frozen store, history at scale (issue 16) ---------------------------------------------------------
def _fixture_env(tmp: Path, **extra: str) -> dict[str, str]:
    return child_env(CI="true", PYTHONPATH=str(REPO), HILCI_PIPELINE="tests.fixture_pipelines:PIPELINE", **extra)


def pr_stream(rounds: int) -> None:
    """A PR stream beside main: each round a PR build forges the outputs of the commit main builds next (bytes
    its key does not see), then main builds that commit from a clean tree. Counted: forged outputs main restored."""
    from tests.fixture_pipelines import make_project
    from tests.test_runner import GOOD

    with tempfile.TemporaryDirectory(prefix="hilci-prs-") as tmp:
        root = make_project(Path(tmp) / "p", GOOD)
        env = _fixture_env(Path(tmp), HILCI_STORE=(Path(tmp) / "store").as_uri())
        poisoned = 0
        for i in range(rounds):
            _append(root / "src" / "input.txt", f"commit {i}\n")
            pr = {**env, "HILCI_BRANCH": f"PR-{i}/feature x", "HILCI_COMMIT": f"{i:x}" * 40,
                  "FIXTURE_POISON": "forged by a pull request"}
            hilci_run(root, pr, "", 300)
            shutil.rmtree(root / "out", ignore_errors=True)
            main_env = {**env, "HILCI_BRANCH": "main", "HILCI_COMMIT": f"{i:x}" * 40}
            _, _, code, out = hilci_run(root, main_env, "", 300)
            if code != 0:
                print(out[-2000:])
                raise SystemExit(f"bench: main's run {i} failed with exit code {code}")
            poisoned += "forged" in (root / "out" / "gen" / "a.txt").read_text()
            shutil.rmtree(root / "out", ignore_errors=True)
    print(f"bench: PR stream: {rounds} PR builds forging main's next outputs; forged outputs restored by main: "
          f"{poisoned} (goal 0)")


def frozen_store(deadline_s: float) -> None:
    """A run against a store that freezes once the run found it up (it accepts connections and never answers),
    against the same run without a store."""
    from tests.fixture_pipelines import make_project
    from tests.frozen_store import FreezingS3
    from tests.test_runner import GOOD

    server = FreezingS3(deadline_s)  # answers the run's first look at it, then never again
    try:
        with tempfile.TemporaryDirectory(prefix="hilci-frozen-") as tmp:
            root = make_project(Path(tmp) / "p", GOOD)
            env = _fixture_env(Path(tmp))
            _, without, code_a, _ = hilci_run(root, {**env, "HILCI_STORE": ""}, "", 300)
            _, frozen, code_b, out = hilci_run(root, {**env, **server.env()}, "", 300)
    finally:
        server.close()
    if code_a or code_b:
        raise SystemExit(f"bench: the frozen-store runs failed ({code_a}, {code_b}): {out[-1500:]}")
    print(f"bench: store frozen mid-run (accepts, never answers): the run took {frozen - without:+.1f} s over the same run "
          f"without a store; deadline {deadline_s:g} s (goal: at most one deadline plus ~1 s, however many calls)")


def history_scale(sizes: list[int], boards: int = 4) -> None:
    """Gate, `hilci history`, trends and gc's protected keys on a folder store holding `n` commits x `boards`
    (one commit an hour: 10,000 commits span 14 months)."""
    from hilci.pipeline.sections import GateSettings
    from hilci.store import gates, history
    from hilci.store.backend import Store
    from hilci.store.gc import protected_keys

    names = [f"board{b}" for b in range(boards)]
    settings = GateSettings()
    timings = {}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="hilci-history-") as tmp:
            store = Store(Path(tmp).as_uri())
            rng = random.Random(5)
            for i in range(n):
                for board in names:
                    record = history.make_record(
                        origin={"commit": f"{i:040x}", "branch": "main", "build": f"#{i}"}, board=board, rig="",
                        stage="hil", start=1e9 + i * 3600, duration_s=1.0, status="passed", key=f"{i:064x}",
                        environment={}, measurements={"imu.jitter.p99": {"value": 5 + rng.gauss(0, 0.1),
                                                                          "unit": "ms"}})
                    history.append(store, record, Path(tmp))
            now = dict(record, commit="f" * 40, build="#new")
            t0 = time.perf_counter()
            for board in names:
                base = history.recent(store, "main", board, stage="hil", last=settings.window,
                                      keep=lambda r: r["status"] == "passed")
                gates.judge_record(dict(now, board=board), base.records, "main", settings)
            t1 = time.perf_counter()
            for board in history.boards(store, "main"):
                history.recent(store, "main", board, last=30, keep=lambda r: not r.get("cached"))
            t2 = time.perf_counter()
            for board in names:
                history.recent(store, "main", board, stage="hil", last=20, keep=lambda r: not r.get("cached"))
            t3 = time.perf_counter()
            protected_keys(store, ("main",))
            t4 = time.perf_counter()
        timings[n] = (t1 - t0, t2 - t1, t3 - t2, t4 - t3)
        print(f"bench: history at {n} commits x {boards} boards (folder store): gate {timings[n][0] * 1e3:.0f} ms, "
              f"hilci history {timings[n][1] * 1e3:.0f} ms, trends {timings[n][2] * 1e3:.0f} ms, "
              f"gc's protected keys {timings[n][3] * 1e3:.0f} ms")
    small, large = min(sizes), max(sizes)
    ratio = sum(timings[large]) / max(sum(timings[small]), 1e-9)
    print(f"bench: history time at {large} against {small} commits: ratio {ratio:.2f} (goal flat within 2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny: fixture pipeline, file store (make test)")
    parser.add_argument("--commits", type=int, default=40)
    parser.add_argument("--stages", default="train,quantize,convert,hil",
                        help="stages each commit runs (default: %(default)s; the build stage's unit tests would "
                             "dominate the stream)")
    parser.add_argument("--noise", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per hilci run")
    parser.add_argument("--parts", default="gates,prs,frozen,history,stream",
                        help="what the full mode runs, comma-separated (default: %(default)s)")
    args = parser.parse_args()
    if args.quick:
        commit_stream(4, quick=True, stages="", timeout_s=300)
        regression_detection(8)
        pr_stream(2)
        frozen_store(1.0)
        history_scale([100, 400])
        return
    parts = set(args.parts.split(","))
    if "gates" in parts:
        regression_detection(args.noise)
    if "prs" in parts:
        pr_stream(10)
    if "frozen" in parts:
        frozen_store(5.0)
    if "history" in parts:
        history_scale([100, 1000, 10000])
    if "stream" in parts:
        if shutil.which("git") is None:
            raise SystemExit("bench: git is missing")
        commit_stream(args.commits, quick=False, stages=args.stages, timeout_s=args.timeout)


if __name__ == "__main__":
    main()
