"""The pipeline's model stages: `train`, `quantize` and `convert` (`hilci stage NAME` calls these).

Each reads its hilci.yaml section, writes its artifacts with a manifest beside each, and records one JUnit
testcase per gate (accuracy, drop, lint, parity, latency) with the numbers as properties. torch and modelopt
are imported inside `train` and `quantize` only; `convert` runs on a Jetson without them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from hilci.conversion import manifest
from hilci.conversion.settings import ConvertSettings
from hilci.errors import StageError
from hilci.results.measurements import distribution, measure
from hilci.stage.context import StageContext
from hilci.util.extras import ensure
from hilci.util.settings import as_dict

CHECKPOINT = "artifacts/train/model.pt"
QDQ_MODEL = "artifacts/quantize/model.onnx"
REFERENCE = "artifacts/quantize/reference.npz"


def _code() -> dict[str, str]:
    return {"path": "conversion/", "sha256": manifest.code_hash()}


def _config(section: str, cfg: dict[str, Any]) -> dict[str, Any]:
    return {"path": f"hilci.yaml#{section}", "sha256": manifest.sha256_json(cfg), "values": cfg}


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, indent=1, sort_keys=True, default=float) + "\n")
    return path


def train(ctx: StageContext) -> None:
    """FP32 training of the example model; gate: test accuracy."""
    cfg = ctx.config  # validated by hilci.conversion.settings.TrainSettings before the stage started
    ensure("torch", "sklearn")  # one line naming the extra, not a traceback, when one is missing
    from hilci.conversion import train as tr
    from hilci.conversion.data import load_splits

    start = time.perf_counter()
    try:
        splits = load_splits(cfg["image_size"], cfg["seed"])
    except ValueError as exc:
        raise StageError(f"hilci.yaml: train.image_size: {exc}") from None
    run = tr.TrainSettings(cfg["epochs"], cfg["batch_size"], cfg["learning_rate"], cfg["seed"])
    model, losses = tr.train_fp32(splits.x_train, splits.y_train, splits.image_size, run)
    acc = tr.accuracy(tr.predict(model, splits.x_test), splits.y_test)
    elapsed = time.perf_counter() - start
    metrics = {"accuracy": acc, "losses": losses, "train_s": elapsed, "device": str(tr.select_device())}
    ckpt = tr.save_checkpoint(model.cpu(), ctx.artifacts / "model.pt",
                              {"config": cfg, "data": splits.record(), "metrics": {"accuracy": acc}})
    _write_json(ctx.artifacts / "metrics.json", metrics)
    manifest.write_manifest(ckpt, "checkpoint", root=ctx.root, settings=cfg, metrics={"accuracy": acc},
                            inputs={"data": splits.record(), "code": _code(), "config": _config("train", cfg)})
    ctx.log(f"train: FP32 accuracy {acc:.4f} after {cfg['epochs']} epochs in {elapsed:.1f} s")
    ctx.gate("accuracy", measure("train.accuracy", acc, low=cfg["min_accuracy"]), time_s=elapsed)


def quantize(ctx: StageContext) -> None:
    """PTQ and QAT with modelopt, Q/DQ ONNX export and lint, ORT-vs-PyTorch parity; gates: drop, lint, parity."""
    cfg = ctx.config  # validated by hilci.conversion.settings.QuantizeSettings (opset >= 13: Q/DQ per channel)
    ensure("torch", "modelopt", "onnx", "onnxruntime", "sklearn")
    from hilci.conversion import lint, parity
    from hilci.conversion.engines import load_engine

    start = time.perf_counter()
    trained = _load_trained(ctx)
    quantized = _quantize_model(trained, cfg)
    _drop_gate(ctx, quantized, cfg["max_drop_pp"])
    onnx_path, fp32_onnx = _export(ctx, trained, quantized, cfg)
    report = _lint_gate(ctx, onnx_path)
    engine_logits = load_engine(onnx_path).run(trained.splits.x_test)
    par = parity.compare(quantized.reference, engine_logits, atol=cfg["atol"], rtol=cfg["rtol"],
                         step=parity.output_step(lint.load(onnx_path)), labels=trained.splits.y_test)
    acc = quantized.accuracy
    metrics = {"fp32_accuracy": acc["fp32"], "ptq_accuracy": acc["ptq"], "qat_accuracy": acc["qat"],
               "ptq_drop_pp": quantized.drop_pp("ptq"), "qat_drop_pp": quantized.drop_pp("qat"),
               "lint": report.summary(), "parity": par.as_dict(), "quantize_s": time.perf_counter() - start,
               "qat_device": quantized.device}
    _write_json(ctx.artifacts / "metrics.json", metrics)
    _write_quantize_manifests(ctx, trained, cfg, metrics, (onnx_path, "qdq-onnx"), (fp32_onnx, "fp32-onnx"),
                              (ctx.artifacts / "reference.npz", "reference"))
    ctx.log(f"quantize: accuracy fp32 {acc['fp32']:.4f} ptq {acc['ptq']:.4f} qat {acc['qat']:.4f}; "
            f"{report.summary()}")
    _parity_gate(ctx, "quantize", par, cfg["min_parity"])


class _Trained:
    """The FP32 checkpoint `train` left, its training settings and the data it was trained on."""

    def __init__(self, path: Path, model, config: dict, splits):
        self.path, self.model, self.config, self.splits = path, model, config, splits


class _Quantized:
    """The QAT model, its logits on the test set (the parity reference) and the three accuracies."""

    def __init__(self, model, reference, accuracy: dict[str, float], device: str):
        self.model, self.reference, self.accuracy, self.device = model, reference, accuracy, device

    def drop_pp(self, which: str) -> float:
        """Accuracy lost against FP32 by `which` ("ptq" or "qat"), in percentage points."""
        return 100 * (self.accuracy["fp32"] - self.accuracy[which])


def _load_trained(ctx: StageContext) -> _Trained:
    """The checkpoint and the same data splits it was trained on; a checkpoint trained on other data is an error."""
    from hilci.conversion import train as tr
    from hilci.conversion.data import load_splits

    path = ctx.root / CHECKPOINT
    try:
        model, ckpt = tr.load_checkpoint(path)
    except tr.CheckpointError as exc:
        raise StageError(str(exc)) from None
    config = ckpt.get("config", {})
    splits = load_splits(model.image_size, int(config.get("seed", 0)))
    if ckpt.get("data", {}).get("sha256") not in (None, splits.sha256):
        raise StageError(f"{path}: trained on data {ckpt['data']['sha256'][:12]}, "
                         f"but the data here hashes {splits.sha256[:12]}; retrain")
    return _Trained(path, model, config, splits)


def _quantize_model(trained: _Trained, cfg: dict[str, Any]) -> _Quantized:
    """PTQ (calibration only, for comparison) and QAT (a short fine-tune), each judged on the test set."""
    from hilci.conversion import quantize as q
    from hilci.conversion import train as tr

    model, splits = trained.model, trained.splits
    fp32_acc = tr.accuracy(tr.predict(model, splits.x_test), splits.y_test)
    ptq_acc = tr.accuracy(tr.predict(q.ptq(model, splits.x_calib), splits.x_test), splits.y_test)
    qat_run = tr.TrainSettings(cfg["qat_epochs"], int(trained.config.get("batch_size", 64)),
                               cfg["qat_learning_rate"], int(trained.config.get("seed", 0)))
    qat_model = q.qat(model, splits.x_calib, splits.x_train, splits.y_train, qat_run)
    reference = tr.predict(qat_model, splits.x_test)
    return _Quantized(qat_model, reference, {"fp32": fp32_acc, "ptq": ptq_acc,
                                             "qat": tr.accuracy(reference, splits.y_test)}, q.QAT_DEVICE)


def _export(ctx: StageContext, trained: _Trained, quantized: _Quantized, cfg: dict[str, Any]) -> tuple[Path, Path]:
    """The Q/DQ ONNX model, its FP32 twin, and the test set with the reference logits convert checks against."""
    from hilci.conversion import quantize as q

    out, size = ctx.artifacts, trained.model.image_size
    onnx_path = q.export_onnx(quantized.model, out / "model.onnx", size, cfg["opset"])
    fp32_onnx = q.export_onnx(trained.model, out / "model_fp32.onnx", size, cfg["opset"])
    np.savez(out / "reference.npz", x=trained.splits.x_test, y=trained.splits.y_test, logits=quantized.reference)
    return onnx_path, fp32_onnx


def _lint_gate(ctx: StageContext, onnx_path: Path):
    """TensorRT-compatibility lint of the Q/DQ model: lint.json and the `lint` testcase, in one place."""
    from hilci.conversion import lint

    try:
        report = lint.lint_file(onnx_path)
    except lint.LintError as exc:
        raise StageError(str(exc)) from None
    _write_json(ctx.artifacts / "lint.json", {"summary": report.summary(), "opset": report.opset,
                                              "quantize_nodes": report.quantize_nodes,
                                              "dequantize_nodes": report.dequantize_nodes,
                                              "violations": [vars(v) for v in report.violations]})
    ctx.case("lint", measurements=[measure("quantize.lint.violations", len(report.violations), high=0),
                                   measure("quantize.lint.q_nodes", report.quantize_nodes, low=1),
                                   measure("quantize.lint.dq_nodes", report.dequantize_nodes, low=1)],
             failure=None if report.ok else f"{onnx_path.relative_to(ctx.root)}: {report.summary()}")
    return report


def _drop_gate(ctx: StageContext, quantized: _Quantized, max_drop_pp: float) -> None:
    acc = quantized.accuracy
    ctx.gate("drop", measure("quantize.qat_drop", quantized.drop_pp("qat"), "pp", high=max_drop_pp,
                             nominal="QAT accuracy drop against FP32"),
             measure("quantize.ptq_drop", quantized.drop_pp("ptq"), "pp"),
             measure("quantize.fp32_accuracy", acc["fp32"]), measure("quantize.ptq_accuracy", acc["ptq"]),
             measure("quantize.qat_accuracy", acc["qat"]))


def _write_quantize_manifests(ctx: StageContext, trained: _Trained, cfg: dict[str, Any], metrics: dict[str, Any],
                              *artifacts: tuple[Path, str]) -> None:
    lineage = {"checkpoint": trained.path, "data": trained.splits.record(), "code": _code(),
               "config": _config("quantize", cfg)}
    for path, kind in artifacts:
        manifest.write_manifest(path, kind, inputs=lineage, root=ctx.root, metrics=metrics,
                                settings={**cfg, "quantization": "modelopt INT8_DEFAULT_CFG", "calibrator": "max",
                                          "exporter": "torch.onnx.export(dynamo=False)"})


def _parity_gate(ctx: StageContext, stage: str, par, min_parity: float) -> None:
    ms = [measure(f"{stage}.parity.agreement", par.agreement, low=min_parity, nominal="same class"),
          measure(f"{stage}.parity.max_abs", par.max_abs),
          measure(f"{stage}.parity.max_rel", par.max_rel),
          measure(f"{stage}.parity.mismatched", par.mismatched)]
    if par.max_steps is not None:
        ms.append(measure(f"{stage}.parity.max_steps", par.max_steps, "steps"))
    ctx.gate("parity", *ms)


def engine_identity(backend: str, board: str, options: dict) -> tuple[str, str, dict, dict]:
    """What an engine is built for, as its store key sees it: the runtime's version, the device, the platform
    (TensorRT: compute capability and CUDA; L4T on a Jetson) and the builder flags (defaults merged with
    hilci.yaml's, less the timing cache's path)."""
    import platform

    from hilci.conversion.engines import TENSORRT
    from hilci.store.place import local_accelerator

    if backend == TENSORRT:
        from hilci.conversion.engines import tensorrt as impl

        version, (gpu, cuda) = impl.import_tensorrt().__version__, impl.device_properties()
        device = f"{board}/{(gpu or {}).get('name', 'gpu')}"
        facts = {"compute_capability": (gpu or {}).get("compute_capability", "unknown"), "cuda": cuda}
    else:
        import onnxruntime

        from hilci.conversion.engines import onnxruntime as impl

        version, device = onnxruntime.__version__, f"{board}/{platform.machine()}"
        facts = {"machine": platform.machine()}
    facts["l4t"] = local_accelerator().get("l4t")
    flags = {k: v for k, v in {**impl.SETTINGS, **options}.items() if k != "timing_cache"}
    return version, device, facts, flags


def _stored_engine(ctx: StageContext, onnx_path: Path, backend: str, options: dict, lineage: dict, build) -> Path:
    """The engine from the store when one was built from this ONNX with this runtime on this board, else built
    here (with the GPU's stored TensorRT timing cache) and stored; says which."""
    from hilci.conversion.engines import TENSORRT
    from hilci.store.engines import EngineStore, engine_key, timing_key

    if backend == TENSORRT:
        from hilci.conversion.engines import tensorrt as impl
    else:
        from hilci.conversion.engines import onnxruntime as impl
    version, device, facts, flags = engine_identity(backend, ctx.board, options)
    key = engine_key(backend=backend, runtime_version=version, device=device, onnx_sha256=manifest.sha256_file(
        onnx_path), settings={"options": flags, "inputs": {k: manifest.sha256_file(v) for k, v in lineage.items()}},
        platform=facts)
    engines = EngineStore.for_project(ctx.root, ctx.pipeline)
    try:
        out = ctx.artifacts / impl.ENGINE_NAME
        record = engines.fetch(key, ctx.artifacts)
        if record is not None and out.is_file():
            ctx.log(f"convert: reused the {backend} engine {key[:12]} from the store (built by "
                    f"{record.get('commit', '?')[:12]} ({record.get('build', '?')}), {version} on {device})")
            return out
        timing = getattr(impl, "TIMING_CACHE_NAME", None)
        if timing and engines.fetch(timing_key(backend=backend, runtime_version=version, device=device, platform=facts),
                                    ctx.artifacts) is not None:
            ctx.log(f"convert: reusing the stored TensorRT timing cache for {version} on {device}")
        path = build(onnx_path, backend, ctx.artifacts, options, inputs=lineage, root=ctx.root)
        files = sorted(ctx.artifacts.glob(path.name + "*"))  # the engine, its manifest, its layer info
        if timing and (ctx.artifacts / timing).is_file():
            files.append(ctx.artifacts / timing)
            engines.put(timing_key(backend=backend, runtime_version=version, device=device, platform=facts), [ctx.artifacts / timing])
        if engines.put(key, files, {"backend": backend, "runtime": version, "device": device, "platform": facts, "flags": flags}):
            ctx.log(f"convert: built the {backend} engine {key[:12]} and stored it for later builds on {device}")
        return path
    finally:
        for note in engines.notes:
            ctx.log(f"convert: note: {note}")
        engines.close()


def convert(ctx: StageContext) -> None:
    """Engine build (TensorRT where installed, else ONNX Runtime), parity and benchmark; gates: parity, latency."""
    from hilci.conversion import benchmark, lint, parity
    from hilci.conversion.engines import (
        ONNXRUNTIME,
        TENSORRT,
        available_backends,
        build_engine,
        check_backend,
        load_engine,
    )

    typed = ctx.settings or ConvertSettings()  # validated before the stage started
    cfg = ctx.config
    budgets = typed.budgets.given()
    bench = typed.benchmark
    backend = cfg["backend"]
    if backend == "auto":
        backend = TENSORRT if TENSORRT in available_backends() else ONNXRUNTIME
    check_backend(backend, "hilci.yaml: convert.backend")
    start = time.perf_counter()
    onnx_path = ctx.root / QDQ_MODEL
    try:
        report = lint.lint_file(onnx_path)
    except lint.LintError as exc:
        raise StageError(f"{exc} (run the quantize stage first)" if "no such" in str(exc) else str(exc)) from None
    if not report.ok:
        raise StageError(f"{onnx_path.relative_to(ctx.root)}: not TensorRT-compatible: {report.summary()}")
    ref_path = ctx.root / REFERENCE
    try:
        ref = np.load(ref_path)
        x, y, reference = ref["x"], ref["y"], ref["logits"]
    except (OSError, KeyError, ValueError) as exc:
        raise StageError(f"{ref_path}: reference outputs missing or unreadable ({exc})") from None
    lineage = {"reference": ref_path}
    engine_path = _stored_engine(ctx, onnx_path, ONNXRUNTIME, cfg["onnxruntime"], lineage, build_engine)
    if backend == TENSORRT:  # artifacts/convert/engine.onnx above is what the hil stage runs
        engine_path = _stored_engine(ctx, onnx_path, TENSORRT, cfg["tensorrt"], lineage, build_engine)
    options = cfg["onnxruntime"] if backend == ONNXRUNTIME else {}
    engine = load_engine(engine_path, **options)
    par = parity.compare(reference, engine.run(x), atol=cfg["atol"], rtol=cfg["rtol"],
                         step=parity.output_step(lint.load(onnx_path)), labels=y)
    _write_json(ctx.artifacts / "parity.json", par.as_dict())
    _parity_gate(ctx, "convert", par, cfg["min_parity"])
    batch = np.ascontiguousarray(np.resize(x, (bench.batch, *x.shape[1:])))
    result = benchmark.run(engine, batch, bench)
    bench_path = benchmark.write(result, ctx.artifacts / "benchmark.json")
    manifest.write_manifest(bench_path, "benchmark", inputs={"engine": engine_path}, root=ctx.root,
                            settings={"backend": backend, **as_dict(bench)}, metrics=result["summary"])
    s = result["summary"]
    ctx.log(f"convert: {backend} engine {engine_path.name}: p50 {s['median_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms, "
            f"{s['throughput_qps']:.0f} qps, parity {par.agreement:.4f}")
    latency = [distribution("convert.latency", result["samples"], "ms", gate="p99",
                            high=budgets.get("p99_ms"), nominal=f"{backend} p99 budget")]
    stat_key = {"p50_ms": "median_ms"}
    for key in budgets:
        if key != "p99_ms":
            name = key[:-3]
            latency.append(measure(f"convert.latency_{name}", s[stat_key.get(key, key)], "ms", high=budgets[key]))
    latency.append(measure("convert.throughput", s["throughput_qps"], "qps"))
    latency.append(measure("convert.cv", s["cv_percent"], "%"))
    ctx.gate("latency", *latency, time_s=time.perf_counter() - start)
