"""The plugin's pytest hooks: options, rigs loaded at configure time, the report header, HIL tests without a
rig refused, device fixtures parametrized over the rig's devices, SIGTERM turned into an interrupt."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from pathlib import Path

import pytest

from ci.hil.faults import FaultError, parse_targeted
from ci.hil.plugin.fixtures import KEY, register_device_fixtures
from ci.hil.plugin.injection import FaultPlan
from ci.hil.plugin.session import STATE_ENV, UNHEALTHY, HilSession
from ci.hil.registry import kinds
from ci.hil.rig import ENGINE_SUFFIXES, RigError, load_rig

MARKERS = {
    "sensor": "HIL sensor test: needs --rig",
    "actuator": "HIL actuator test: needs --rig",
    "latency": "HIL latency budget: needs --rig",
    "hil_fault(device, kind, **params)": "inject an emulator fault into DEVICE when this test starts",
}
HIL_MARKERS = ("sensor", "actuator", "latency")


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so teardown (and the safe state) runs as for Ctrl-C."""


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
    hil = HilSession(rigs, FaultPlan(faults))
    config.stash[KEY] = hil
    config.add_cleanup(hil.close)
    _install_sigterm()
    worker_state = os.environ.get(STATE_ENV) if hasattr(config, "workerinput") else None
    if worker_state:
        hil.attach(worker_state)
    else:
        hil.start()
    register_device_fixtures(config, kinds(), rigs)


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


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    hil = config.stash.get(KEY, None)
    if hil is not None:
        unmatched = hil.faults.unmatched(items, config.getoption("hil_fault"))
        if unmatched:
            raise pytest.UsageError(unmatched)
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
    for kind in kinds():
        if kind in metafunc.fixturenames:
            devices = hil.devices(kind)
            ids = [d.label if multi else d.name for d in devices]
            metafunc.parametrize(kind, [d.label for d in devices], indirect=True, ids=ids)
    if "hil_rig" in metafunc.fixturenames:
        metafunc.parametrize("hil_rig", [r.name for r in hil.rigs], indirect=True,
                             ids=[r.name for r in hil.rigs])
