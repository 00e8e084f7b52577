"""A test session's part in the fleet (`hilci.hil.fleet`, `hilci.hil.lease`): the rigs it may use, their leases,
and what its run says about each rig.

- `--hil-pick`: of the `--rig` rigs, the session uses one: the first in service whose lease it gets, waiting in
  every rig's queue up to `lock_timeout_s`; a quarantined rig is skipped, with why. Without it every rig given
  is used, and a real rig's lease is taken (an emulated rig's emulators are the session's own: no lease).
- A rig given explicitly that is quarantined is not used: its tests fail as `infrastructure`, naming why.
- At the end each rig in service gets its run recorded: failures that were the rig's count toward quarantine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hilci.hil import fleet, lease
from hilci.hil.rig import Rig
from hilci.results.junit import CODE_FAILURE, INFRASTRUCTURE


class FleetUse:
    """The fleet as one session sees it: its leases, the rigs out of service and each rig's failures."""

    def __init__(self, rigs: list[Rig], pick: bool, where: Path | None = None):
        self.rigs = rigs
        self.pick = pick
        self.where = where if where is not None else fleet.folder()
        self.me: lease.Presence | None = None
        self.leases: list[lease.Lease] = []
        self.out_of_service: dict[str, str] = {}  # rig name -> why it is not used
        self.lost: dict[str, str] = {}  # rig name -> why its lease is no longer ours
        self.failures: dict[str, dict[str, int]] = {r.name: {INFRASTRUCTURE: 0, CODE_FAILURE: 0} for r in rigs}
        self.last: dict[str, str] = {}  # rig name -> its last infrastructure failure's first line
        self.lines: list[str] = []  # what the session was told, for its terminal summary

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(f"hil: {line}", flush=True)

    def choose(self) -> list[Rig]:
        """The controller: register the rigs, take their leases; the rigs the session uses."""
        for rig in self.rigs:
            fleet.register(rig.name, str(rig.path.resolve()), rig.quarantine, self.where)
        self.me = lease.Presence(self.where, f"pytest session of pid {os.getpid()}")
        if self.pick:
            return self._pick()
        for rig in self.rigs:
            why = fleet.quarantined(rig.name, self.where)
            if why:
                self.out_of_service[rig.name] = why
                self.say(f"{why}: its tests fail as infrastructure (`hilci rigs release {rig.name}` brings it back)")
            elif not rig.emulate:
                try:
                    self._lease([rig])
                except lease.LeaseTimeout as exc:
                    raise pytest.UsageError(f"rig {rig.name}: {exc}") from None
        return self.rigs

    def _pick(self) -> list[Rig]:
        def skip(state: dict) -> str:
            return fleet.quarantined(state["rig"], self.where)
        try:
            taken = self._lease(self.rigs, skip=skip, told=lambda why: self.say(f"{why}: skipped"))
        except lease.LeaseTimeout as exc:
            if not str(exc).startswith("no rig in service"):
                raise pytest.UsageError(f"--hil-pick: {exc}") from None
            first = self.rigs[0]  # every rig is out of service: its tests say why, as the rig's failures
            self.out_of_service[first.name] = str(exc)
            self.rigs = [first]
            return self.rigs
        self.rigs = [taken]
        return self.rigs

    def _lease(self, rigs: list[Rig], skip=lambda _s: "", told=lambda _why: None) -> Rig:
        wait = max(r.settings.lock_timeout_s for r in rigs)
        held, note = lease.acquire_any([(r.name, r.settings.lease_timeout_s) for r in rigs], self.where, self.me,
                                       wait, skip=skip, told=told)
        if note:
            self.say(f"rig {held.rig}: {note}")
        held.on_lost.append(lambda why, rig=held.rig: self.lost.__setitem__(rig, why))
        self.leases.append(held)
        return next(r for r in rigs if r.name == held.rig)

    # --- what the run says ---------------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A test's final report (a retried test's last attempt only): its failure counts for its rigs."""
        found = getattr(report, "hil_failure_class", "")
        if not report.failed or found not in (INFRASTRUCTURE, CODE_FAILURE):
            return
        rigs = getattr(report, "hil_rigs", None) or [r.name for r in self.rigs]
        for name in dict.fromkeys(rigs):
            if name in self.failures:
                self.failures[name][found] += 1
                if found == INFRASTRUCTURE:
                    crash = getattr(report.longrepr, "reprcrash", None)
                    text = crash.message if crash is not None else str(report.longrepr or "")
                    last = (text.strip().splitlines() or ["failed"])[-1]
                    self.last[name] = last.removeprefix("Failed: ")[:300]

    def finish(self) -> None:
        """Each rig in service gets its run recorded (quarantine counts); the leases go."""
        try:
            for rig in self.rigs:
                if rig.name in self.out_of_service or rig.name not in self.failures:
                    continue
                counts = self.failures[rig.name]
                line = fleet.record_run(rig.name, counts[INFRASTRUCTURE], counts[CODE_FAILURE],
                                        self.last.get(rig.name, ""), self.where)
                if line:
                    self.say(line)
        finally:
            self.close()

    def close(self) -> None:
        for held in self.leases:
            try:
                held.release()
            except OSError:
                pass
        self.leases.clear()
        if self.me is not None:
            self.me.close()
            self.me = None

    # --- xdist workers ---------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"rigs": [r.name for r in self.rigs], "out_of_service": self.out_of_service}

    @staticmethod
    def chosen(rigs: list[Rig], state_file: str) -> tuple[list[Rig], dict[str, str]]:
        data = json.loads(Path(state_file).read_text()).get("fleet") or {}
        names = data.get("rigs") or [r.name for r in rigs]
        return [r for r in rigs if r.name in names], data.get("out_of_service", {})
