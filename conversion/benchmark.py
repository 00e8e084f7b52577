"""A latency benchmark modelled on trtexec: warm up for a time, then time at least N runs and a duration.

Reports what trtexec reports: min, mean, median, p90/p95/p99, max, throughput, the coefficient of variation,
warm-up and iteration counts. Statistics come from `ci.measurements` (p95 through its `percentile`).
No torch here: it runs any `conversion.engines` engine, on a Jetson too.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ci.measurements import Stats, percentile

MAX_SAMPLES_IN_JSON = 5000


@dataclass(frozen=True)
class BenchmarkSettings:
    """trtexec's knobs: --warmUp (ms), --iterations (minimum), --duration (s minimum), batch size."""

    warmup_s: float = 0.2
    iterations: int = 200
    duration_s: float = 1.0
    batch: int = 1
    profile_runs: int = 20  # runs under TensorRT's IProfiler for per-layer times (TensorRT only)

    @classmethod
    def from_config(cls, cfg: dict[str, Any], where: str = "benchmark") -> BenchmarkSettings:
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}")
        settings = cls(**cfg)
        if settings.iterations < 1 or settings.batch < 1 or settings.warmup_s < 0 or settings.duration_s < 0:
            raise ValueError(f"{where}: iterations and batch must be >= 1, warmup_s and duration_s >= 0")
        return settings


def summarize(latencies_ms: list[float], wall_s: float, batch: int = 1) -> dict[str, float]:
    """trtexec's summary of a list of per-run latencies (ms) timed over `wall_s` seconds."""
    stats = Stats.of(latencies_ms)
    ordered = sorted(latencies_ms)
    return {
        "n": stats.n, "min_ms": stats.min, "mean_ms": stats.mean, "median_ms": stats.p50,
        "p90_ms": stats.p90, "p95_ms": percentile(ordered, 95), "p99_ms": stats.p99, "max_ms": stats.max,
        "std_ms": stats.jitter, "cv_percent": 100.0 * stats.jitter / stats.mean if stats.mean else 0.0,
        "throughput_qps": stats.n / wall_s if wall_s > 0 else 0.0,
        "throughput_ips": stats.n * batch / wall_s if wall_s > 0 else 0.0,
    }


def run(engine, x: np.ndarray, settings: BenchmarkSettings = BenchmarkSettings()) -> dict[str, Any]:
    """Warm up, then time single runs with perf_counter_ns until both the iteration and duration minimums hold."""
    clock = time.perf_counter_ns
    warm_end = clock() + int(settings.warmup_s * 1e9)
    warmups = 0
    while warmups == 0 or clock() < warm_end:
        engine.run(x)
        warmups += 1
    latencies: list[float] = []
    start = clock()
    min_end = start + int(settings.duration_s * 1e9)
    while len(latencies) < settings.iterations or clock() < min_end:
        t0 = clock()
        engine.run(x)
        latencies.append((clock() - t0) / 1e6)
    wall_s = (clock() - start) / 1e9
    result: dict[str, Any] = {
        "backend": engine.backend,
        "engine": str(getattr(engine, "path", "")),
        "input_shape": list(x.shape),
        "settings": asdict(settings),
        "warmup_runs": warmups,
        "iterations": len(latencies),
        "wall_s": wall_s,
        "host": platform.node(),
        "summary": summarize(latencies, wall_s, settings.batch),
    }
    if len(latencies) <= MAX_SAMPLES_IN_JSON:
        result["latencies_ms"] = [round(v, 6) for v in latencies]
    result["samples"] = latencies  # in memory for the gates; `write` keeps at most MAX_SAMPLES_IN_JSON
    if hasattr(engine, "layer_profile") and settings.profile_runs > 0:
        result["layers_ms"] = engine.layer_profile(x, settings.profile_runs)
    return result


def write(result: dict[str, Any], path: Path) -> Path:
    """benchmark.json: everything but the in-memory samples (raw latencies only for small runs)."""
    path = Path(path)
    path.write_text(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1) + "\n")
    return path
