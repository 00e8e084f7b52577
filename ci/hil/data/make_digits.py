"""Write digits.npz: scikit-learn's bundled 8x8 digits (no download), so a Jetson without sklearn has frames.

Run once from the repository root: `python ci/hil/data/make_digits.py`. The file holds `images` (uint8, 0..16,
shape (n, 8, 8)) and `labels` (uint8).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits


def main() -> None:
    digits = load_digits()
    out = Path(__file__).with_name("digits.npz")
    np.savez_compressed(out, images=digits.images.astype(np.uint8), labels=digits.target.astype(np.uint8))
    print(f"wrote {out} ({len(digits.target)} images)")


if __name__ == "__main__":
    main()
