"""Model path figures, measured side by side in one run: accuracies and drops, FP32 vs Q/DQ latency in
ONNX Runtime, the time of each stage, and whether train + quantize reproduce the same ONNX bytes.

Run: .venv/bin/python benchmarks/model.py   (about a minute on 2 CPU cores; uses scratch roots in /tmp)
     .venv/bin/python benchmarks/model.py --quick   (one short run: few epochs, a short benchmark; what
     `make test` runs through tests/test_benchmarks.py to prove the script works)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hilci.conversion import benchmark, manifest  # noqa: E402
from hilci.conversion.engines import load_engine  # noqa: E402

STAGES = ("train", "quantize", "convert")
QUICK = {"train": {"epochs": 2, "batch_size": 64, "min_accuracy": 0.5},
         "quantize": {"qat_epochs": 1, "max_drop_pp": 50.0, "min_parity": 0.5},
         "convert": {"backend": "onnxruntime", "min_parity": 0.5,
                     "benchmark": {"warmup_s": 0.0, "iterations": 20, "duration_s": 0.0},
                     "budgets": {"p99_ms": 1000.0, "mean_ms": 1000.0}}}


def run_stages(root: Path, quick: bool = False) -> dict[str, float]:
    """Each stage as the pipeline runs it (`python -m hilci stage NAME`), timed from outside."""
    if quick:
        import yaml

        (root / "hilci.yaml").write_text(yaml.safe_dump({"pipeline": "hilci.example:PIPELINE", **QUICK}))
    else:
        shutil.copy(REPO / "hilci.yaml", root / "hilci.yaml")
    times = {}
    for stage in STAGES:
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "hilci", "stage", stage], cwd=root, capture_output=True,
                             text=True, timeout=600)
        times[stage] = time.perf_counter() - start
        if out.returncode != 0:
            sys.exit(f"bench: stage {stage} failed (exit {out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return times


def onnx_weights(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def latency_side_by_side(fp32: Path, qdq: Path, x: np.ndarray, rounds: int = 5,
                         iterations: int = 500) -> dict[str, dict]:
    """Alternate FP32 and Q/DQ in short rounds so both see the same machine load; pool the samples."""
    engines = {"fp32": load_engine(fp32, intra_op_threads=1), "qdq": load_engine(qdq, intra_op_threads=1)}
    samples: dict[str, list[float]] = {k: [] for k in engines}
    settings = benchmark.BenchmarkSettings(warmup_s=0.1 if iterations >= 100 else 0.0, iterations=iterations,
                                           duration_s=0.2 if iterations >= 100 else 0.0)
    for _ in range(rounds):
        for name, engine in engines.items():
            samples[name] += benchmark.run(engine, x, settings)["samples"]
    return {k: benchmark.summarize(v, wall_s=sum(v) / 1e3) for k, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short run (a smoke run of this script)")
    quick = parser.parse_args().quick
    roots = [Path(tempfile.mkdtemp(prefix=f"hilci-bench-{i}-")) for i in ((1,) if quick else (1, 2))]
    try:
        times = [run_stages(r, quick) for r in roots]
        metrics = json.loads((roots[0] / "artifacts/quantize/metrics.json").read_text())
        print(f"bench: accuracy fp32: {100 * metrics['fp32_accuracy']:.2f} % (digits test split, n=359)")
        print(f"bench: accuracy ptq: {100 * metrics['ptq_accuracy']:.2f} % (modelopt INT8_DEFAULT_CFG, max calib)")
        print(f"bench: accuracy qat: {100 * metrics['qat_accuracy']:.2f} % (PTQ + short fine-tune)")
        print(f"bench: drop ptq: {metrics['ptq_drop_pp']:.2f} pp (fp32 - ptq)")
        print(f"bench: drop qat: {metrics['qat_drop_pp']:.2f} pp (fp32 - qat; gate <= 1.0 pp)")
        par = metrics["parity"]
        print(f"bench: parity ort vs pytorch: {100 * par['agreement']:.2f} % same class "
              f"(max abs {par['max_abs']:.4g}, max rel {par['max_rel']:.3g}, {par['max_steps']:.0f} accumulator steps)")
        for stage in STAGES:
            again = f"run 2: {times[1][stage]:.1f} s; " if len(times) > 1 else ""
            print(f"bench: stage time {stage}: {times[0][stage]:.1f} s ({again}subprocess incl. imports)")
        q = roots[0] / "artifacts/quantize"
        ref = np.load(q / "reference.npz")
        lat = latency_side_by_side(q / "model_fp32.onnx", q / "model.onnx", ref["x"][:1], rounds=1 if quick else 5,
                                   iterations=20 if quick else 500)
        for stat in ("median_ms", "p99_ms"):
            f, d = lat["fp32"][stat], lat["qdq"][stat]
            print(f"bench: ort latency {stat[:-3]}: fp32 {1e3 * f:.1f} us, qdq {1e3 * d:.1f} us, "
                  f"qdq/fp32 {d / f:.2f}x (batch 1, 1 thread, n={lat['qdq']['n']} each, interleaved)")
        if quick:
            print("bench: reproducibility onnx sha256: not measured (--quick makes one run)")
            return
        shas = [manifest.sha256_file(r / "artifacts/quantize/model.onnx") for r in roots]
        ckpts = [manifest.sha256_file(r / "artifacts/train/model.pt") for r in roots]
        if shas[0] == shas[1]:
            print(f"bench: reproducibility onnx sha256: identical across 2 runs ({shas[0][:16]}); "
                  f"checkpoint {'identical' if ckpts[0] == ckpts[1] else 'differs'}")
        else:
            w = [onnx_weights(r / "artifacts/quantize/model.onnx") for r in roots]
            diff = max(float(np.abs(w[0][k].astype(np.float64) - w[1][k]).max()) for k in w[0])
            print(f"bench: reproducibility onnx sha256: differs ({shas[0][:12]} vs {shas[1][:12]}); "
                  f"largest weight difference {diff:.3g}")
    finally:
        for r in roots:
            shutil.rmtree(r, ignore_errors=True)


if __name__ == "__main__":
    main()
