"""The rig: one YAML naming the platform, its devices, the model engine and the budgets, validated on load.

Every error names the file and the field (`rig.yaml: devices.imu.rate_hz: expected a number, got 'fast'`),
so a malformed rig is a usage error, never a silent skip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.hil.faults import Fault, FaultError, parse_fault
from ci.yamlfile import YamlFileError, load_yaml

DRIVERS = ("imu", "gnss", "servo", "camera")
SENSORS = ("imu", "gnss", "camera")
ACTUATORS = ("servo",)

# Per-driver settings: name -> (default, kind). kind: "num" (a number), "str", "int_list", "map".
# A default of REQUIRED means the rig must say it.
REQUIRED = object()
COMMON = {
    "port": (REQUIRED, "str"),
    "baud": (115200, "num"),
    "open_timeout_s": (3.0, "num"),
    "window_s": (None, "num"),  # sample window of sensor tests; default: the rig's sensor_window_s  # how long open() retries with back-off before giving up
    "emulator": ({}, "map"),  # emulator settings (noise, jitter, ...), used only when the rig is emulated
}
DRIVER_FIELDS: dict[str, dict[str, tuple[Any, str]]] = {
    "imu": {
        "rate_hz": (200.0, "num"),
        "rate_tolerance_pct": (2.0, "num"),
        "jitter_p99_ms": (1.5, "num"),  # budget on |inter-arrival - period|, p99
        "gravity": (9.80665, "num"),
        "gravity_tolerance": (0.3, "num"),  # m/s^2
        "max_drops": (0, "num"),
        "stall_timeout_s": (0.5, "num"),
    },
    "gnss": {
        "rate_hz": (10.0, "num"),
        "rate_tolerance_pct": (2.0, "num"),
        "jitter_p99_ms": (5.0, "num"),
        "min_fix_quality": (1, "num"),
        "min_satellites": (4, "num"),
        "max_drops": (0, "num"),
        "stall_timeout_s": (0.5, "num"),
    },
    "camera": {
        "rate_hz": (30.0, "num"),
        "rate_tolerance_pct": (3.0, "num"),
        "jitter_p99_ms": (8.0, "num"),
        "width": (32, "num"),
        "height": (32, "num"),
        "max_drops": (0, "num"),
        "stall_timeout_s": (0.5, "num"),
    },
    "servo": {
        "ids": ([1], "int_list"),
        "model_number": (1060, "num"),  # XL430-W250
        "positions": ([1024, 3072, 2048], "int_list"),  # commanded positions (ticks) for the reach test
        "position_tolerance": (20, "num"),  # ticks
        "reach_s": (1.5, "num"),
        "roundtrip_p99_ms": (5.0, "num"),
        "estop_ms": (50.0, "num"),
        "roundtrip_samples": (200, "num"),
    },
}
RIG_FIELDS = {
    "lock_timeout_s": 10.0,
    "health_timeout_s": 2.0,
    "sensor_window_s": 1.0,
    "latency_warmup": 20,
    "latency_samples": 200,
    "loop_samples": 30,
}
BUDGET_FIELDS = ("inference_p99_ms", "loop_p99_ms")


class RigError(ValueError):
    """The rig file is missing or invalid; the message names the file and the field."""


@dataclass(frozen=True)
class Device:
    """One device of a rig: its name, driver, port and the driver's settings."""

    rig: str
    name: str
    driver: str
    port: str
    baud: int
    settings: dict[str, Any]
    emulator: dict[str, Any] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["settings"][key]
        except KeyError:
            raise AttributeError(key) from None

    @property
    def label(self) -> str:
        return f"{self.rig}:{self.name}"

    @property
    def is_actuator(self) -> bool:
        return self.driver in ACTUATORS


