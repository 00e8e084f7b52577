"""Typed settings: the one way hilci reads a mapping from a file (rig devices, hilci.yaml sections, fault specs,
manifests) into a class whose fields carry their type, range and default.

A settings class is an attrs class made with `@settings`, its fields declared with `number`, `integer`, `text`,
`flag`, `int_list`, `mapping`, `nested` or `number_list`. `build(cls, data, file=..., prefix=...)` checks the
mapping (unknown keys with the nearest valid name, wrong types, values out of range, NaN and infinities) and
raises one `SettingsError` whose message names the file and the dotted field:

    hil_tests/rigs/sim.yaml: devices.imu.rate_hz: expected a number > 0, got 0

Standard library, PyYAML and attrs only: a Jetson validates its rig with the core install.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

import attrs

from hilci.errors import SettingsError

REQUIRED = attrs.NOTHING  # a field the file must set
_KIND = "hilci.kind"


def settings(cls: type) -> type:
    """Declare a settings class: frozen, keyword-only, and built from a mapping by `build`."""
    return attrs.frozen(kw_only=True)(cls)


def _field(kind: tuple, default: Any, help: str) -> Any:
    if isinstance(default, (list, dict)):
        value = default
        return attrs.field(factory=lambda: type(value)(value), metadata={_KIND: kind, "help": help})
    return attrs.field(default=default, metadata={_KIND: kind, "help": help})


def number(default: Any = REQUIRED, *, gt: float | None = None, ge: float | None = None,
           le: float | None = None, allow_none: bool = False, help: str = "") -> Any:
    """A finite real number within the bounds given (bool is not a number)."""
    return _field(("number", gt, ge, le, allow_none), default, help)


def integer(default: Any = REQUIRED, *, gt: int | None = None, ge: int | None = None, le: int | None = None,
            allow_none: bool = False, help: str = "") -> Any:
    """A whole number within the bounds given (2.0 reads as 2; 2.5 is refused)."""
    return _field(("integer", gt, ge, le, allow_none), default, help)


def text(default: Any = REQUIRED, *, choices: tuple[str, ...] = (), nonempty: bool = True,
         allow_none: bool = False, help: str = "") -> Any:
    """A string; with `choices`, one of them."""
    return _field(("text", tuple(choices), nonempty, allow_none), default, help)


def flag(default: Any = REQUIRED, *, help: str = "") -> Any:
    """true or false (not 0/1, not "yes")."""
    return _field(("flag",), default, help)


def int_list(default: Any = REQUIRED, *, ge: int | None = None, le: int | None = None, min_len: int = 0,
             help: str = "") -> Any:
    """A list of whole numbers, each within the bounds given."""
    return _field(("int_list", ge, le, min_len), default, help)


def number_list(default: Any = REQUIRED, *, gt: float | None = None, ge: float | None = None,
                le: float | None = None, min_len: int = 0, help: str = "") -> Any:
    """A list of finite numbers, each within the bounds given."""
    return _field(("number_list", gt, ge, le, min_len), default, help)


def str_list(default: Any = REQUIRED, *, help: str = "") -> Any:
    """A list of strings (e.g. extra command-line arguments)."""
    return _field(("str_list",), default, help)


def mapping(default: Any = None, *, help: str = "") -> Any:
    """A free-form mapping whose keys the reader checks itself (e.g. emulator settings)."""
    return _field(("mapping",), {} if default is None else default, help)


def nested(cls: type, *, help: str = "") -> Any:
    """A sub-section read with its own settings class; absent means all its defaults."""
    return attrs.field(factory=lambda: cls(), metadata={_KIND: ("nested", cls), "help": help})


def field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in attrs.fields(cls))


def nearest(name: str, valid: tuple[str, ...] | list[str]) -> str:
    """' (did you mean 'x'?)' for a misspelt key, or the list of valid keys."""
    close = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (valid: {', '.join(valid)})" if valid else ""


def build(cls: type, data: Any, *, file: Any, prefix: str = "") -> Any:
    """An instance of the settings class `cls` from `data` (a mapping, or None for all defaults).

    `file` and `prefix` only name the place in errors: `FILE: PREFIX.field: problem`."""
    where = f"{file}: {prefix}"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        section = f" {prefix.rstrip('.')}:" if prefix else ""
        raise SettingsError(f"{file}:{section} expected a mapping of settings, got {_show(data)}")
    fields = {f.name: f for f in attrs.fields(cls)}
    for key in data:
        if key not in fields:
            raise SettingsError(f"{where}{key}: unknown setting{nearest(key, tuple(fields))}")
    values = {}
    for name, f in fields.items():
        kind = f.metadata.get(_KIND)
        dotted = f"{prefix}{name}"
        if name not in data:
            if f.default is attrs.NOTHING:
                raise SettingsError(f"{file}: {dotted}: required")
            continue
        values[name] = _check(kind, data[name], file, dotted)
    return cls(**values)


def _check(kind: tuple, value: Any, file: Any, dotted: str) -> Any:
    def fail(expected: str) -> SettingsError:
        return SettingsError(f"{file}: {dotted}: expected {expected}, got {_show(value)}")

    tag = kind[0]
    if tag in ("number", "integer"):
        _, gt, ge, le, allow_none = kind
        if value is None and allow_none:
            return None
        return _number(value, tag == "integer", gt, ge, le, fail)
    if tag == "text":
        _, choices, nonempty, allow_none = kind
        if value is None and allow_none:
            return None
        if not isinstance(value, str) or (nonempty and not value.strip()):
            raise fail(f"one of {', '.join(choices)}" if choices else "a non-empty string" if nonempty else "a string")
        if choices and value not in choices:
            raise SettingsError(f"{file}: {dotted}: {value!r} is not one of {', '.join(choices)}")
        return value
    if tag == "flag":
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if tag in ("int_list", "number_list"):
        if tag == "int_list":
            _, ge, le, min_len = kind
            gt = None
        else:
            _, gt, ge, le, min_len = kind
        if not isinstance(value, list) or len(value) < min_len:
            raise fail(f"a list of {'whole numbers' if tag == 'int_list' else 'numbers'}"
                       + (f" (at least {min_len})" if min_len else ""))
        out = []
        for i, item in enumerate(value):
            out.append(_check(("integer" if tag == "int_list" else "number", gt, ge, le, False), item, file,
                              f"{dotted}[{i}]"))
        return out
    if tag == "str_list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail("a list of strings")
        return list(value)
    if tag == "mapping":
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise fail("a mapping")
        return dict(value)
    if tag == "nested":
        return build(kind[1], value, file=file, prefix=f"{dotted}.")
    raise TypeError(f"unknown settings kind {tag!r}")  # a programming error in a settings class


def _number(value: Any, whole: bool, gt: Any, ge: Any, le: Any, fail: Any) -> Any:
    bounds = " ".join(b for b in (f"> {gt}" if gt is not None else "", f">= {ge}" if ge is not None else "",
                                  f"<= {le}" if le is not None else "") if b)
    expected = ("a whole number" if whole else "a number") + (f" {bounds}" if bounds else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(expected)
    if isinstance(value, float) and not math.isfinite(value):
        raise fail(expected)
    if whole:
        if isinstance(value, float) and not value.is_integer():
            raise fail(expected)
        value = int(value)
    if (gt is not None and not value > gt) or (ge is not None and not value >= ge) or (le is not None and not value <= le):
        raise fail(expected)
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def as_dict(instance: Any) -> dict[str, Any]:
    """The settings as plain data (for cache keys, JSON and reports)."""
    return attrs.asdict(instance, recurse=True)
