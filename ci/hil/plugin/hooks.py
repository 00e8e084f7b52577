"""The plugin's pytest hooks: options, rigs loaded at configure time, the report header, HIL tests without a
rig refused, device fixtures parametrized over the rig's devices, an abort that makes actuators safe first,
the host's wake-up latency in the suite and the terminal summary, device logs attached to failing tests."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

from hilci.errors import UsageError
from hilci.hil import cpushare, devicelog
from hilci.hil.discovery import kinds
from hilci.hil.faults import FaultError, parse_targeted
from hilci.hil.plugin import failureclass, junitxml, retry
from hilci.hil.plugin.fixtures import CALL_CPU, CALL_START, KEY, register_device_fixtures
from hilci.hil.plugin.fleetuse import FleetUse
from hilci.hil.plugin.injection import FaultPlan
from hilci.hil.plugin.session import OPEN_DRIVERS, STATE_ENV, UNHEALTHY, USED, HilSession
from hilci.hil.rig import ENGINE_SUFFIXES, RigError, load_rig
from hilci.results.measurements import Declared
from hilci.stage import interrupt as pytest_interrupt

MARKERS = {
    "sensor": "HIL sensor test: needs --rig",
    "actuator": "HIL actuator test: needs --rig",
    "latency": "HIL latency budget: needs --rig",
    "hil_fault(device, kind, **params)": "inject an emulator fault into DEVICE when this test starts",
    "measures(*declared)": "the measurements this test takes (hilci.results.measurements.Declared or (name, unit); "
                           "{device} and {rig} in a name are filled in), written as UNSET when it starts",
}
HIL_MARKERS = ("sensor", "actuator", "latency")
# Every HIL test ends, whatever a device does: pytest-timeout's signal method raises in the test, so its teardown
# (the actuators' safe state) still runs; a thread timeout would kill the process before it.
DEFAULT_TEST_TIMEOUT_S = 30.0
BOARD_ENV = "HILCI_BOARD"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "hardware in the loop (hilci)")
    group.addoption("--rig", action="append", default=[], metavar="PATH",
                    help="rig YAML for HIL tests (repeat for several rigs); required when HIL tests are collected")
    group.addoption("--hil-fault", action="append", default=[], metavar="DEVICE:KIND[:k=v,...][@TEST]",
                    help="inject an emulator fault into DEVICE when a test whose id contains TEST opens it "
                         "(every test without @TEST), e.g. imu:stall:duration_s=2@test_rate")
    group.addoption("--board", default=os.environ.get(BOARD_ENV) or None, metavar="NAME",
                    help=f"the board these rigs run on (default ${BOARD_ENV}, else the rig names): the JUnit "
                         "classnames start with it, so two boards' results merged stay distinct testcases")
    group.addoption("--engine", default=None, metavar="PATH",
                    help="model engine to test instead of the rig's `engine` (the pipeline passes the engine "
                         "its convert stage built)")
    group.addoption("--hil-retries", type=int, default=1, metavar="N",
                    help="run a test whose device dropped out again, up to N times, after bringing the device "
                         "back (power cycle, else reconnect); code failures are never retried (default 1)")
    group.addoption("--hil-pick", action="store_true", default=False,
                    help="use ONE of the --rig rigs: the first in service whose lease this session gets (waiting "
                         "in every rig's queue up to its lock_timeout_s); quarantined rigs are skipped, with why")
    group.addoption("--hil-logs", default="reports/hil-logs", metavar="DIR",
                    help="where a failing test's device traffic is written, one file per test "
                         "(default reports/hil-logs)")
    group.addoption("--hil-timeout", type=float, default=DEFAULT_TEST_TIMEOUT_S, metavar="S",
                    help="each HIL test's time limit unless it has its own timeout marker; on expiry the test is "
                         "interrupted and the actuators made safe (default %(default)s)")


@pytest.hookimpl(tryfirst=True)  # before pytest's junitxml reads --junit-prefix
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
        except (RigError, UsageError) as exc:  # UsageError: a device kind that cannot be loaded
            raise pytest.UsageError(str(exc)) from None
    engine = config.getoption("engine")
    if engine:
        if Path(engine).suffix not in ENGINE_SUFFIXES:
            raise pytest.UsageError(f"--engine {engine}: expected a .onnx, .plan or .engine file")
        rigs = [dataclasses.replace(r, engine=Path(engine).resolve()) for r in rigs]
    names = [r.name for r in rigs]
    if len(set(names)) != len(names):
        raise pytest.UsageError(f"--rig: two rigs share a name ({', '.join(names)}); rig names must differ")
    device_kinds = {d.name: d.kind for r in rigs for d in r.devices.values()}
    faults = []
    for text in config.getoption("hil_fault"):
        try:
            faults.append(parse_targeted(text, device_kinds))
        except FaultError as exc:
            raise pytest.UsageError(f"--hil-fault {exc}") from None
    if not config.option.junitprefix:  # classname "BOARD.hil_tests.test_sensors.TestImu": Jenkins groups by it
        config.option.junitprefix = config.getoption("board") or "+".join(names)
    worker_state = os.environ.get(STATE_ENV) if hasattr(config, "workerinput") else None
    use = FleetUse(rigs, config.getoption("hil_pick"))
    if worker_state:
        rigs, use.out_of_service = FleetUse.chosen(rigs, worker_state)
        use.rigs = rigs
    else:
        rigs = use.choose()
        config.pluginmanager.register(use, "hilci-fleet")  # counts each test's final report per rig
    hil = HilSession(rigs, FaultPlan(faults), use)
    config.stash[KEY] = hil
    config.add_cleanup(hil.close)
    junitxml.register(config)  # device traffic, late suite properties, infrastructure failures as <error>
    # SIGTERM (Jenkins's abort) or Ctrl-C: actuators safe before anything else, then the usual teardown
    pytest_interrupt.guard(config).on_abort.append(hil.safe.make_all_safe)
    if worker_state:
        hil.attach(worker_state)
    else:
        hil.start()
    register_device_fixtures(config, kinds(), rigs)


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


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    hil = config.stash.get(KEY, None)
    if hil is not None:
        unmatched = hil.faults.unmatched(items, config.getoption("hil_fault"))
        if unmatched:
            raise pytest.UsageError(unmatched)
        limit = config.getoption("hil_timeout")
        for item in items:
            if limit and item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(limit, method="signal"))
        return
    hil_items = [i for i in items if any(i.get_closest_marker(m) for m in HIL_MARKERS)]
    if hil_items:
        raise pytest.UsageError(f"{hil_items[0].nodeid} is a HIL test: give the rig with --rig PATH "
                                "(e.g. --rig hil_tests/rigs/sim.yaml)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """HIL tests run through `retry`: an infrastructure failure is retried after its device is brought back."""
    hil = item.config.stash.get(KEY, None)
    retries = item.config.getoption("hil_retries")
    if hil is None or retries <= 0:
        return None
    return retry.run(item, nextitem, hil, retries)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    item.stash[CALL_START] = time.perf_counter_ns()  # the window the host's latency is judged over
    item.stash[CALL_CPU] = cpushare.sample()  # and the test process's CPU share
    problems = item.stash.get(UNHEALTHY, None)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    hil = metafunc.config.stash.get(KEY, None)
    if hil is None:
        return
    multi = len(hil.rigs) > 1
    for kind in kinds():
        if kind in metafunc.fixturenames:
            devices = hil.devices(kind)
            if not devices:  # one skip that says why, not pytest's "[NOTSET] got empty parameter set"
                rigs = ", ".join(r.name for r in hil.rigs)
                metafunc.parametrize(kind, [pytest.param(None, id=f"no-{kind}", marks=pytest.mark.skip(
                    reason=f"rig {rigs} has no {kind} device"))], indirect=True)
                continue
            ids = [d.label if multi else d.name for d in devices]
            metafunc.parametrize(kind, [d.label for d in devices], indirect=True, ids=ids)
    if "hil_rig" in metafunc.fixturenames:
        metafunc.parametrize("hil_rig", [r.name for r in hil.rigs], indirect=True,
                             ids=[r.name for r in hil.rigs])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    declare_measurements(item)


def declare_measurements(item: pytest.Item) -> None:
    """Every measurement the test declares (`@pytest.mark.measures`), as UNSET rows until `gate` fills it in."""
    names = {"device": "", "rig": ""}
    params = getattr(getattr(item, "callspec", None), "params", {})
    for key, value in params.items():
        if key == "hil_rig":
            names["rig"] = str(value)
        elif key in kinds():
            names["rig"], _, names["device"] = str(value).partition(":")
    for mark in item.iter_markers("measures"):
        for spec in mark.args:
            declared = spec if isinstance(spec, Declared) else Declared(*spec)
            name = declared.name.format(**names)
            if not any(k.startswith(name + ".") for k, _ in item.user_properties):
                item.user_properties.extend(dataclasses.replace(declared, name=name).properties())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """A failing test's class (`failureclass`) and device traffic: written to --hil-logs/<test>.log, named in
    the testcase's `hil.log` property, and carried to its JUnit `system-out`."""
    report = yield
    if item.config.stash.get(KEY, None) is not None:
        failureclass.note(item, report)
        report.hil_rigs = [d.rig for d in item.stash.get(USED, [])]  # whose run this failure counts in
    drivers = item.stash.get(OPEN_DRIVERS, [])
    if report.failed and report.when == "call" and drivers:
        text = devicelog.render([d.traffic for d in drivers])
        folder = Path(item.config.getoption("hil_logs"))
        path = devicelog.log_path(folder, item.nodeid)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            item.user_properties.append((devicelog.LOG_PROPERTY, str(path)))
        except OSError:
            pass
        report.hil_traffic = text
    return report


@pytest.hookimpl(tryfirst=True)  # before the JUnit file is written
def pytest_sessionfinish(session: pytest.Session) -> None:
    hil = session.config.stash.get(KEY, None)
    if hil is None or hasattr(session.config, "workerinput"):
        return
    host = hil.timing.session()
    if host is not None:
        junitxml.suite_properties(session.config, host.properties())
    hil.fleet.finish()  # each rig's run recorded (quarantine counts), its lease released


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    hil = config.stash.get(KEY, None)
    if hil is None:
        return
    lines = hil.timing.summary()
    if lines:
        terminalreporter.section("hil timing", sep="-")
        for line in lines:
            terminalreporter.write_line(line)
