"""Faults an emulator can inject, read in ONE place for rig files, `--hil-fault`, the `hil_fault` marker, `hilci
emulate` and the emulators' control socket, with the same settings core as the rig (`hilci.util.settings`).

A fault is `{kind, after_s, duration_s, fraction, rate_hz, delay_ms, code}`; spelled on the command line as
`KIND[:key=value,...]`, e.g. `stall:duration_s=2` or `rate_drop:rate_hz=150`. Every error is one line naming
where the fault was written and the field: `--hil-fault imu:rate_drop:rate_hz=-5: rate_hz: expected a number > 0`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hilci.errors import SettingsError
from hilci.util.settings import as_dict, build, integer, nearest, number, settings, text

KINDS = ("disconnect", "stall", "corrupt", "garbage", "rate_drop", "reboot", "hw_error", "leak", "drift", "throttle")
# slow faults a soak looks for (docs/soak.md): they grow by `ramp` every second after they start
SLOW = ("leak", "drift", "throttle")
BOARD_ONLY = ("throttle",)  # the Jetson's own (the tegrastats stand-in), never a serial device's
MAX_S = 3600  # no fault waits or lasts longer than an hour


class FaultError(ValueError):
    """A fault spelled wrongly; the message says where and which part."""


@settings
class Fault:
    """One injected fault: what, when (seconds after injection), for how long (None: until cleared)."""

    kind: str = text(choices=KINDS)
    after_s: float = number(0.0, ge=0, le=MAX_S, help="seconds after injection")
    duration_s: float | None = number(None, allow_none=True, gt=0, le=MAX_S, help="None: until cleared")
    fraction: float = number(0.2, ge=0, le=1, help="corrupt / garbage: share of messages hit")
    rate_hz: float | None = number(None, allow_none=True, gt=0, le=10_000,
                                   help="rate_drop: the lowered rate (default: half the nominal)")
    delay_ms: float = number(10.0, ge=0, le=60_000, help="rate_drop on a servo: extra reply delay")
    code: int = integer(0x20, ge=0, le=255, help="hw_error on a servo: Dynamixel hardware error bits (0x20 overload)")
    ramp: float = number(1.0, ge=0, le=10_000, help="leak: MB held more per second; drift: a servo's reply delay "
                                                    "grows by this many ms per second, a stream's rate falls by this "
                                                    "many percent per second; throttle: degrees C per second")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in as_dict(self).items() if v is not None}


def parse_fault(item: Any, *, file: str = "fault", prefix: str = "", device_kind: str = "",
                allowed: Iterable[str] = KINDS) -> Fault:
    """A Fault from a mapping or from `KIND[:key=value,...]`; `file` and `prefix` name the place in errors,
    `allowed` are the faults that mean something to the device's protocol (`device_kind` names it)."""
    if isinstance(item, str):
        kind, _, rest = item.partition(":")
        values: dict[str, Any] = {"kind": kind.strip()}
        for part in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, val = part.partition("=")
            if not eq:
                raise FaultError(f"{file}: {prefix}{part!r}: expected key=value")
            values[key.strip()] = _number(val.strip())
        item = values
    if not isinstance(item, dict):
        raise FaultError(f"{file}: {prefix.rstrip('.') or 'fault'}: expected a mapping with 'kind', got {item!r}")
    kind = item.get("kind")
    if kind not in KINDS:
        hint = nearest(kind, KINDS) if isinstance(kind, str) else f" (faults: {', '.join(KINDS)})"
        raise FaultError(f"{file}: {prefix}kind: unknown fault {kind!r}{hint}")
    allowed = tuple(allowed)
    if kind not in allowed:
        raise FaultError(f"{file}: {prefix}kind: {kind} means nothing to a {device_kind or 'device'}'s protocol "
                         f"(its faults: {', '.join(allowed)})")
    try:
        return build(Fault, item, file=file, prefix=prefix)
    except SettingsError as exc:
        raise FaultError(str(exc)) from None


def parse_targeted(text: str, devices: dict[str, Any], *, tests: bool = True) -> tuple[str, Fault, str]:
    """(device, fault, test pattern) from `DEVICE:KIND[:key=value,...][@TEST]` (`--hil-fault`, `hilci emulate
    --fault`); `devices` maps each device name to its kind. The pattern is "" for every test."""
    spec, _, pattern = text.partition("@") if tests else (text, "", "")
    device, _, rest = spec.partition(":")
    if device not in devices:
        raise FaultError(f"{text}: no device {device!r} in the rig ({', '.join(sorted(devices))})")
    kind = devices[device]
    return device, parse_fault(rest, file=text, device_kind=kind.name, allowed=kind.faults), pattern


def _number(value: str) -> Any:
    """'150' -> 150, '0.5' -> 0.5, 'nan' -> nan (refused by the settings core), anything else stays text."""
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            continue
    return value
