"""`hilci plan` / `hilci run -n`: for each stage, run or cached, and why (a diff of the recorded key parts).

In Jenkins the plan runs first on a CPU pod (`hilci plan --json --jenkins`): keys need only the checkout (each
stage's place comes from its pod template and image, tool versions from the lock: hilci.store.place), so a stage
whose passed entry exists is never given a GPU or a Jetson.
With `--jenkins` each cached stage's JUnit is written too, marked "cached from <commit> (<build>)".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from hilci.pipeline.model import Pipeline, Stage
from hilci.stage.run import junit_path
from hilci.store.backend import CorruptBlob, StoreUnavailable
from hilci.store.keys import cacheable_on, explain
from hilci.store.place import LOCAL, POD
from hilci.store.session import StoreSession

RUN, CACHED = "run", "cached"


@dataclass
class PlanRow:
    stage: str
    board: str
    id: str  # what the Jenkinsfile calls it: "stage" or "stage-board"
    decision: str
    key: str = ""
    why: list[str] = field(default_factory=list)
    cached_from: str = ""


def make_plan(session: StoreSession, stages: list[Stage], *, rig: Path | None, jenkins: bool = False
              ) -> list[PlanRow]:
    """The decision for each stage (and each board, in Jenkins) against the store's entries."""
    rows: list[PlanRow] = []
    pipeline: Pipeline = session.pipeline
    root = session.root
    for stage in stages:
        if stage.matrix and jenkins:
            places = [(b.name, root / b.rig) for b in pipeline.boards]
        else:
            places = [("local", root / rig if rig is not None else None)]
        for board, rig_file in places:
            ident = f"{stage.name}-{board}" if stage.matrix and board != "local" else stage.name
            row = PlanRow(stage.name, board, ident, RUN)
            rows.append(row)
            if not stage.cacheable:
                row.why = ["not cacheable: always runs"]
                continue
            if not cacheable_on(stage, rig_file):
                row.why = [f"real rig {rig_file.relative_to(root) if rig_file else '(none)'}: always reruns"]
                continue
            row.key, parts = session.key(stage, rig_file, board, POD if jenkins else LOCAL)
            if session.cache is None:
                row.why = ["no cache: " + ("store unavailable" if session.store is None else "--no-cache")]
                continue
            try:
                found = session.cache.find(stage, row.key)
                record, ns = found if found else (None, "")
                if record is not None and not session.cache.blobs_present(record, ns):
                    session.cache.discarded.append(f"{stage.name}: cache entry {row.key[:12]} discarded "
                                                   "(a blob is missing); rebuilding")
                    record = None
                if record is not None:
                    origin = f"cached from {record['commit'][:12]} ({record['build']})"
                    row.decision, row.cached_from, row.why = CACHED, origin, [f"{origin}: inputs unchanged"]
                    if jenkins:
                        _write_cached_junit(session, stage, board, record, origin, ns)
                    continue
                latest = session.cache.latest_record(stage, board if stage.matrix else None)
            except StoreUnavailable as exc:
                session.cache.unavailable = str(exc)
                row.why = [f"store unavailable ({exc})"]
                continue
            if latest is None:
                row.why = ["no cached entry yet"]
            else:
                row.why = explain(latest.get("parts"), parts) or ["entry missing (evicted or never stored)"]
    return rows


def _write_cached_junit(session: StoreSession, stage: Stage, board: str, record: dict, origin: str,
                        ns: str = "") -> None:
    from hilci.store.cache import Hit

    try:
        data = session.store.get_blob(record["junit"], (ns, "") if ns else ("",), session.trust.write_ns)
    except CorruptBlob as exc:
        session.cache.discarded.append(f"{stage.name}: cached JUnit unreadable ({exc})")
        return
    out = junit_path(session.root, stage, board)
    out.parent.mkdir(parents=True, exist_ok=True)
    session.write_cached_junit(Hit(stage.name, record["key"], record, {}, data, b""), out)


def as_json(session: StoreSession, rows: list[PlanRow]) -> dict:
    return {"store": session.display, "commit": session.origin["commit"], "branch": session.origin["branch"],
            "cached": [r.id for r in rows if r.decision == CACHED],
            "stages": [asdict(r) for r in rows]}


def as_text(session: StoreSession, rows: list[PlanRow], max_why: int = 4) -> str:
    head = (f"plan against {session.display} (commit {session.origin['commit'][:12]} on "
            f"{session.origin['branch']})")
    lines = [head]
    width = max([len(r.id) for r in rows] + [5])
    for r in rows:
        why = r.why[:max_why] + ([f"... {len(r.why) - max_why} more"] if len(r.why) > max_why else [])
        lines.append(f"  {r.id:<{width}}  {r.decision:<6}  {why[0] if why else ''}")
        lines += [f"  {'':<{width}}  {'':<6}  {w}" for w in why[1:]]
    runs = sum(r.decision == RUN for r in rows)
    lines.append(f"{runs} to run, {len(rows) - runs} cached")
    return "\n".join(lines) + "\n"
