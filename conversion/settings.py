"""The model stages' sections of hilci.yaml (`train`, `quantize`, `convert`) as typed settings classes.

Each class declares its fields' types, ranges and defaults (`hilci.util.settings`); `hilci.pipeline.config` reads hilci.yaml
through them before any stage runs, so `train.epochz` or `warmup_s: null` is one line naming the file and the
field, not a traceback minutes into a run. No torch here: a Jetson validates `convert` with the core install.
"""

from __future__ import annotations

from hilci.errors import SettingsError
from hilci.util.settings import integer, mapping, nearest, nested, number, settings, text

BUDGETS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms")
HOUR_S = 3600.0


@settings
class TrainSettings:
    """FP32 training of the example model and its accuracy gate."""

    seed: int = integer(0, ge=0, le=2**32 - 1)
    epochs: int = integer(10, ge=1, le=10_000)
    batch_size: int = integer(32, ge=1, le=1_000_000)
    learning_rate: float = number(0.01, gt=0, le=10)
    image_size: int = integer(8, ge=8, le=4096, help="digits are 8x8; larger sizes upscale them")
    min_accuracy: float = number(0.95, ge=0, le=1, help="gate: test accuracy of the FP32 model")


@settings
class QuantizeSettings:
    """PTQ and QAT, Q/DQ export and the drop, lint and parity gates."""

    qat_epochs: int = integer(2, ge=1, le=10_000)
    qat_learning_rate: float = number(0.001, gt=0, le=10)
    max_drop_pp: float = number(1.0, ge=-100, le=100, help="gate: QAT accuracy drop against FP32, points (< 0 asks for a gain)")
    opset: int = integer(17, ge=13, le=30, help="Q/DQ per channel needs opset 13")
    min_parity: float = number(0.995, ge=0, le=1)
    atol: float = number(0.001, ge=0, le=1e6)
    rtol: float = number(0.001, ge=0, le=1e6)


@settings
class BenchmarkSettings:
    """trtexec's knobs: --warmUp (s here), --iterations (minimum), --duration (s minimum), batch size."""

    warmup_s: float = number(0.2, ge=0, le=HOUR_S)
    iterations: int = integer(200, ge=1, le=10_000_000)
    duration_s: float = number(1.0, ge=0, le=HOUR_S)
    batch: int = integer(1, ge=1, le=65_536)
    profile_runs: int = integer(20, ge=0, le=100_000, help="runs under TensorRT's IProfiler (TensorRT only)")


@settings
class Budgets:
    """Latency gates on the benchmark, in ms; an absent budget is not gated."""

    p50_ms: float | None = number(None, gt=0, le=3_600_000, allow_none=True)
    p90_ms: float | None = number(None, gt=0, le=3_600_000, allow_none=True)
    p95_ms: float | None = number(None, gt=0, le=3_600_000, allow_none=True)
    p99_ms: float | None = number(10.0, gt=0, le=3_600_000, allow_none=True)
    mean_ms: float | None = number(5.0, gt=0, le=3_600_000, allow_none=True)
    max_ms: float | None = number(None, gt=0, le=3_600_000, allow_none=True)

    def given(self) -> dict[str, float]:
        """The budgets that are set, by name (`p99_ms`: 10.0)."""
        return {name: getattr(self, name) for name in BUDGETS if getattr(self, name) is not None}


@settings
class ConvertSettings:
    """Engine build, parity and benchmark, with the parity and latency gates."""

    backend: str = text("auto", choices=("auto", "onnxruntime", "tensorrt"))
    onnxruntime: dict = mapping(help="ONNX Runtime engine settings (checked by hilci.conversion.engines.onnxruntime)")
    tensorrt: dict = mapping(help="TensorRT builder settings (checked by hilci.conversion.engines.tensorrt)")
    min_parity: float = number(0.995, ge=0, le=1)
    atol: float = number(0.001, ge=0, le=1e6)
    rtol: float = number(0.001, ge=0, le=1e6)
    benchmark: BenchmarkSettings = nested(BenchmarkSettings)
    budgets: Budgets = nested(Budgets)

    def check(self, file: object) -> None:
        """The engines' own settings: names checked against each backend's (values at build, where the backend
        knows its capabilities). Imports no engine runtime."""
        from hilci.conversion.engines import onnxruntime, tensorrt

        for name, module in (("onnxruntime", onnxruntime), ("tensorrt", tensorrt)):
            known = tuple(module.SETTINGS)
            for key in getattr(self, name):
                if key not in known:
                    raise SettingsError(f"{file}: convert.{name}.{key}: unknown setting{nearest(str(key), known)}")
