"""The fixtures HIL suites use: one per device kind (made from the registry), one per named device, `hil_rig`,
`gate`, and the suite's JUnit properties through pytest's `record_testsuite_property`."""

from __future__ import annotations

import socket
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hilci.hil import cpushare
from hilci.hil.plugin.session import FAULTED, HilSession
from hilci.hil.rig import Device, Rig
from hilci.results.measurements import replace_properties
from hilci.util.provenance import commit

KEY = pytest.StashKey[HilSession]()
CALL_START = pytest.StashKey[int]()  # perf_counter_ns when the test's call phase began
CALL_CPU = pytest.StashKey[dict]()  # the test process's threads' CPU times then (hilci.hil.cpushare.sample)


def hil_session(request: pytest.FixtureRequest) -> HilSession:
    hil = request.config.stash.get(KEY, None)
    if hil is None:
        raise pytest.UsageError(f"{request.node.nodeid} needs a rig: pass --rig PATH")
    return hil


def _open(request: pytest.FixtureRequest, label: str) -> Iterator[Any]:
    hil = hil_session(request)
    with hil.open(hil.device(label), request.node) as driver:
        yield driver


def kind_fixture(kind: str, doc: str) -> Any:
    """The fixture named after a device kind: parametrized over the rig's devices of that kind
    (`pytest_generate_tests`), opened and locked for one test."""

    def fixture(request):
        yield from _open(request, request.param)

    fixture.__doc__ = f"{doc}: the driver, opened and locked for this test."
    return pytest.fixture(name=kind)(fixture)


def device_fixture(device: Device) -> Any:
    """The fixture named after one device of the rig (e.g. `left_wheel`)."""

    def fixture(request):
        yield from _open(request, device.label)

    fixture.__doc__ = f"{device.name} ({device.driver}), opened and locked for this test."
    return pytest.fixture(name=device.name)(fixture)


def register_device_fixtures(config: pytest.Config, kinds: dict, rigs: list[Rig]) -> None:
    """A fixture per registered kind, and (with one rig) per device by its rig name."""
    holder = types.ModuleType("hilci_device_fixtures")  # pytest finds fixtures on a module's attributes,
    for name, kind in kinds.items():  # never on an instance's
        setattr(holder, f"_hil_kind_{name}", kind_fixture(name, kind.doc or name))
    if len(rigs) == 1:
        for device in rigs[0].devices.values():
            if device.name not in kinds:
                setattr(holder, f"_hil_device_{device.name}", device_fixture(device))
    config.pluginmanager.register(holder, "hilci-device-fixtures")


class RigHandle:
    """One rig inside a test: open any of its devices, find its engine."""

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

    def engine_path(self) -> Path:
        """The rig's model engine file (or `--engine`); a missing one fails the test naming the rig field.
        Loading it is the suite's business (hil_tests/conftest.py): the framework never imports the model path."""
        path = self.rig.engine
        if path is None:
            pytest.fail(f"{self.rig.path}: engine: the rig names no model engine", pytrace=False)
        if not path.exists():
            pytest.fail(f"{self.rig.path}: engine: {path} not found (the pipeline's convert stage writes it)",
                        pytrace=False)
        return path


@pytest.fixture
def hil_rig(request) -> RigHandle:
    """A rig of this session (parametrized over every --rig)."""
    hil = hil_session(request)
    return RigHandle(hil, hil.rig(request.param), request.node)


@pytest.fixture
def gate(request):
    """`gate(*measurements)`: record each measurement's JUnit properties, fail with their messages if any fails.

    Timing results are shown beside the host's wake-up latency over the test (`host.wakeup.*`); on an emulated
    rig one the host explains is inconclusive, which neither passes nor fails the test, unless the test injected
    a fault into a device it opened: then the device is known to be at fault and the verdict stands."""

    def check(*measurements) -> None:
        item = request.node
        hil = request.config.stash.get(KEY, None)
        faulted = item.stash.get(FAULTED, [])
        host = hil.timing.weigh(item.nodeid, item.stash.get(CALL_START, 0), measurements, lenient=not faulted,
                                cpu=cpushare.since(item.stash.get(CALL_CPU, None))) if hil else []
        for m in measurements:  # in place of the UNSET rows the test declared (hooks.declare_measurements)
            replace_properties(item.user_properties, m)
        if host:  # one figure per testcase: the latest window, which covers every gate of the test
            item.user_properties[:] = [p for p in item.user_properties
                                       if not p[0].startswith(("host.wakeup.", "host.cpu."))]
            item.user_properties.extend(host)
        failed = [m.message() for m in measurements if m.failed]
        if failed:
            pytest.fail("; ".join(failed), pytrace=False)

    return check


@pytest.fixture(scope="session", autouse=True)
def _hil_suite_properties(request, record_testsuite_property) -> None:
    """Platform facts and the rigs as `<testsuite>` properties (a no-op without a rig or without --junitxml;
    pytest-xdist workers write no suite properties, pytest issue #7767)."""
    hil = request.config.stash.get(KEY, None)
    if hil is None:
        return
    from hilci.hil.platform import facts

    for key, value in facts(all(r.emulate for r in hil.rigs)):
        record_testsuite_property(key, value)
    record_testsuite_property("hil.rigs", ",".join(f"{r.name}={r.path}" for r in hil.rigs))
    record_testsuite_property("hil.rig", "+".join(r.name for r in hil.rigs))
    record_testsuite_property("hil.board", request.config.getoption("board") or "")
    record_testsuite_property("hil.commit", commit(Path.cwd()))
    record_testsuite_property("hil.hostname", socket.gethostname())


