"""Faults an emulator can inject, as plain data shared by rig files, `--hil-fault` and `hilci emulate`.

A fault is `{kind, after_s, duration_s, fraction, rate_hz, delay_ms, code}`; spelled on the command line as
`KIND[:key=value,...]`, e.g. `stall:duration_s=2` or `rate_drop:rate_hz=150`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("disconnect", "stall", "corrupt", "garbage", "rate_drop", "reboot", "hw_error")
PARAMS = ("after_s", "duration_s", "fraction", "rate_hz", "delay_ms", "code")


class FaultError(ValueError):
    """A fault spelled wrongly; the message says which part."""


@dataclass(frozen=True)
class Fault:
    """One injected fault: what, when (seconds after injection), for how long (None: until cleared)."""

    kind: str
    after_s: float = 0.0
    duration_s: float | None = None
    fraction: float = 0.2  # corrupt / garbage: share of messages hit
    rate_hz: float | None = None  # rate_drop: the lowered rate (default: half the nominal)
    delay_ms: float = 10.0  # rate_drop on a servo: extra reply delay
    code: int = 0x20  # hw_error: Dynamixel hardware error bits (0x20: overload)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def parse_targeted(text: str, devices: Iterable[str], *, tests: bool = True) -> tuple[str, Fault, str]:
    """(device, fault, test pattern) from `DEVICE:KIND[:key=value,...][@TEST]` (`--hil-fault`, `hilci emulate
    --fault`); the pattern is "" when the fault applies to every test."""
    spec, _, pattern = text.partition("@") if tests else (text, "", "")
    device, _, rest = spec.partition(":")
    known = sorted(set(devices))
    if device not in known:
        raise FaultError(f"no device {device!r} in the rig ({', '.join(known)})")
    return device, parse_fault(rest), pattern


def parse_fault(item: Any) -> Fault:
    """A Fault from a rig's mapping or from a `KIND[:key=value,...]` string."""
    if isinstance(item, str):
        kind, _, rest = item.partition(":")
        values: dict[str, Any] = {"kind": kind.strip()}
        for part in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, val = part.partition("=")
            if not eq:
                raise FaultError(f"{part!r}: expected key=value")
            values[key.strip()] = val.strip()
        item = values
    if not isinstance(item, dict):
        raise FaultError(f"expected a mapping with 'kind', got {item!r}")
    kind = item.get("kind")
    if kind not in KINDS:
        raise FaultError(f"kind: unknown fault {kind!r} (faults: {', '.join(KINDS)})")
    params: dict[str, Any] = {}
    for key, value in item.items():
        if key == "kind":
            continue
        if key not in PARAMS:
            raise FaultError(f"{key}: unknown fault parameter (parameters: {', '.join(PARAMS)})")
        try:
            params[key] = int(value) if key == "code" else float(value)
        except (TypeError, ValueError):
            raise FaultError(f"{key}: expected a number, got {value!r}") from None
    fault = Fault(kind=kind, **params)
    if not 0.0 <= fault.fraction <= 1.0:
        raise FaultError(f"fraction: expected 0..1, got {fault.fraction}")
    return fault
