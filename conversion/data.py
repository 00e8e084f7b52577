"""The example data: scikit-learn's bundled 8x8 digits (no download), split, scaled and resized.

Inputs are float32 N x 1 x S x S in [0, 1]; S (`image_size`) is configurable so frames from the HIL rig's
camera, resized the same way (`frame_to_input`), can feed the same model. No torch here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

SOURCE = "sklearn.datasets.load_digits"
NATIVE_SIZE = 8
MAX_PIXEL = 16.0  # load_digits pixels are 0..16


@dataclass(frozen=True)
class Splits:
    """Train, calibration (held out for PTQ) and test splits, with the hash that identifies them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_calib: np.ndarray
    y_calib: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_size: int
    sha256: str  # of the source arrays and the split recipe

    def record(self) -> dict:
        """How the manifest names this data: source, hash, split sizes."""
        return {"source": SOURCE, "sha256": self.sha256, "image_size": self.image_size,
                "n_train": len(self.y_train), "n_calib": len(self.y_calib), "n_test": len(self.y_test)}


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of N x H x W images to N x size x size (identity when the size already matches)."""
    n, h, w = images.shape
    if (h, w) == (size, size):
        return images.astype(np.float32, copy=True)
    ys = np.clip((np.arange(size) + 0.5) * h / size - 0.5, 0, h - 1)
    xs = np.clip((np.arange(size) + 0.5) * w / size - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[None, :, None], (xs - x0)[None, None, :]
    top = images[:, y0][:, :, x0] * (1 - wx) + images[:, y0][:, :, x1] * wx
    bottom = images[:, y1][:, :, x0] * (1 - wx) + images[:, y1][:, :, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def frame_to_input(frame: np.ndarray, image_size: int = NATIVE_SIZE) -> np.ndarray:
    """A camera frame (H x W gray or H x W x 3, uint8 or float in [0, 1]) as a 1 x 1 x S x S model input."""
    frame = np.asarray(frame)
    scale = 255.0 if frame.dtype == np.uint8 else 1.0
    if frame.ndim == 3:
        frame = frame[..., :3].mean(axis=2)
    if frame.ndim != 2:
        raise ValueError(f"frame must be H x W or H x W x C, not shape {frame.shape}")
    return resize(frame.astype(np.float32)[None] / scale, image_size)[:, None]


def load_splits(image_size: int = NATIVE_SIZE, seed: int = 0, test_fraction: float = 0.2,
                calib_fraction: float = 0.1) -> Splits:
    """The digits, shuffled with `seed` and split into train / calibration / test."""
    from sklearn.datasets import load_digits

    if not isinstance(image_size, int) or image_size < 4 or image_size % 2:
        raise ValueError(f"image_size must be an even integer >= 4, not {image_size!r}")
    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float32)
    labels = np.asarray(digits.target, dtype=np.int64)
    digest = hashlib.sha256()
    digest.update(images.tobytes())
    digest.update(labels.tobytes())
    digest.update(f"seed={seed},test={test_fraction},calib={calib_fraction},size={image_size}".encode())
    order = np.random.RandomState(seed).permutation(len(labels))
    n_test = int(round(len(labels) * test_fraction))
    n_calib = int(round(len(labels) * calib_fraction))
    test, calib, train = order[:n_test], order[n_test:n_test + n_calib], order[n_test + n_calib:]
    x = resize(images / MAX_PIXEL, image_size)[:, None]
    return Splits(x[train], labels[train], x[calib], labels[calib], x[test], labels[test], image_size,
                  digest.hexdigest())
