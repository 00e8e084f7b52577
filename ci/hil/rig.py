"""The rig: one YAML naming the platform, its devices, the model engine and the budgets, validated on load.

Every device is read with its kind's settings class (`hilci.hil.registry`), the rig's own settings with
`RigSettings`, so every error names the file and the field, with the nearest name for a misspelt one
(`rig.yaml: devices.imu.rate_hzz: unknown setting (did you mean 'rate_hz'?)`): a malformed rig is a usage
error when it loads, never a surprise in the middle of a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs

from hilci.errors import YamlFileError
from hilci.hil.discovery import device_kind, kinds
from hilci.hil.faults import Fault, FaultError, parse_fault
from hilci.hil.fleet import QuarantineSettings
from hilci.hil.power import PowerSettings
from hilci.hil.power import check as check_power
from hilci.hil.registry import MAX_TIMEOUT_S, DeviceKind, check_device
from hilci.util.settings import (
    SettingsError,
    build,
    field_names,
    flag,
    integer,
    mapping,
    nearest,
    nested,
    number,
    settings,
    text,
)
from hilci.util.yamlfile import load_yaml

ENGINE_SUFFIXES = (".onnx", ".plan", ".engine")


class RigError(ValueError):
    """The rig file is missing or invalid; the message names the file and the field."""


@settings
class Budgets:
    """Latency budgets of the rig's model engine (required by the latency suite)."""

    inference_p99_ms: float | None = number(None, allow_none=True, gt=0, help="engine latency, p99")
    loop_p99_ms: float | None = number(None, allow_none=True, gt=0,
                                       help="frame received -> goal written -> position read back, p99")


@settings
class RigSettings:
    """Settings of the whole rig (timeouts, sample counts)."""

    lock_timeout_s: float = number(10.0, gt=0, le=86_400, help="wait this long for a device another process holds")
    health_timeout_s: float = number(2.0, gt=0, le=MAX_TIMEOUT_S,
                                     help="at session start a device silent this long fails its own tests")
    sensor_window_s: float = number(1.0, gt=0, le=3600, help="sample window of each sensor test")
    latency_warmup: int = integer(20, ge=0, le=1_000_000, help="engine runs discarded before timing")
    latency_samples: int = integer(200, ge=1, le=10_000_000, help="timed engine runs")
    loop_samples: int = integer(30, ge=1, le=1_000_000, help="camera -> engine -> servo -> feedback iterations")
    lease_timeout_s: float = number(60.0, gt=0, le=86_400,
                                    help="a session's lease on the rig ends this long after its last renewal "
                                         "(its heartbeat renews it every third of this while it lives)")


@settings
class RigFile(RigSettings):
    """The rig YAML's top level."""

    name: str = text(help="rig name: test ids, JUnit properties, the Jenkins lock")
    platform: str | None = text(None, allow_none=True, help="free text for the report")
    emulate: bool = flag(False, help="true: the plugin starts emulators on pseudo-terminals")
    engine: str | None = text(None, allow_none=True, help="model engine: .onnx, .plan or .engine")
    budgets: Budgets = nested(Budgets)
    devices: dict = mapping(help="device name -> its kind (`driver:`) and settings")
    power: dict = mapping(help="the whole rig's power switch (hilci.hil.power); a device may have its own")
    quarantine: dict = mapping(help="{after: N, max_share: S}: out of service after N consecutive infrastructure "
                                    "failures, at most share S of the fleet at once (hilci.hil.fleet)")


@dataclass(frozen=True)
class Device:
    """One device of a rig: its name, its kind (the rig's `driver:`), and the kind's typed settings."""

    rig: str
    name: str
    driver: str
    settings: Any  # an instance of the kind's settings class
    faults: tuple[Fault, ...] = ()
    power: PowerSettings | None = None  # its own switch (the rig's, if any, is `Rig.power`)

    @property
    def kind(self) -> DeviceKind:
        found = device_kind(self.driver)
        if found is None:  # only if the module that registered the kind is not imported in this process
            raise KeyError(f"device kind {self.driver!r} is not registered")
        return found

    @property
    def port(self) -> str:
        return self.settings.port

    @property
    def baud(self) -> int:
        return self.settings.baud

    @property
    def label(self) -> str:
        return f"{self.rig}:{self.name}"

    @property
    def is_actuator(self) -> bool:
        return self.kind.is_actuator

    def with_settings(self, **changes: Any) -> Device:
        return Device(self.rig, self.name, self.driver, attrs.evolve(self.settings, **changes), self.faults,
                      self.power)


@dataclass(frozen=True)
class Rig:
    """A test rig: platform, devices, engine and budgets, as read from its YAML."""

    path: Path
    name: str
    platform: str
    emulate: bool
    devices: dict[str, Device]
    engine: Path | None
    budgets: Budgets
    settings: RigSettings
    power: PowerSettings | None = None  # the whole rig's switch
    quarantine: QuarantineSettings | None = None  # absent: the rig is never taken out of service

    def of_driver(self, driver: str) -> list[Device]:
        return [d for d in self.devices.values() if d.driver == driver]

    def power_of(self, device: Device) -> PowerSettings | None:
        """The switch that powers `device`: its own, else the rig's, else none."""
        return device.power or self.power


