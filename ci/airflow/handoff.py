"""What an Airflow pod hands on, through the store: its JUnit files, and the run's summary as XCom.

Each pod has its own workspace (no Jenkins stash), so after `hilci stage` the pod uploads its JUnit under
`airflow-runs/<run id>/junit/` in the store; the gathering stage (`report`) downloads them all first, then
uploads reports/junit.xml and reports/index.html and returns the summary (counts, verdict, their store URIs)
as its XCom. Stage outputs need nothing here: `hilci stage` restores what it needs from the stage cache.
A nightly soak's pod uploads its soak JUnit the same way and returns its own summary (`soak`).
Runs in the pod's image, where Airflow is not installed:
`python -m hilci.airflow.handoff plan|push|pull|publish|soak`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from hilci.errors import UsageError
from hilci.results.junit import read_cases
from hilci.store.backend import StoreUnavailable

XCOM_FILE = "/airflow/xcom/return.json"  # what the operator's XCom sidecar reads from the base container
RUN_ENV = "HILCI_RUN_ID"
PREFIX = "airflow-runs"
JUNIT_DIR = "reports/junit"
MERGED = ("reports/junit.xml", "reports/index.html")


def run_prefix(run_id: str) -> str:
    """The store folder of one DAG run (run ids hold ':' and '+', which object keys had better not)."""
    return f"{PREFIX}/{re.sub(r'[^A-Za-z0-9._-]', '_', run_id)}"


def summary(junit: Path, junit_uri: str, report_uri: str) -> dict:
    """The per-run summary Airflow shows as the report task's XCom (Airflow has no JUnit view)."""
    counts = {"tests": 0, "passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for case in read_cases(junit):
        counts["tests"] += 1
        counts[str(case.status)] = counts.get(str(case.status), 0) + 1
    verdict = "passed" if counts["tests"] and not (counts["failed"] or counts["error"]) else "failed"
    return {"verdict": verdict, "counts": counts, "junit": junit_uri, "report": report_uri}


def write_xcom(value: dict, path: str = XCOM_FILE) -> None:
    target = Path(os.environ.get("HILCI_XCOM_FILE", path))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(value))


def _pipeline(root: Path):
    from hilci.pipeline.project import open_project

    return open_project(start=root, announce=False).pipeline


def _store(root: Path):
    from hilci.stage.run import load_config
    from hilci.store.backend import Store, configured_url

    url = configured_url(root, load_config(root, _pipeline(root)))
    if url is None:
        raise UsageError("no store configured (the hilci-store Secret sets HILCI_STORE): "
                         "Airflow's pods hand JUnit and outputs on through the store")
    return Store(url)


def push(root: Path, run_id: str) -> list[str]:
    """Upload this pod's JUnit files; the names uploaded."""
    store, names = _store(root), []
    try:
        for path in sorted((root / JUNIT_DIR).glob("*.xml")):
            store.write_bytes(f"{run_prefix(run_id)}/junit/{path.name}", path.read_bytes())
            names.append(path.name)
    finally:
        store.close()
    return names


def pull(root: Path, run_id: str) -> list[str]:
    """Download every JUnit file this run's pods uploaded into reports/junit/."""
    store, names = _store(root), []
    out = root / JUNIT_DIR
    out.mkdir(parents=True, exist_ok=True)
    try:
        for item in store.list(f"{run_prefix(run_id)}/junit/"):
            name = Path(item.rel).name
            data = store.read_bytes(item.rel)
            if data is not None and name.endswith(".xml"):
                (out / name).write_bytes(data)
                names.append(name)
    finally:
        store.close()
    return names


def merge_all(root: Path) -> Path | None:
    """reports/junit.xml with every stage's JUnit, the gathering stage's own included, in pipeline order: what
    `hilci run` leaves after its last stage (the report stage merged the others before it had one)."""
    from hilci.results.junit import merge

    folder = root / JUNIT_DIR
    files = [p for stage in _pipeline(root).stages
             for p in sorted({*folder.glob(f"{stage.name}.xml"), *folder.glob(f"{stage.name}-*.xml")})]
    return merge(files, root / MERGED[0]) if files else None


def publish(root: Path, run_id: str) -> dict:
    """Upload the merged JUnit and the HTML report; the summary with their store URIs."""
    merge_all(root)
    store = _store(root)
    uris = {}
    try:
        for rel in MERGED:
            path = root / rel
            if path.is_file():
                key = f"{run_prefix(run_id)}/{Path(rel).name}"
                store.write_bytes(key, path.read_bytes())
                uris[rel] = f"{store.display.rstrip('/')}/{key}"
    finally:
        store.close()
    junit = root / MERGED[0]
    if not junit.is_file():
        return {"verdict": "failed", "counts": {}, "junit": "", "report": "", "why": f"no {MERGED[0]}"}
    return summary(junit, uris.get(MERGED[0], ""), uris.get(MERGED[1], ""))


def soak_summary(root: Path, run_id: str, task: str, exit_code: int) -> dict:
    """A soak pod's XCom: its JUnit (one testcase per figure) uploaded, counted, and its store URI; failed when
    `hilci soak` exited non-zero (a failed figure, or bad input) whatever the JUnit says."""
    names = push(root, run_id)
    store = _store(root)
    try:
        prefix = f"{store.display.rstrip('/')}/{run_prefix(run_id)}/junit"
    finally:
        store.close()
    junit = root / JUNIT_DIR / f"{task}.xml"
    if not junit.is_file():
        result = {"verdict": "failed", "counts": {}, "junit": "", "report": "", "why": f"no {JUNIT_DIR}/{task}.xml"}
    else:
        result = summary(junit, f"{prefix}/{junit.name}" if junit.name in names else "", "")
    if exit_code != 0:
        result["verdict"] = "failed"
    return {"task": task, "exit_code": exit_code, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hilci.airflow.handoff")
    parser.add_argument("step", choices=("plan", "push", "pull", "publish", "soak"))
    parser.add_argument("--task", default="", help="the task id (push, soak)")
    parser.add_argument("--exit-code", type=int, default=0, help="what `hilci stage` or `hilci soak` returned (push, soak)")
    args = parser.parse_args(argv)
    run_id = os.environ.get(RUN_ENV, "")
    if not run_id:
        print(f"hilci: error: ${RUN_ENV} is not set (the DAG sets it to the run's id)", file=sys.stderr)
        return 2
    try:
        return _step(args, run_id, Path.cwd())
    except (UsageError, StoreUnavailable, OSError, ValueError) as exc:  # store faults and ours: one line, exit 2
        print(f"hilci: error: handoff {args.step}: {exc}", file=sys.stderr)
        return 2


def _step(args, run_id: str, root: Path) -> int:
    if args.step == "plan":
        plan = json.loads((root / "reports/plan.json").read_text())
        push(root, run_id)
        write_xcom({"cached": plan.get("cached", []), "commit": plan.get("commit", ""), "store": plan.get("store", "")})
    elif args.step == "push":
        names = push(root, run_id)
        write_xcom({"task": args.task, "exit_code": args.exit_code, "junit": names})
    elif args.step == "soak":
        write_xcom(soak_summary(root, run_id, args.task, args.exit_code))
    elif args.step == "pull":
        print(f"pulled {len(pull(root, run_id))} JUnit file(s) of run {run_id}")
    else:
        write_xcom(publish(root, run_id))
    return 0


if __name__ == "__main__":
    sys.exit(main())
