"""A latency benchmark modelled on trtexec: warm up for a time, then time at least N runs and a duration.

Reports what trtexec reports: min, mean, median, p90/p95/p99, max, throughput, the coefficient of variation,
warm-up and iteration counts. Statistics come from `hilci.results.measurements` (p95 through its `percentile`).
No torch here: it runs any `hilci.conversion.engines` engine, on a Jetson too.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from hilci.conversion.settings import BenchmarkSettings  # typed with the other hilci.yaml sections
from hilci.results.measurements import Stats, percentile
from hilci.util.settings import as_dict

MAX_SAMPLES_IN_JSON = 5000


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


def run(engine, x: np.ndarray, settings: BenchmarkSettings | None = None) -> dict[str, Any]:
    """Warm up, then time single runs with perf_counter_ns until both the iteration and duration minimums hold."""
    settings = settings or BenchmarkSettings()
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
        "settings": as_dict(settings),
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
