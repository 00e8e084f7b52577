"""Each rig's health over its last runs, from the history: so a sick rig is seen before it fails a release.

Per board (a rig): its HIL stage's last N runs (pass rate, the share that failed for infrastructure, how many
were retried) and its last N soaks (verdict, when, and each soak figure's value per soak). A rig is flagged
`sick` with why: infrastructure failures in at least `SICK_INFRA_PCT` % of its runs, or its last soak failed.
"""

from __future__ import annotations

from hilci.store import history
from hilci.store.backend import Store, StoreUnavailable

SICK_INFRA_PCT = 20.0
RUNS = 20
SOAK_STAGE = "soak"


def _measured(records: list[dict]) -> list[dict]:
    return [r for r in records if not r.get("cached")]


def rig_health(store: Store, branch: str, ns: str = "", *, stage: str = "hil", last: int = RUNS) -> list[dict]:
    """One summary per board with history on `branch`: runs, rates, soaks (oldest first), sick and why."""
    out = []
    try:
        boards = history.boards(store, branch, ns)
    except StoreUnavailable:
        return []
    for board in sorted(boards):
        try:
            runs = _measured(history.recent(store, branch, board, ns, stage=stage, last=last).records)
            soaks = history.recent(store, branch, board, ns, stage=SOAK_STAGE, last=last).records
        except StoreUnavailable:
            return out
        if not runs and not soaks:
            continue
        out.append(summary(board, runs, soaks))
    return out


def summary(board: str, runs: list[dict], soaks: list[dict]) -> dict:
    """The figures of one rig from its records (oldest first)."""
    n = len(runs)
    passed = sum(r.get("status") == "passed" for r in runs)
    infra = sum(bool((r.get("failures") or {}).get("infrastructure")) for r in runs)
    retried = sum(int((r.get("failures") or {}).get("retried", 0)) for r in runs)
    figures: dict[str, dict] = {}
    for s in soaks:
        for name, fields in (s.get("measurements") or {}).items():
            value = fields.get("value")
            if isinstance(value, (int, float)) and value == value:  # not NaN: a figure that was measured
                entry = figures.setdefault(name, {"unit": str(fields.get("unit") or ""), "values": []})
                entry["values"].append(float(value))
                entry["verdict"] = fields.get("verdict", "")
    row = {"board": board, "runs": n,
           "pass_pct": 100.0 * passed / n if n else None,
           "infra_pct": 100.0 * infra / n if n else None,
           "retried": retried,
           "outcomes": ["infrastructure" if (r.get("failures") or {}).get("infrastructure") else
                        str(r.get("status", "")) for r in runs],
           "soaks": [{"status": s.get("status", ""), "start_utc": s.get("start_utc", ""),
                      "commit": str(s.get("commit", ""))[:7]} for s in soaks],
           "soak_figures": figures}
    why = []
    if n and row["infra_pct"] >= SICK_INFRA_PCT:
        why.append(f"{infra} of its last {n} runs failed for infrastructure")
    if soaks and soaks[-1].get("status") != "passed":
        failed = [k for k, f in figures.items() if f.get("verdict") == "fail"]
        why.append(f"its last soak {soaks[-1].get('status', '?')}" + (f" ({', '.join(sorted(failed))})" if failed else ""))
    row["sick"] = "; ".join(why)
    return row
