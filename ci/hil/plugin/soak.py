"""`--hil-soak SECONDS`: run the selected HIL tests round after round in ONE session until the time is up, so the
emulators, devices and the engine live as long as the soak (a leak or a drift shows), writing one JSON line per
test run to `--hil-soak-out` (round, time, outcome, failure class, measurements). `--hil-soak-fault` injects a
session-long fault (the per-test `--hil-fault` is cleared after each test). `hilci soak` drives this.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hilci.hil.faults import FaultError, parse_targeted
from hilci.hil.plugin.fixtures import KEY
from hilci.results.junit import FAILURE_CLASS_PROPERTY
from hilci.results.measurements import parse_properties


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil")
    group.addoption("--hil-soak", type=float, default=0.0, metavar="SECONDS",
                    help="loop the selected tests until SECONDS have passed (at least one round)")
    group.addoption("--hil-soak-out", default="", metavar="FILE", help="one JSON line per test run of the soak")
    group.addoption("--hil-soak-fault", action="append", default=[], metavar="DEVICE:KIND[:k=v,...]",
                    help="a fault injected once when the session starts and kept for the whole soak")


def pytest_sessionstart(session: pytest.Session) -> None:
    texts = session.config.getoption("hil_soak_fault")
    hil = session.config.stash.get(KEY, None)
    if not texts or hil is None:
        return
    from hilci.hil.emulators.process import send

    kinds = {d.name: d.kind for d in hil.devices()}
    for text in texts:
        try:
            name, fault, _ = parse_targeted(text, kinds, tests=False)
        except FaultError as exc:
            raise pytest.UsageError(f"--hil-soak-fault {exc}") from None
        device = next(d for d in hil.devices() if d.name == name)
        control = hil.emulation.controls.get(device.label)
        if not control:
            raise pytest.UsageError(f"--hil-soak-fault {text}: {device.label} is not emulated")
        send(control, {"cmd": "fault", **fault.to_dict()})


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session):
    seconds = session.config.getoption("hil_soak")
    if not seconds or session.config.stash.get(KEY, None) is None:
        return None
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        raise session.Interrupted(f"{session.testsfailed} error(s) during collection")
    if session.config.option.collectonly:
        return True
    from hilci.hil.plugin.retry import ATTEMPT_KEYS

    out_path = session.config.getoption("hil_soak_out")
    out = Path(out_path).open("a") if out_path else None
    reports: dict[str, list] = {}
    session.config.stash[REPORTS] = reports
    start = time.monotonic()
    items = session.items
    rounds = 0
    try:
        while items:
            rounds += 1
            for i, item in enumerate(items):
                # a round ends with a full teardown (nextitem None): pytest sets an item up afresh only after
                # it was torn down, and the rig's emulators live in the session's HilSession, not in fixtures
                nextitem = items[i + 1] if i + 1 < len(items) else None
                for key in ATTEMPT_KEYS:  # a fresh attempt every round, as retry does between attempts
                    if key in item.stash:
                        del item.stash[key]
                item.user_properties[:] = []
                reports[item.nodeid] = []
                item.ihook.pytest_runtest_protocol(item=item, nextitem=nextitem)
                if out is not None:
                    out.write(json.dumps(_run(item, reports[item.nodeid], rounds, time.monotonic() - start)) + "\n")
                    out.flush()
                if session.shouldfail or session.shouldstop:
                    raise session.Interrupted(str(session.shouldfail or session.shouldstop))
            if time.monotonic() - start >= seconds:
                break
    finally:
        if out is not None:
            out.close()
    return True


REPORTS = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = yield
    reports = item.config.stash.get(REPORTS, None)
    if reports is not None and item.nodeid in reports:  # a retry's attempt starts again at setup: the last counts
        reports[item.nodeid] = [report] if report.when == "setup" else [*reports[item.nodeid], report]
    return report


def _run(item: pytest.Item, reports: list, round_no: int, t: float) -> dict:
    """One test run of the soak as plain data."""
    failed = [r for r in reports if r.failed]
    outcome = "failed" if failed else ("skipped" if any(r.skipped for r in reports) else "passed")
    props = dict(p for r in reports for p in r.user_properties)
    measurements = parse_properties([(k, str(v)) for k, v in item.user_properties])
    message = ""
    if failed:
        crash = getattr(failed[0].longrepr, "reprcrash", None)
        message = (crash.message if crash is not None else str(failed[0].longrepr or "")).strip().splitlines()[-1:]
        message = message[0][:300] if message else "failed"
    return {"round": round_no, "t": round(t, 3), "mono": time.monotonic(), "test": item.nodeid, "outcome": outcome,
            "failure_class": props.get(FAILURE_CLASS_PROPERTY, ""), "message": message,
            "measurements": measurements}
