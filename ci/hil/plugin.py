"""pytest plugin (entry point `hilci`): `--rig`, device fixtures, health check, faults, locks and safe state.

Loaded for every pytest run, it stays silent until a session collects HIL tests (marked sensor, actuator or
latency): those demand `--rig`. With `--rig`, the controller process starts the emulators of emulated rigs,
health-checks every device once, and hands ports and verdicts to xdist workers through a state file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ci.hil import safestate
from ci.hil.faults import Fault, FaultError, parse_fault
from ci.hil.locks import DeviceBusy, DeviceLock
from ci.hil.rig import ACTUATORS, DRIVERS, Device, Rig, RigError, load_rig

MARKERS = {
    "sensor": "HIL sensor test: needs --rig",
    "actuator": "HIL actuator test: needs --rig",
    "latency": "HIL latency budget: needs --rig",
    "hil_fault(device, kind, **params)": "inject an emulator fault into DEVICE when this test starts",
}
HIL_MARKERS = ("sensor", "actuator", "latency")
STATE_ENV = "HILCI_HIL_STATE"
KEY = pytest.StashKey["HilSession"]()
UNHEALTHY = pytest.StashKey[list]()


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so teardown (and the safe state) runs as for Ctrl-C."""


class HilSession:
    """The rigs of this pytest session, their ports, health verdicts, locks and touched actuators."""

    def __init__(self, config: pytest.Config, rigs: list[Rig], faults: list[tuple[str, Fault, str]]):
        self.config = config
        self.rigs = rigs
        self.faults = faults  # (device name, fault, test name pattern)
        self.ports: dict[str, str] = {}
        self.controls: dict[str, str] = {}
        self.health: dict[str, str] = {}  # device label -> "" (answered) or the failure message
        self.emulators: list[Any] = []
        self.locks: dict[str, DeviceLock] = {}
        self.state_dir: Path | None = None

    # --- devices -------------------------------------------------------------------------------------
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
        return self.ports.get(device.label, device.port)

    def lock(self, device: Device) -> DeviceLock:
        if device.label not in self.locks:
            timeout = self.rig(device.rig).settings["lock_timeout_s"]
            self.locks[device.label] = DeviceLock(self.port(device), f"{device.name} at {self.port(device)}",
                                                  timeout)
        return self.locks[device.label]

    @contextmanager
    def open(self, device: Device, item: pytest.Item | None = None) -> Iterator[Any]:
        """Lock, open and yield the device's driver; on every exit, actuators go safe, then close and unlock."""
        from ci.hil.drivers import DeviceError, driver_for

        problem = self.health.get(device.label, "")
        if problem:
            if item is None:
                pytest.fail(problem, pytrace=False)
            # fail in the call phase (a failure, not a setup error); the test body never runs
            item.stash.setdefault(UNHEALTHY, []).append(problem)
            yield None
            return
        lock = self.lock(device)
        try:
            lock.acquire()
        except DeviceBusy as exc:
            pytest.fail(str(exc), pytrace=False)
        driver = driver_for(device, self.port(device))
        injected = False
        try:
            try:
                driver.open()
            except DeviceError as exc:
                pytest.fail(str(exc), pytrace=False)
            if device.driver in ACTUATORS:
                safestate.register(driver)
            if item is not None:
                injected = self.inject_for(item, device)
            yield driver
        finally:
            if injected:  # a test's faults end with the test, before the safe state is applied
                self.clear_faults(device)
            try:
                if device.driver in ACTUATORS:
                    safestate.make_safe(driver)
            finally:
                driver.close()
                lock.release()

    # --- faults --------------------------------------------------------------------------------------
    def inject(self, device: Device, fault: Fault) -> None:
        from ci.hil.emulators.process import send

        control = self.controls.get(device.label)
        if not control:
            pytest.fail(f"{device.name}: fault {fault.kind} needs an emulated rig (rig {device.rig} has "
                        "emulate: false)", pytrace=False)
        send(control, {"cmd": "fault", **fault.to_dict()})

    def clear_faults(self, device: Device) -> None:
        from ci.hil.emulators.process import EmulatorError, send

        try:
            send(self.controls[device.label], {"cmd": "clear"})
        except EmulatorError:
            pass

    def inject_for(self, item: pytest.Item, device: Device) -> bool:
        """Send this test's faults for `device` to its emulator; True if there were any."""
        injected = False
        for name, fault, pattern in self.faults:
            if name == device.name and (not pattern or pattern in item.nodeid):
                self.inject(device, fault)
                injected = True
        for mark in item.iter_markers("hil_fault"):
            if mark.args and mark.args[0] == device.name:
                try:
                    fault = parse_fault({"kind": mark.args[1] if len(mark.args) > 1 else "", **mark.kwargs})
                except FaultError as exc:
                    pytest.fail(f"{item.nodeid}: hil_fault: {exc}", pytrace=False)
                self.inject(device, fault)
                injected = True
        return injected

    # --- controller: emulators and health -------------------------------------------------------------
    def start(self) -> None:
        from ci.hil.emulators.process import EmulatorError, RigEmulators

        self.state_dir = Path(tempfile.mkdtemp(prefix="hilci-session-"))
        for rig in self.rigs:
            if not rig.emulate:
                continue
            emus = RigEmulators(rig, self.state_dir / rig.name)
            emus.folder.mkdir(parents=True, exist_ok=True)
            self.emulators.append(emus)
            try:
                emus.start()
            except EmulatorError as exc:
                raise pytest.UsageError(f"{rig.path}: {exc}") from None
            for name, info in emus.ports().items():
                label = f"{rig.name}:{name}"
                self.ports[label] = info["port"]
                self.controls[label] = info["control"]
        self.check_health()
        state = self.state_dir / "state.json"
        state.write_text(json.dumps({"ports": self.ports, "controls": self.controls, "health": self.health}))
        os.environ[STATE_ENV] = str(state)

    def check_health(self) -> None:
        """Ask every device once, in parallel; a silent one fails only its own tests."""
        from ci.hil.drivers import DeviceError, driver_for

        def probe(device: Device) -> None:
            timeout = self.rig(device.rig).settings["health_timeout_s"]
            port = self.port(device)
            message = f"{device.name} at {port} did not answer within {timeout:g} s"
            try:
                with self.lock(device):
                    driver = driver_for(device, port)
                    try:
                        driver.open(timeout=timeout)
                        driver.health(timeout)
                        self.health[device.label] = ""
                    finally:
                        driver.close()
            except (DeviceError, DeviceBusy) as exc:
                detail = str(exc).split(": ", 1)[-1]
                self.health[device.label] = message if "did not answer" in detail else f"{message} ({detail})"

        threads = [threading.Thread(target=probe, args=(d,), daemon=True) for d in self.devices()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def attach(self, state_file: str) -> None:
        """An xdist worker: use the controller's emulators and health verdicts."""
        data = json.loads(Path(state_file).read_text())
        self.ports, self.controls, self.health = data["ports"], data["controls"], data["health"]

    def close(self) -> None:
        safestate.make_all_safe()
        for emus in self.emulators:
            emus.stop()
        self.emulators.clear()
        if self.state_dir is not None:
            try:
                (self.state_dir / "state.json").unlink()
                for child in self.state_dir.iterdir():
                    child.rmdir()
                self.state_dir.rmdir()
            except OSError:
                pass
            if os.environ.get(STATE_ENV, "").startswith(str(self.state_dir)):
                del os.environ[STATE_ENV]


# --- hooks ---------------------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "hardware in the loop (hilci)")
    group.addoption("--rig", action="append", default=[], metavar="PATH",
                    help="rig YAML for HIL tests (repeat for several rigs); required when HIL tests are collected")
    group.addoption("--hil-fault", action="append", default=[], metavar="DEVICE:KIND[:k=v,...][@TEST]",
                    help="inject an emulator fault into DEVICE when a test whose id contains TEST opens it "
                         "(every test without @TEST), e.g. imu:stall:duration_s=2@test_rate")
    group.addoption("--engine", default=None, metavar="PATH",
                    help="model engine to test instead of the rig's `engine` (the pipeline passes the engine "
                         "its convert stage built)")


def pytest_configure(config: pytest.Config) -> None:
    for marker, text in MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {text}")
    paths = config.getoption("rig")
    if not paths:
        return
    rigs = []
    for path in paths:
        try:
            rigs.append(load_rig(path))
        except RigError as exc:
            raise pytest.UsageError(str(exc)) from None
    engine = config.getoption("engine")
    if engine:
        if Path(engine).suffix not in (".onnx", ".plan", ".engine"):
            raise pytest.UsageError(f"--engine {engine}: expected a .onnx, .plan or .engine file")
        rigs = [dataclasses.replace(r, engine=Path(engine).resolve()) for r in rigs]
    names = [r.name for r in rigs]
    if len(set(names)) != len(names):
        raise pytest.UsageError(f"--rig: two rigs share a name ({', '.join(names)}); rig names must differ")
    faults = [_parse_cli_fault(text, rigs) for text in config.getoption("hil_fault")]
    hil = HilSession(config, rigs, faults)
    config.stash[KEY] = hil
    config.add_cleanup(hil.close)
    _install_sigterm()
    worker_state = os.environ.get(STATE_ENV) if hasattr(config, "workerinput") else None
    if worker_state:
        hil.attach(worker_state)
    else:
        hil.start()
    _register_named_fixtures(config, rigs)


def _parse_cli_fault(text: str, rigs: list[Rig]) -> tuple[str, Fault, str]:
    spec, _, pattern = text.partition("@")
    device, _, rest = spec.partition(":")
    if not any(device in r.devices for r in rigs):
        known = sorted({d for r in rigs for d in r.devices})
        raise pytest.UsageError(f"--hil-fault {text}: no device {device!r} in the rig ({', '.join(known)})")
    try:
        return device, parse_fault(rest), pattern
    except FaultError as exc:
        raise pytest.UsageError(f"--hil-fault {text}: {exc}") from None


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    hil = session.config.stash.get(KEY, None)
    if hil is not None and not hasattr(session.config, "workerinput"):
        _suite_properties(session.config, hil.rigs)


def _suite_properties(config: pytest.Config, rigs: list[Rig]) -> None:
    from _pytest.junitxml import xml_key

    from ci.hil.platform import facts

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    for key, value in facts(all(r.emulate for r in rigs)):
        xml.add_global_property(key, value)
    xml.add_global_property("hil.rigs", ",".join(f"{r.name}={r.path}" for r in rigs))


def _install_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def on_term(signum, frame):
        raise Terminated("SIGTERM")

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, on_term)


