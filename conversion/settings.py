"""Stage settings from hilci.yaml: defaults, and one clear error naming the field when a value is wrong."""

from __future__ import annotations

from typing import Any

from ci.stage import StageError

TRAIN = {"seed": 0, "epochs": 10, "batch_size": 32, "learning_rate": 0.01, "image_size": 8,
         "min_accuracy": 0.95}
QUANTIZE = {"qat_epochs": 2, "qat_learning_rate": 0.001, "max_drop_pp": 1.0, "opset": 17,
            "min_parity": 0.995, "atol": 0.001, "rtol": 0.001}
CONVERT = {"backend": "auto", "onnxruntime": {}, "tensorrt": {}, "min_parity": 0.995, "atol": 0.001,
           "rtol": 0.001, "benchmark": {}, "budgets": {"p99_ms": 10.0, "mean_ms": 5.0}}
BUDGETS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms")


def resolve(section: str, given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with hilci.yaml's section; unknown keys and wrong types name `section.key`."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise StageError(f"hilci.yaml: {section}.{unknown[0]}: unknown setting (known: {', '.join(defaults)})")
    merged = dict(defaults)
    for key, value in given.items():
        default = defaults[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif isinstance(default, dict):
            ok = isinstance(value, dict) or value is None
            value = dict(value or {})
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise StageError(f"hilci.yaml: {section}.{key}: expected {type(default).__name__}, got {value!r}")
        merged[key] = value
    return merged


def positive(section: str, cfg: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if cfg[key] <= 0:
            raise StageError(f"hilci.yaml: {section}.{key}: must be > 0, got {cfg[key]!r}")


def fraction(section: str, cfg: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if not 0.0 <= cfg[key] <= 1.0:
            raise StageError(f"hilci.yaml: {section}.{key}: must be between 0 and 1, got {cfg[key]!r}")
