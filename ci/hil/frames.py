"""Camera frames for emulation and the latency loop: digits images scaled to a size, with sensor noise.

The images are scikit-learn's bundled 8x8 digits, committed as `data/digits.npz` (see `data/make_digits.py`),
so a Jetson without scikit-learn draws the same frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DIGITS = Path(__file__).parent / "data" / "digits.npz"


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 8, 8) with values 0..16, labels uint8 (n,))."""
    with np.load(DIGITS) as data:
        return data["images"], data["labels"]


def scale(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize (numpy only: the core install has no OpenCV)."""
    rows = np.arange(height) * image.shape[0] // height
    cols = np.arange(width) * image.shape[1] // width
    return image[rows][:, cols]


class FrameSource:
    """Endless grey-scale frames (uint8, height x width): digit i, scaled, plus Gaussian noise."""

    def __init__(self, height: int, width: int, noise: float = 6.0, seed: int = 0):
        self.images, self.labels = load_digits()
        self.height, self.width, self.noise = int(height), int(width), float(noise)
        self.rng = np.random.default_rng(seed)
        self.index = 0

    def next(self) -> tuple[np.ndarray, int]:
        i = self.index % len(self.images)
        self.index += 1
        frame = scale(self.images[i].astype(np.float32) * (255.0 / 16.0), self.height, self.width)
        if self.noise:
            frame = frame + self.rng.normal(0.0, self.noise, frame.shape)
        return np.clip(frame, 0, 255).astype(np.uint8), int(self.labels[i])


def to_input(frame: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A camera frame as the engine's input tensor: scaled to its H x W, float32 in 0..1, shape `shape`."""
    height, width = int(shape[-2]), int(shape[-1])
    x = scale(frame, height, width).astype(np.float32) / 255.0
    return x.reshape(shape)
