"""The HIL session: the rigs of one pytest run and what serves them, each part with its own teardown.

rigs (loaded by the hooks) -> `Emulation` (emulator processes of emulated rigs, shared with xdist workers through
a state file) -> health verdicts (`hilci.hil.health`) -> `HilSession.open`, which each device fixture uses: lock,
open, inject this test's faults, and on every exit clear them, make actuators safe, close and unlock.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hilci.hil import guard, health
from hilci.hil.hostclock import HostClock
from hilci.hil.locks import DeviceBusy, DeviceLock, RigLock
from hilci.hil.plugin.fleetuse import FleetUse
from hilci.hil.plugin.injection import FaultPlan
from hilci.hil.plugin.recovery import PowerMixin
from hilci.hil.rig import Device, Rig
from hilci.hil.safestate import SafeState
from hilci.hil.timing import TimingVerdicts

STATE_ENV = "HILCI_HIL_STATE"
UNHEALTHY = pytest.StashKey[list]()
OPEN_DRIVERS = pytest.StashKey[list]()  # the drivers a test opened: their traffic is its device log
# The devices that carried an injected fault during a test (a --hil-fault, a hil_fault mark or the rig's own
# `faults:`): the device's fault, by construction, so the host is never given the benefit of the doubt there.
FAULTED = pytest.StashKey[list]()
# What the rig did to a test (a device unhealthy at session start, a lock that timed out, a device that did not
# open or answer after the test's faults were cleared): a failure that says so is the rig's (`infrastructure`).
DROPPED = pytest.StashKey[list]()
USED = pytest.StashKey[list]()  # every device a test asked for: what a retry brings back first
EMULATED_TIMEOUT_RETRIES = 2  # an emulated servo a busy host did not schedule in time is asked again


class Emulation:
    """The emulators of every emulated rig, each in its own process, under one temporary folder."""

    def __init__(self, rigs: list[Rig]):
        self.rigs = rigs
        self.ports: dict[str, str] = {}  # device label -> port
        self.controls: dict[str, str] = {}  # device label -> control socket
        self.running: list[Any] = []
        self.folder: Path | None = None

    def start(self) -> None:
        from hilci.hil.emulators.process import EmulatorError, RigEmulators

        self.folder = Path(tempfile.mkdtemp(prefix="hilci-session-"))
        for rig in self.rigs:
            if not rig.emulate:
                continue
            emus = RigEmulators(rig, self.folder / rig.name)
            emus.folder.mkdir(parents=True, exist_ok=True)
            self.running.append(emus)
            try:
                emus.start()
            except EmulatorError as exc:
                raise pytest.UsageError(f"{rig.path}: {exc}") from None
            for name, info in emus.ports().items():
                self.ports[f"{rig.name}:{name}"] = info["port"]
                self.controls[f"{rig.name}:{name}"] = info["control"]

    def pids(self) -> list[int]:
        return [int(info["pid"]) for emus in self.running for info in emus.ports().values()]

    def stop(self) -> None:
        for emus in self.running:
            emus.stop()
        self.running.clear()
        if self.folder is not None:
            try:
                for child in self.folder.iterdir():
                    child.unlink() if child.is_file() else child.rmdir()
                self.folder.rmdir()
            except OSError:
                pass


class HilSession(PowerMixin):
    """The rigs of this pytest session, their ports, health verdicts, locks, faults and safe state."""

    def __init__(self, rigs: list[Rig], faults: FaultPlan, fleet: FleetUse | None = None):
        self.rigs = rigs
        self.fleet = fleet if fleet is not None else FleetUse(rigs, pick=False)
        self.faults = faults
        self.emulation = Emulation(rigs)
        self.health: dict[str, str] = {}  # device label -> "" (answered) or the failure message
        self.locks: dict[str, DeviceLock] = {}
        self.rig_locks: list[RigLock] = []  # held for the whole session: no health probe between tests
        self.safe = SafeState()
        self.state_file: Path | None = None
        self.timing = TimingVerdicts(None, emulated=all(r.emulate for r in rigs))

    # --- what the rigs hold ---------------------------------------------------------------------------
    def devices(self, driver: str | None = None) -> list[Device]:
        return [d for rig in self.rigs for d in rig.devices.values() if driver is None or d.driver == driver]

    def device(self, label: str) -> Device:
        rig_name, _, name = label.partition(":")
        for rig in self.rigs:
            if rig.name == rig_name and name in rig.devices:
                return rig.devices[name]
        raise KeyError(label)

    def rig(self, name: str) -> Rig:
        return next(r for r in self.rigs if r.name == name)

    def port(self, device: Device) -> str:
        return self.emulation.ports.get(device.label, device.port)

    def lock(self, device: Device) -> DeviceLock:
        if device.label not in self.locks:
            timeout = self.rig(device.rig).settings.lock_timeout_s
            self.locks[device.label] = DeviceLock(self.port(device), f"{device.name} at {self.port(device)}",
                                                  timeout)
        return self.locks[device.label]

    # --- controller and workers -----------------------------------------------------------------------
    def start(self) -> None:
        """The controller: hold the real rigs, start the emulators, ask every device once, publish both to xdist
        workers (which run inside the controller's session, so its rig locks cover them)."""
        self.hold_rigs()
        self.emulation.start()
        self.timing.clock = HostClock(self.emulation.folder / "hostclock.sock")
        try:
            self.timing.clock.start(watch=self.emulation.pids())
        except RuntimeError as exc:  # timing verdicts stay strict without the host's figure; say so once
            self.timing.clock = None
            print(f"hil: {exc}; timing verdicts are judged without the host's latency")
        self.verify_power()
        in_service = [d for d in self.devices() if d.rig not in self.fleet.out_of_service]
        self.health = health.check(in_service, self.port, self.lock,
                                   lambda d: self.rig(d.rig).settings.health_timeout_s)
        self.cycle_sick()
        self.note_health()
        for device in self.devices():
            why = self.fleet.out_of_service.get(device.rig)
            if why:  # never opened: each of its tests fails as the rig's, naming why
                self.health[device.label] = why
        self.state_file = self.emulation.folder / "state.json"
        clock = str(self.timing.clock.path) if self.timing.clock else ""
        self.state_file.write_text(json.dumps({"ports": self.emulation.ports, "controls": self.emulation.controls,
                                               "health": self.health, "hostclock": clock,
                                               "fleet": self.fleet.state()}))
        os.environ[STATE_ENV] = str(self.state_file)

    def cycle_sick(self) -> None:
        """A device that did not answer at session start, on a rig with a switch that powers it: power-cycled
        and asked again before its tests are given up (one cycle per switch)."""
        cycled: dict[str, tuple[str, str]] = {}
        for device in self.devices():
            first = self.health.get(device.label, "")
            switch = self.switch(device) if first else None
            if switch is None:
                continue
            if switch.name in cycled:  # its switch was cycled for another device: ask it again
                problem = health.probe(device, self.port(device), self.lock(device),
                                       self.rig(device.rig).settings.health_timeout_s)
                how = cycled[switch.name][0]
                if not problem:
                    self.health[device.label] = ""
            else:
                how, problem = self.recover(device)
                cycled[switch.name] = (how, problem)
            if problem:
                self.health[device.label] = f"{first}; {how} at session start, still: {problem}"
                self.fleet.say(f"{device.label} did not answer at session start; {how}, still: {problem}")
            else:
                self.fleet.say(f"{device.label} did not answer at session start ({first}); {how}: answers now")

    def note_health(self) -> None:
        """Each rig's start-up health in the fleet state (`hilci rigs`); a session counts it with its run."""
        from hilci.hil import fleet

        for rig in self.rigs:
            if rig.name in self.fleet.out_of_service:
                continue
            problems = [self.health.get(d.label, "") for d in rig.devices.values()]
            try:
                fleet.record_health(rig.name, "; ".join(p for p in problems if p), "session start",
                                    self.fleet.where, counts=False)
            except OSError as exc:
                print(f"hil: rig {rig.name}: fleet state not written ({exc})")

    def hold_rigs(self) -> None:
        """The rig lock of every real rig, shared, until close(): the rig device plugin's probe, which takes it
        exclusive without waiting, then never opens a device of these rigs, not even between two tests."""
        for rig in self.rigs:
            if rig.emulate or rig.name in self.fleet.out_of_service:
                continue  # its own emulators (no plugin probes them), or a rig out of service: never opened
            lock = RigLock([d.port for d in rig.devices.values()], rig.name)
            try:
                self.rig_locks.append(lock.hold_for_session(rig.settings.lock_timeout_s))
            except DeviceBusy as exc:
                raise pytest.UsageError(str(exc)) from None

    def attach(self, state_file: str) -> None:
        """An xdist worker: use the controller's emulators and health verdicts."""
        data = json.loads(Path(state_file).read_text())
        self.emulation.ports, self.emulation.controls, self.health = data["ports"], data["controls"], data["health"]
        if data.get("hostclock"):
            self.timing.clock = HostClock(Path(data["hostclock"]))  # the controller's sampler, queried
            self.timing.clock.watch(os.getpid())

    def close(self) -> None:
        """Actuators safe first, then the emulators stop and the session folder goes."""
        try:
            self.safe.close()
        finally:
            if self.state_file is not None:
                self.state_file.unlink(missing_ok=True)
                if os.environ.get(STATE_ENV) == str(self.state_file):
                    del os.environ[STATE_ENV]
            if self.timing.clock is not None and self.timing.clock.proc is not None:
                self.timing.clock.stop()
            self.emulation.stop()
            for lock in self.rig_locks:
                lock.release()
            self.rig_locks.clear()
            self.fleet.close()

    # --- one test's use of one device -----------------------------------------------------------------
    @contextmanager
    def open(self, device: Device, item: pytest.Item | None = None) -> Iterator[Any]:
        """Lock, open and yield the device's driver; on every exit, actuators go safe, then close and unlock."""
        from hilci.hil.drivers import DeviceError, driver_for

        if item is not None:
            item.stash.setdefault(USED, []).append(device)
        problem = self.health.get(device.label, "") or self.fleet.lost.get(device.rig, "")
        if problem:
            if item is None:
                pytest.fail(problem, pytrace=False)
            # fail in the call phase (a failure, not a setup error); the test body never runs
            item.stash.setdefault(UNHEALTHY, []).append(problem)
            item.stash.setdefault(DROPPED, []).append(problem)
            yield None
            return
        lock = self.lock(device)
        try:
            lock.acquire()
        except DeviceBusy as exc:
            dropped(item, str(exc))
            pytest.fail(str(exc), pytrace=False)
        driver = driver_for(device, self.port(device))
        injected, held = False, None
        try:
            try:
                driver.open()
            except DeviceError as exc:
                dropped(item, str(exc))
                pytest.fail(str(exc), pytrace=False)
            if device.is_actuator:
                self.safe.register(driver)
                held = guard.mark(lock, self.rig(device.rig).path, device.name, self.port(device))
            if self.rig(device.rig).emulate and hasattr(driver, "timeout_retries"):
                driver.timeout_retries = EMULATED_TIMEOUT_RETRIES
            if item is not None:
                item.stash.setdefault(OPEN_DRIVERS, []).append(driver)
                injected = self.faults.inject_for(item, device, self.emulation.controls.get(device.label))
                if injected or device.faults:
                    item.stash.setdefault(FAULTED, []).append(device.label)
            yield driver
        finally:
            if injected:  # a test's faults end with the test, before the safe state is applied
                self.faults.clear(self.emulation.controls[device.label])
            try:
                if device.is_actuator:
                    self.safe.make_safe(driver)
                    if held is not None:  # safe: the clean release the rig guard looks for
                        guard.unmark(held)
            finally:
                driver.close()
                try:
                    if injected:
                        self.resync(device, item)
                finally:
                    lock.release()

    def resync(self, device: Device, item: pytest.Item | None = None) -> None:
        """After a test's faults: the restored device must answer again before the next test opens it; if it
        does not, the faulted test's teardown says so (the blame stays with the test that had the fault)."""
        timeout = self.rig(device.rig).settings.health_timeout_s
        problem = health.probe(device, self.port(device), self.lock(device), timeout)
        if problem:
            dropped(item, problem)
            pytest.fail(f"after this test's faults were cleared: {problem}", pytrace=False)


def dropped(item: pytest.Item | None, message: str) -> None:
    """Remember that the rig failed this test with `message` (see DROPPED)."""
    if item is not None:
        item.stash.setdefault(DROPPED, []).append(message)