@dataclass(frozen=True)
class Rig:
    """A test rig: platform, devices, engine and budgets, as read from its YAML."""

    path: Path
    name: str
    platform: str
    emulate: bool
    devices: dict[str, Device]
    engine: Path | None
    budgets: dict[str, float]
    settings: dict[str, float]

    def of_driver(self, driver: str) -> list[Device]:
        return [d for d in self.devices.values() if d.driver == driver]


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
    known = {"name", "platform", "emulate", "devices", "engine", "budgets", *RIG_FIELDS}
    for key in data:
        if key not in known:
            raise RigError(f"{where}: {key}: unknown field (fields: {', '.join(sorted(known))})")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RigError(f"{where}: name: required, a non-empty string")
    emulate = data.get("emulate", False)
    if not isinstance(emulate, bool):
        raise RigError(f"{where}: emulate: expected true or false, got {emulate!r}")
    platform = str(data.get("platform", "emulated" if emulate else "jetson"))
    settings = {k: _number(where, k, data.get(k, default)) for k, default in RIG_FIELDS.items()}
    devices_raw = data.get("devices")
    if not isinstance(devices_raw, dict) or not devices_raw:
        raise RigError(f"{where}: devices: required, a mapping of device name to settings")
    devices = {}
    for dev_name, raw in devices_raw.items():
        devices[str(dev_name)] = _device(where, name, str(dev_name), raw, emulate, settings["sensor_window_s"])
    budgets_raw = data.get("budgets") or {}
    if not isinstance(budgets_raw, dict):
        raise RigError(f"{where}: budgets: expected a mapping of budget name to number")
    budgets = {}
    for key, value in budgets_raw.items():
        if key not in BUDGET_FIELDS:
            raise RigError(f"{where}: budgets.{key}: unknown budget (budgets: {', '.join(BUDGET_FIELDS)})")
        budgets[key] = _number(where, f"budgets.{key}", value)
    engine = data.get("engine")
    engine_path = None
    if engine is not None:
        if not isinstance(engine, str) or not engine:
            raise RigError(f"{where}: engine: expected a path to a .onnx, .plan or .engine file")
        if not engine.endswith((".onnx", ".plan", ".engine")):
            raise RigError(f"{where}: engine: {engine!r} is not a .onnx, .plan or .engine file")
        engine_path = Path(engine)
        if not engine_path.is_absolute():
            engine_path = (base or Path.cwd()) / engine_path
    return Rig(path=path, name=name, platform=platform, emulate=emulate, devices=devices,
               engine=engine_path, budgets=budgets, settings=settings)


def _device(where: str, rig: str, name: str, raw: Any, emulate: bool, window_s: float) -> Device:
    field_path = f"devices.{name}"
    if not isinstance(raw, dict):
        raise RigError(f"{where}: {field_path}: expected a mapping with 'driver' and 'port'")
    driver = raw.get("driver")
    if driver not in DRIVERS:
        raise RigError(f"{where}: {field_path}.driver: unknown driver {driver!r} (drivers: {', '.join(DRIVERS)})")
    if name in DRIVERS and name != driver:
        raise RigError(f"{where}: {field_path}: a device named {name!r} must use driver {name!r}")
    spec = {**COMMON, **DRIVER_FIELDS[driver]}
    for key in raw:
        if key not in spec and key not in ("driver", "faults"):
            raise RigError(f"{where}: {field_path}.{key}: unknown field for driver {driver} "
                           f"(fields: {', '.join(sorted(spec))})")
    values: dict[str, Any] = {}
    for key, (default, kind) in spec.items():
        if key == "port" and emulate:
            values[key] = str(raw.get("port", "emulated"))
            continue
        if key not in raw:
            if default is REQUIRED:
                raise RigError(f"{where}: {field_path}.{key}: required for a rig that is not emulated")
            values[key] = default
            continue
        values[key] = _typed(where, f"{field_path}.{key}", raw[key], kind)
    faults = raw.get("faults") or []
    if not isinstance(faults, list):
        raise RigError(f"{where}: {field_path}.faults: expected a list of faults")
    if faults and not emulate:
        raise RigError(f"{where}: {field_path}.faults: faults need an emulated rig (emulate: true)")
    parsed = []
    for i, item in enumerate(faults):
        try:
            parsed.append(parse_fault(item))
        except FaultError as exc:
            raise RigError(f"{where}: {field_path}.faults[{i}]: {exc}") from None
    if values["window_s"] is None:
        values["window_s"] = window_s
    port = values.pop("port")
    baud = int(values.pop("baud"))
    emulator = values.pop("emulator")
    return Device(rig=rig, name=name, driver=driver, port=port, baud=baud, settings=values,
                  emulator=emulator, faults=tuple(parsed))


def _typed(where: str, field_path: str, value: Any, kind: str) -> Any:
    if kind == "num":
        return _number(where, field_path, value)
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise RigError(f"{where}: {field_path}: expected a non-empty string, got {value!r}")
        return value
    if kind == "int_list":
        if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool)
                                                                for v in value):
            raise RigError(f"{where}: {field_path}: expected a list of integers, got {value!r}")
        return list(value)
    if kind == "map":
        if not isinstance(value, dict):
            raise RigError(f"{where}: {field_path}: expected a mapping, got {value!r}")
        return dict(value)
    raise AssertionError(kind)


def _number(where: str, field_path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise RigError(f"{where}: {field_path}: expected a number, got {value!r}")
    return value
