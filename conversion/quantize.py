"""INT8 quantization with NVIDIA's nvidia-modelopt: PTQ calibration, QAT fine-tune, Q/DQ ONNX export.

`INT8_DEFAULT_CFG` gives per-channel symmetric int8 weights and per-tensor symmetric activations, which is
what TensorRT's explicit quantization wants (zero points 0). `torch.ao.quantization` is not used: it is being
removed from PyTorch and its default QAT configs are asymmetric.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hilci.conversion.train import TrainSettings, fit, seed_everything

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"


def _mtq():
    import modelopt.torch.quantization as mtq  # heavy import (~7 s): only when quantizing

    return mtq


def ptq(model: nn.Module, calib_x: np.ndarray, batch: int = 256) -> nn.Module:
    """A quantized copy of `model`, its ranges calibrated (max) on the held-out calibration split."""
    mtq = _mtq()
    quantized = copy.deepcopy(model).cpu().eval()
    xs = torch.from_numpy(calib_x)

    def forward_loop(m: nn.Module) -> None:
        with torch.no_grad():
            for i in range(0, len(xs), batch):
                m(xs[i:i + batch])

    return mtq.quantize(quantized, mtq.INT8_DEFAULT_CFG, forward_loop)


# PTQ calibration and the QAT fine-tune run on the CPU, also on a GPU pod: on an H100, modelopt compiles its
# CUDA extension on first use (70 s, measured), longer than this model's whole CPU QAT (about 20 s), and the
# results were the same (accuracy, Q/DQ nodes, parity). The stage's metrics record it (`qat_device`).
QAT_DEVICE = "cpu"


def qat(model: nn.Module, calib_x: np.ndarray, x: np.ndarray, y: np.ndarray, settings: TrainSettings) -> nn.Module:
    """PTQ, then a short fine-tune at a small learning rate with the quantizers in the loop."""
    seed_everything(settings.seed)
    quantized = ptq(model, calib_x)
    fit(quantized, x, y, settings, device=torch.device(QAT_DEVICE))
    return quantized.eval()


def export_onnx(model: nn.Module, path: Path, image_size: int, opset: int = OPSET) -> Path:
    """TorchScript-based export (dynamo=False) with a dynamic batch: quantizers become QuantizeLinear/Dequantize."""
    import warnings

    model = model.cpu().eval()
    example = torch.zeros(1, 1, image_size, image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), opset_version=opset, dynamo=False,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}})
    return Path(path)
