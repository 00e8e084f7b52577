"""FP32 training and evaluation: seeded and deterministic on CPU, on CUDA when one is present."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hilci.conversion.model import DigitNet
from hilci.stage.progress import report_progress


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of a training run (also used for the QAT fine-tune)."""

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-2
    seed: int = 0


def select_device() -> torch.device:
    """CUDA when available (the gpu pod), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Same seed, same weights: seed every generator and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
    # No TF32: on Ampere and later GPUs PyTorch runs float32 convolutions in TF32 (10-bit mantissa) by default,
    # so the same seed trained another model there than on CPU (on an H100, seed 0: test accuracy 0.964 or
    # 0.981 from run to run, against 0.989 on CPU). With full float32 the H100 matched the CPU's accuracy.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def fit(model: nn.Module, x: np.ndarray, y: np.ndarray, settings: TrainSettings,
        device: torch.device | None = None) -> list[float]:
    """Adam on cross-entropy with seeded shuffling; returns the mean loss of each epoch."""
    device = device or select_device()
    model.to(device).train()
    xs, ys = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(settings.seed)
    losses = []
    for epoch in range(settings.epochs):
        order = torch.randperm(len(ys), generator=generator).to(device)
        total = 0.0
        for start in range(0, len(ys), settings.batch_size):
            idx = order[start:start + settings.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xs[idx]), ys[idx])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(ys))
        report_progress(epoch + 1, settings.epochs, "epoch")  # the runner's live line
    model.eval()
    return losses


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Logits for `x` (float32 N x 1 x S x S) as a numpy array, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    outs = [model(torch.from_numpy(x[i:i + batch]).to(device)).float().cpu() for i in range(0, len(x), batch)]
    return torch.cat(outs).numpy()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean())


def train_fp32(x: np.ndarray, y: np.ndarray, image_size: int, settings: TrainSettings) -> tuple[DigitNet, list]:
    """A fresh DigitNet trained from `settings.seed`."""
    seed_everything(settings.seed)
    model = DigitNet(image_size)
    losses = fit(model, x, y, settings)
    return model, losses


def save_checkpoint(model: DigitNet, path: Path, extra: dict) -> Path:
    """Weights (on CPU) plus the architecture spec and whatever the caller records (config, metrics)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": 1, "spec": model.spec(), "state_dict": state, **extra}, path)
    return path


class CheckpointError(ValueError):
    """A checkpoint is missing or not one of ours; the message names the file."""


def load_checkpoint(path: Path) -> tuple[DigitNet, dict]:
    """The FP32 model of a checkpoint written by `save_checkpoint`, and the whole checkpoint dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint missing (run the train stage first)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(ckpt, dict) or "spec" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a hilci checkpoint (no spec/state_dict)")
    spec = ckpt["spec"]
    model = DigitNet(spec["image_size"], tuple(spec["channels"]), spec["classes"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model ({str(exc).splitlines()[0]})") from None
    return model.eval(), ckpt
