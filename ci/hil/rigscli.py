"""`hilci rigs`: every rig of the fleet (the state in `$HILCI_LOCK_DIR/fleet`, `hilci.hil.fleet`): in service or
quarantined and why, who holds it and since when, lease time left, queue, last health, last soak, failure
counts; `hilci rigs release RIG` puts a quarantined rig back in service; `hilci rigs check RIG.yaml` asks a real
rig's devices now and, when all answer, brings it back too."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def register(subparsers) -> None:
    p = subparsers.add_parser("rigs", help="the rig fleet: in service or quarantined, holders, leases, queues",
                              description=__doc__)
    p.add_argument("action", nargs="?", choices=["release", "check"],
                   help="release RIG: back in service; check RIG.yaml: a health check now (back in service if it "
                        "passes)")
    p.add_argument("rig", nargs="?", help="release: the rig's `name:`; check: its YAML")
    p.add_argument("--json", action="store_true", help="one JSON object: {rigs: [...]}")
    p.add_argument("--lock-dir", default=None, metavar="DIR",
                   help="the lock folder (default $HILCI_LOCK_DIR, else /tmp/hilci-locks; on a node /run/hilci/locks)")
    p.set_defaults(func=rigs)


def rigs(args) -> int:
    from hilci.errors import UsageError
    from hilci.hil import fleet

    where = fleet.folder(Path(args.lock_dir) if args.lock_dir else None)
    if args.action == "release":
        if not args.rig:
            raise UsageError("hilci rigs release RIG: name the rig to release")
        try:
            print(fleet.release(args.rig, "hilci rigs release", where))
        except fleet.UnknownRig:
            known = ", ".join(sorted(fleet.read_all(where))) or "none"
            raise UsageError(f"hilci rigs release {args.rig}: no such rig in {where} (known: {known})") from None
        return 0
    if args.action == "check":
        if not args.rig:
            raise UsageError("hilci rigs check RIG.yaml: name the rig file to check")
        return check(Path(args.rig), where)
    if args.rig:
        raise UsageError(f"hilci rigs {args.rig}: unknown action (use `hilci rigs` or `hilci rigs release RIG`)")
    rows = [view(state, where) for state in fleet.read_all(where).values()]
    if args.json:
        print(json.dumps({"folder": str(where), "rigs": rows}, indent=2))
        return 0
    if not rows:
        print(f"no rigs known in {where}: a rig is listed once a session or the device plugin has used it")
        return 0
    print(table(rows))
    for row in rows:  # the table clips long reasons: each in full below it
        if not row["in_service"]:
            print(f"{row['rig']}: quarantined: {row['quarantined_reason']}")
        elif row["cap_reached"]:
            print(row["cap_reached"])
    return 0


def ago(at: float | None, now: float) -> str:
    if not at:
        return ""
    s = max(0, now - at)
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago" if s < 7200 else f"{s / 3600:.1f} h ago"


def view(state: dict[str, Any], where: Path) -> dict[str, Any]:
    """One rig as `hilci rigs` shows it (and --json gives it)."""
    from hilci.hil import lease

    now = time.time()
    held = state.get("lease")
    free = lease.vacancy(held, where, now) if held else "free"
    waiters = [w for w in state.get("waiters", []) if lease.present(where, w["token"])]
    q = state.get("quarantined")
    health = state.get("last_health")
    soak = state.get("last_soak")
    return {
        "rig": state["rig"], "path": state.get("path", ""),
        "in_service": not q, "quarantined_reason": q["reason"] if q else "", "quarantined_since": q["since"] if q else None,
        "cap_reached": state.get("cap_reached", ""),
        "holder": None if not held else {"pid": held["pid"], "host": held["host"], "label": held["label"],
                                         "since": held["since"], "alive": not free},
        "lease_left_s": None if not held else round(lease.left_s(held, now), 1),
        "lease_note": "" if free == "free" else free,
        "queue": [{"pid": w["pid"], "host": w["host"], "label": w["label"], "since": w["since"]} for w in waiters],
        "last_health": health, "last_soak": soak,
        "failures": {"consecutive": state.get("consecutive", 0), "probe_streak": state.get("probe_streak", 0),
                     "infrastructure": state.get("infrastructure", 0),
                     "code": state.get("code", 0), "runs": state.get("runs", 0),
                     "probes_failed": state.get("probes_failed", 0)},
        "quarantine": state.get("quarantine"),
    }


def cells(row: dict[str, Any], now: float) -> list[str]:
    if row["in_service"]:
        status = "in service" + (f" (cap: {row['cap_reached'].split(': ', 1)[-1]})" if row["cap_reached"] else "")
    else:
        status = f"QUARANTINED {ago(row['quarantined_since'], now)}: {row['quarantined_reason']}"
    h = row["holder"]
    holder = "-" if h is None else f"pid {h['pid']}@{h['host']} since {ago(h['since'], now)}" + (
        "" if h["alive"] else f" ({row['lease_note']})")
    left = "-" if row["lease_left_s"] is None else f"{max(row['lease_left_s'], 0):.0f} s"
    queue = str(len(row["queue"])) + (f" ({', '.join(str(w['pid']) for w in row['queue'])})" if row["queue"] else "")
    hl = row["last_health"]
    health = "never" if not hl else (f"ok {ago(hl['at'], now)}" if hl["ok"] else
                                     f"FAILED {ago(hl['at'], now)}: {hl['reason']}") + f" ({hl['by']})" if hl else "never"
    soak = row["last_soak"]
    soak_text = "never" if not soak else f"{soak.get('verdict', '?')} {ago(soak.get('at'), now)}"
    f = row["failures"]
    after = (row["quarantine"] or {}).get("after")
    failures = (f"{f['consecutive']}{f'/{after}' if after else ''} in a row, {f['infrastructure']} infra, "
                f"{f['code']} code, {f['runs']} runs" + (f", {f['probe_streak']} failed probes in a row"
                                                         if f["probe_streak"] else ""))
    return [row["rig"], status, holder, left, queue, health, soak_text, failures]


def table(rows: list[dict[str, Any]]) -> str:
    now = time.time()
    head = ["rig", "state", "holder", "lease left", "queue", "last health", "last soak", "failures"]
    body = [cells(r, now) for r in rows]
    widths = [min(max(len(line[i]) for line in [head, *body]), 60) for i in range(len(head))]
    clip = [[c if len(c) <= 60 else c[:57] + "..." for c in line] for line in [head, *body]]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in clip)


def check(path: Path, where: Path) -> int:
    """Ask every device of a real rig once (as the device plugin's probe does, never while a session holds the
    rig); record it; a pass brings the rig back in service whatever took it out. 0 healthy, 1 not."""
    from hilci.errors import UsageError
    from hilci.hil import fleet, health
    from hilci.hil.locks import DeviceLock, RigLock
    from hilci.hil.rig import RigError, load_rig

    try:
        rig = load_rig(path)
    except RigError as exc:
        raise UsageError(str(exc)) from None
    if rig.emulate:
        raise UsageError(f"{path}: an emulated rig's devices exist only inside a test session: nothing to check")
    rig_lock = RigLock([d.port for d in rig.devices.values()], rig.name, folder=where.parent)
    if not rig_lock.try_for_probe():
        print(f"rig {rig.name}: held by a test session ({rig_lock.path}): not checked")
        return 1
    try:
        timeout = rig.settings.health_timeout_s
        problems = [health.probe(d, d.port, DeviceLock(d.port, d.label, timeout=0.0, folder=where.parent), timeout)
                    for d in rig.devices.values()]
    finally:
        rig_lock.release()
    problem = "; ".join(p for p in problems if p)
    fleet.register(rig.name, str(path.resolve()), rig.quarantine, where)
    line = fleet.record_health(rig.name, problem, "hilci rigs check", where, asked=True)
    print(f"rig {rig.name}: " + (f"FAILED: {problem}" if problem else "every device answered"))
    if line:
        print(line)
    return 1 if problem else 0