def load_rig(path: str | Path, base: Path | None = None) -> Rig:
    """Read and validate a rig YAML; relative engine paths resolve against `base` (default: cwd)."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise RigError(f"{where}: rig file not found")
    try:
        data = load_yaml(path)
    except YamlFileError as exc:
        raise RigError(str(exc)) from None
    if not isinstance(data, dict):
        raise RigError(f"{where}: expected a mapping with 'name' and 'devices'")
    try:
        top = build(RigFile, data, file=where)
    except SettingsError as exc:
        raise RigError(str(exc)) from None
    rig_settings = RigSettings(**{k: getattr(top, k) for k in field_names(RigSettings)})
    if not top.devices:
        raise RigError(f"{where}: devices: required, a mapping of device name to settings")
    devices = {}
    for dev_name, raw in top.devices.items():
        devices[str(dev_name)] = _device(where, top.name, str(dev_name), raw, top.emulate,
                                         rig_settings.sensor_window_s)
    engine_path = None
    if top.engine is not None:
        if not top.engine.endswith(ENGINE_SUFFIXES):
            raise RigError(f"{where}: engine: {top.engine!r} is not a .onnx, .plan or .engine file")
        engine_path = Path(top.engine)
        if not engine_path.is_absolute():
            engine_path = (base or Path.cwd()) / engine_path
    platform = top.platform or ("emulated" if top.emulate else "jetson")
    return Rig(path=path, name=top.name, platform=platform, emulate=top.emulate, devices=devices,
               engine=engine_path, budgets=top.budgets, settings=rig_settings,
               power=_power(where, "power", top.power, top.emulate), quarantine=_quarantine(where, top.quarantine))


def _quarantine(where: str, raw: Any) -> QuarantineSettings | None:
    if raw is None or raw == {}:
        return None
    try:
        return build(QuarantineSettings, raw, file=where, prefix="quarantine.")
    except SettingsError as exc:
        raise RigError(str(exc)) from None


def _power(where: str, field_path: str, raw: Any, emulate: bool) -> PowerSettings | None:
    """A power switch as the rig declares it, checked: one line naming the file and the field."""
    if raw is None or raw == {}:
        return None
    try:
        power = build(PowerSettings, raw, file=where, prefix=f"{field_path}.")
    except SettingsError as exc:
        raise RigError(str(exc)) from None
    problem = check_power(power)
    if problem:
        raise RigError(f"{where}: {field_path}.{problem}")
    if power.switch == "emulated" and not emulate:
        raise RigError(f"{where}: {field_path}.switch: an emulated switch needs an emulated rig (emulate: true)")
    return power


def _device(where: str, rig: str, name: str, raw: Any, emulate: bool, window_s: float) -> Device:
    field_path = f"devices.{name}"
    if not isinstance(raw, dict):
        raise RigError(f"{where}: {field_path}: expected a mapping with 'driver' and 'port'")
    registered = kinds()
    driver = raw.get("driver")
    kind = registered.get(driver) if isinstance(driver, str) else None
    if kind is None:
        names = tuple(registered)
        raise RigError(f"{where}: {field_path}.driver: unknown driver {driver!r}"
                       + (nearest(driver, names) if isinstance(driver, str) else f" (drivers: {', '.join(names)})"))
    if name in registered and name != driver:
        raise RigError(f"{where}: {field_path}: a device named {name!r} must use driver {name!r}")
    values = {k: v for k, v in raw.items() if k not in ("driver", "faults", "power")}
    try:
        dev_settings = build(kind.settings, values, file=where, prefix=f"{field_path}.")
    except SettingsError as exc:
        raise RigError(str(exc)) from None
    problem = check_device(dev_settings)
    if problem:
        raise RigError(f"{where}: {field_path}.{problem}")
    if emulate:
        dev_settings = attrs.evolve(dev_settings, port=dev_settings.port or "emulated")
    elif not dev_settings.port:
        raise RigError(f"{where}: {field_path}.port: required for a rig that is not emulated")
    if dev_settings.window_s is None:
        dev_settings = attrs.evolve(dev_settings, window_s=window_s)
    faults = raw.get("faults") or []
    if not isinstance(faults, list):
        raise RigError(f"{where}: {field_path}.faults: expected a list of faults")
    if faults and not emulate:
        raise RigError(f"{where}: {field_path}.faults: faults need an emulated rig (emulate: true)")
    parsed = []
    for i, item in enumerate(faults):
        try:
            parsed.append(parse_fault(item, file=where, prefix=f"{field_path}.faults[{i}].", device_kind=driver,
                                      allowed=kind.faults))
        except FaultError as exc:
            raise RigError(str(exc)) from None
    return Device(rig=rig, name=name, driver=driver, settings=dev_settings, faults=tuple(parsed),
                  power=_power(where, f"{field_path}.power", raw.get("power"), emulate))