def pytest_report_header(config: pytest.Config) -> list[str]:
    hil = config.stash.get(KEY, None)
    if hil is None:
        return []
    lines = []
    for rig in hil.rigs:
        lines.append(f"hil rig {rig.name} ({rig.path}, {'emulated' if rig.emulate else rig.platform})")
        for d in rig.devices.values():
            verdict = hil.health.get(d.label, "")
            lines.append(f"  {d.name}: {d.driver} at {hil.port(d)}" + (f"  UNHEALTHY: {verdict}" if verdict else ""))
    return lines


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    if config.stash.get(KEY, None) is not None:
        return
    hil_items = [i for i in items if any(i.get_closest_marker(m) for m in HIL_MARKERS)]
    if hil_items:
        raise pytest.UsageError(f"{hil_items[0].nodeid} is a HIL test: give the rig with --rig PATH "
                                "(e.g. --rig hil_tests/rigs/sim.yaml)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    problems = item.stash.get(UNHEALTHY, None)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    hil = metafunc.config.stash.get(KEY, None)
    if hil is None:
        return
    multi = len(hil.rigs) > 1
    for driver in DRIVERS:
        if driver in metafunc.fixturenames:
            devices = hil.devices(driver)
            ids = [d.label if multi else d.name for d in devices]
            metafunc.parametrize(driver, [d.label for d in devices], indirect=True, ids=ids)
    if "hil_rig" in metafunc.fixturenames:
        metafunc.parametrize("hil_rig", [r.name for r in hil.rigs], indirect=True,
                             ids=[r.name for r in hil.rigs])


def _hil(request: pytest.FixtureRequest) -> HilSession:
    hil = request.config.stash.get(KEY, None)
    if hil is None:
        raise pytest.UsageError(f"{request.node.nodeid} needs a rig: pass --rig PATH")
    return hil


def _device(request: pytest.FixtureRequest) -> Iterator[Any]:
    hil = _hil(request)
    with hil.open(hil.device(request.param), request.node) as driver:
        yield driver


# One fixture per driver kind, parametrized over the rig's devices of that kind.
@pytest.fixture
def imu(request):
    """The IMU driver (pymavlink), opened and locked for this test."""
    yield from _device(request)


@pytest.fixture
def gnss(request):
    """The GNSS driver (pynmea2), opened and locked for this test."""
    yield from _device(request)


@pytest.fixture
def servo(request):
    """The servo driver (dynamixel-sdk), opened and locked; torque off on every exit."""
    yield from _device(request)


@pytest.fixture
def camera(request):
    """The camera driver (V4L2 on a Jetson, the frame stream in emulation), opened and locked."""
    yield from _device(request)


class RigHandle:
    """One rig inside a test: open any of its devices, load its engine."""

    def __init__(self, hil: HilSession, rig: Rig, item: pytest.Item):
        self.hil, self.rig, self.item = hil, rig, item

    @property
    def name(self) -> str:
        return self.rig.name

    def device(self, driver: str) -> Device:
        found = self.rig.of_driver(driver)
        if not found:
            pytest.skip(f"rig {self.rig.name} has no {driver} device")
        return found[0]

    def open(self, device: Device):
        return self.hil.open(device, self.item)

    def engine(self):
        """The rig's model engine through the Model path's runner (ONNX Runtime or TensorRT by suffix)."""
        path = self.rig.engine
        if path is None:
            pytest.fail(f"{self.rig.path}: engine: the rig names no model engine", pytrace=False)
        if not path.exists():
            pytest.fail(f"{self.rig.path}: engine: {path} not found (the pipeline's convert stage writes it)",
                        pytrace=False)
        from conversion.engines import load_engine

        try:
            return load_engine(path)
        except Exception as exc:  # the runner's own errors name the file; keep them one line
            pytest.fail(f"{self.rig.path}: engine: {exc}", pytrace=False)


@pytest.fixture
def hil_rig(request) -> RigHandle:
    """A rig of this session (parametrized over every --rig)."""
    hil = _hil(request)
    return RigHandle(hil, hil.rig(request.param), request.node)


@pytest.fixture
def gate(request):
    """`gate(*measurements)`: record each measurement's JUnit properties, fail with their messages if any fails."""

    def check(*measurements) -> None:
        for m in measurements:
            request.node.user_properties.extend(m.properties())
        failed = [m.message() for m in measurements if not m.passed]
        if failed:
            pytest.fail("; ".join(failed), pytrace=False)

    return check


def _register_named_fixtures(config: pytest.Config, rigs: list[Rig]) -> None:
    """A fixture per device by its rig name (names equal to a driver kind use the kind's fixture)."""
    if len(rigs) != 1:
        return
    holder = type("HilNamedDevices", (), {})()
    for device in rigs[0].devices.values():
        if device.name in DRIVERS:
            continue

        def make(label: str):
            def fixture(request):
                hil = _hil(request)
                with hil.open(hil.device(label), request.node) as driver:
                    yield driver

            return fixture

        setattr(holder, f"_hil_{device.name}", pytest.fixture(name=device.name)(make(device.label)))
    config.pluginmanager.register(holder, "hilci-named-devices")

