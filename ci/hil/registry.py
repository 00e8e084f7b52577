"""Device kinds: each kind (imu, gnss, camera, servo, or one you add) is ONE registration carrying its typed
settings, its driver, its emulator and its role, as labgrid binds drivers to resources.

The rig loader reads a device's settings with its kind's settings class, the plugin makes one fixture per kind,
the safe state applies to the kinds whose role is `actuator`, and `hilci emulate` starts the kind's emulator.
Drivers and emulators may be given as `"module:attribute"` strings so that a session without a rig never
imports a device library.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hilci.hil.faults import KINDS as FAULTS
from hilci.util.settings import integer, nested, number, settings, text

SENSOR, ACTUATOR = "sensor", "actuator"
ROLES = (SENSOR, ACTUATOR)


class KindError(ValueError):
    """A device kind registered wrongly (a programming error in the module that registers it)."""


# Serial baud rates a UART, termios and dynamixel-sdk know; anything else is a typo.
BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000,
         1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000)
MAX_TIMEOUT_S = 600  # no device wait longer than ten minutes


@settings
class EmulatorSettings:
    """Emulator-only settings of every kind (a kind adds its own): timing noise and the random seed."""

    jitter_ms: float = number(0.05, ge=0, le=1000, help="timing noise of a talker, 1 sigma")
    seed: int = integer(0, help="random seed: the same noise every run")


@settings
class DeviceSettings:
    """What every device has, whatever its kind: where it is, its link speed, how long to wait for it.

    A kind's settings class subclasses this one and adds its own fields (rates, budgets, ids)."""

    port: str | None = text(None, allow_none=True, help="stable device path, e.g. /dev/serial/by-id/...; "
                                                        "emulated rigs ignore it")
    baud: int = integer(115200, gt=0, help="serial baud rate, one of BAUDS; an emulator stays silent at a wrong one")
    open_timeout_s: float = number(3.0, gt=0, le=MAX_TIMEOUT_S, help="open() retries with back-off this long")
    window_s: float | None = number(None, allow_none=True, gt=0, le=3600,
                                    help="sample window of this device's tests; default: the rig's sensor_window_s")
    emulator: EmulatorSettings = nested(EmulatorSettings, help="used only when the rig is emulated")


def check_device(values: DeviceSettings) -> str:
    """What the field types alone cannot say, as 'field: problem' ("" when all is well)."""
    if values.baud not in BAUDS:
        return f"baud: {values.baud} is not a standard baud rate (e.g. 9600, 57600, 115200, 1000000; all: " \
               f"{', '.join(map(str, BAUDS))})"
    return ""


@dataclass(frozen=True)
class DeviceKind:
    """One kind of device: the rig's `driver:` name, sensor or actuator, and the classes that serve it."""

    name: str
    role: str
    settings: type  # a DeviceSettings subclass made with hilci.util.settings.settings
    driver: Any  # a Driver class (or factory(device, port)), or "module:attribute"
    emulator: Any  # an Emulator class, or "module:attribute"
    doc: str = ""
    # the faults that mean something to the device's protocol; hw_error only where the protocol can say it
    faults: tuple[str, ...] = tuple(f for f in FAULTS if f not in ("hw_error", "throttle"))

    @property
    def is_actuator(self) -> bool:
        return self.role == ACTUATOR

    def driver_factory(self) -> Any:
        return resolve(self.driver)

    def emulator_ref(self) -> tuple[str, str]:
        """("module:attribute", import root or "") for an emulator process: a kind added outside `ci` runs
        its emulator from the folder its module came from."""
        if isinstance(self.emulator, str):
            return self.emulator, ""
        cls = self.emulator
        return f"{cls.__module__}:{cls.__qualname__}", import_root(cls.__module__)


_KINDS: dict[str, DeviceKind] = {}


def register(kind: DeviceKind) -> DeviceKind:
    """Add a device kind; registering the same kind twice is harmless, two different ones of a name is not."""
    if not kind.name.isidentifier():
        raise KindError(f"device kind {kind.name!r}: the name must be a Python identifier (it names a fixture)")
    if kind.role not in ROLES:
        raise KindError(f"device kind {kind.name}: role {kind.role!r} is not one of {', '.join(ROLES)}")
    unknown = sorted(set(kind.faults) - set(FAULTS))
    if unknown:
        raise KindError(f"device kind {kind.name}: unknown faults {', '.join(unknown)} (faults: {', '.join(FAULTS)})")
    if not (isinstance(kind.settings, type) and issubclass(kind.settings, DeviceSettings)):
        raise KindError(f"device kind {kind.name}: settings must subclass hilci.hil.registry.DeviceSettings")
    known = _KINDS.get(kind.name)
    if known is not None and known != kind:
        raise KindError(f"device kind {kind.name}: already registered (by {_origin(known)})")
    _KINDS[kind.name] = kind
    return kind


def kinds() -> dict[str, DeviceKind]:
    """Every kind registered so far, by name (hilci.hil.discovery loads them: entry points, then the project's)."""
    return dict(_KINDS)


def device_kind(name: str) -> DeviceKind | None:
    return _KINDS.get(name)


def resolve(ref: Any) -> Any:
    """A class or function from `"module:attribute"` (anything else is returned as it is)."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def import_root(module: str) -> str:
    """The folder to put on sys.path so that `module` imports in another process."""
    top = sys.modules.get(module.split(".")[0])
    file = getattr(top, "__file__", None)
    if not file:
        return ""
    path = Path(file).resolve()
    return str(path.parent.parent if path.name == "__init__.py" else path.parent)


def _origin(kind: DeviceKind) -> str:
    return kind.driver if isinstance(kind.driver, str) else f"{kind.driver.__module__}"
