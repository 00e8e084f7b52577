"""Faults for a test: `--hil-fault DEVICE:KIND[:k=v,...][@TEST]` and `@pytest.mark.hil_fault(...)`, sent to the
device's emulator when the test opens the device and cleared when the test ends."""

from __future__ import annotations

import pytest

from hilci.hil.faults import Fault, FaultError, parse_fault
from hilci.hil.rig import Device


class FaultPlan:
    """The session's per-test faults: (device name, fault, test id pattern; "" = every test)."""

    def __init__(self, faults: list[tuple[str, Fault, str]]):
        self.faults = faults

    def unmatched(self, items: list[pytest.Item], texts: list[str]) -> str:
        """The usage error for the first `--hil-fault` that no selected test would receive ("" if none)."""
        for text, (name, _, pattern) in zip(texts, self.faults, strict=True):
            if not any(opens(item, name) and (not pattern or pattern in item.nodeid) for item in items):
                where = f" and matches {pattern!r}" if pattern else ""
                return f"--hil-fault {text}: no selected test opens {name}{where}"
        return ""

    def for_item(self, item: pytest.Item, device: Device) -> list[Fault]:
        found = [fault for name, fault, pattern in self.faults
                 if name == device.name and (not pattern or pattern in item.nodeid)]
        for mark in item.iter_markers("hil_fault"):
            if mark.args and mark.args[0] == device.name:
                spec = {"kind": mark.args[1] if len(mark.args) > 1 else "", **mark.kwargs}
                try:
                    found.append(parse_fault(spec, file=f"{item.nodeid}: hil_fault({device.name!r})",
                                             device_kind=device.driver, allowed=device.kind.faults))
                except FaultError as exc:
                    pytest.fail(str(exc), pytrace=False)
        return found

    def inject_for(self, item: pytest.Item, device: Device, control: str | None) -> bool:
        """Send this test's faults for `device` to its emulator; True if there were any."""
        from hilci.hil.emulators.process import send

        faults = self.for_item(item, device)
        for fault in faults:
            if not control:
                pytest.fail(f"{device.name}: fault {fault.kind} needs an emulated rig (rig {device.rig} has "
                            "emulate: false)", pytrace=False)
            send(control, {"cmd": "fault", **fault.to_dict()})
        return bool(faults)

    @staticmethod
    def clear(control: str) -> None:
        from hilci.hil.emulators.process import EmulatorError, send

        try:
            send(control, {"cmd": "clear"})
        except EmulatorError:
            pass


def opens(item: pytest.Item, device: str) -> bool:
    """Whether a test may open `device`: through its kind's fixture on that device, its named fixture, or a rig."""
    names = getattr(item, "fixturenames", ())
    if device in names or "hil_rig" in names:
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(str(label).partition(":")[2] == device for label in params.values())
