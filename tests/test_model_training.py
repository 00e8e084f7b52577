"""Data, the example model and FP32 training: deterministic, sized by image_size, checkpoints that load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hilci.conversion import train as tr
from hilci.conversion.data import frame_to_input, load_splits, resize
from hilci.conversion.model import DigitNet


def test_splits_are_disjoint_deterministic_and_scaled():
    a, b = load_splits(8, seed=0), load_splits(8, seed=0)
    assert a.sha256 == b.sha256 and np.array_equal(a.x_test, b.x_test)
    assert len(a.y_train) + len(a.y_calib) + len(a.y_test) == 1797
    assert a.x_train.shape[1:] == (1, 8, 8) and a.x_train.dtype == np.float32
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    assert load_splits(8, seed=1).sha256 != a.sha256


def test_image_size_resizes_and_bad_size_is_refused():
    s = load_splits(16, seed=0)
    assert s.x_test.shape[1:] == (1, 16, 16)
    with pytest.raises(ValueError, match="image_size must be an even integer"):
        load_splits(7)


def test_resize_keeps_a_constant_image_constant_and_identity_at_native_size():
    img = np.full((2, 8, 8), 0.25, np.float32)
    np.testing.assert_allclose(resize(img, 20), 0.25, atol=1e-6)
    ramp = np.arange(64, dtype=np.float32).reshape(1, 8, 8)
    assert np.array_equal(resize(ramp, 8), ramp)


def test_camera_frame_becomes_a_model_input():
    frame = np.full((48, 64, 3), 255, np.uint8)
    x = frame_to_input(frame, 16)
    assert x.shape == (1, 1, 16, 16) and x.dtype == np.float32
    np.testing.assert_allclose(x, 1.0, atol=1e-6)


@pytest.mark.parametrize("size", [8, 16])
def test_digitnet_output_shape_follows_image_size(size):
    out = DigitNet(size)(torch.zeros(3, 1, size, size))
    assert out.shape == (3, 10)


def test_seeding_turns_tf32_off():
    """TF32 (PyTorch's default for cuDNN convolutions on Ampere and later) made CUDA training diverge from CPU."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul  # flags, settable without a GPU
    saved = cudnn.allow_tf32, matmul.allow_tf32
    try:
        cudnn.allow_tf32 = matmul.allow_tf32 = True
        tr.seed_everything(0)
        assert cudnn.allow_tf32 is False
        assert matmul.allow_tf32 is False
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved


def test_training_is_seeded_and_learns(tmp_path):
    s = load_splits(8, seed=0)
    settings = tr.TrainSettings(epochs=2, batch_size=64, learning_rate=0.01, seed=0)
    m1, losses = tr.train_fp32(s.x_train, s.y_train, 8, settings)
    m2, _ = tr.train_fp32(s.x_train, s.y_train, 8, settings)
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(v1, v2), k
    assert losses[1] < losses[0]
    assert tr.accuracy(tr.predict(m1, s.x_test), s.y_test) > 0.5
    path = tr.save_checkpoint(m1, tmp_path / "model.pt", {"config": {"seed": 0}})
    loaded, ckpt = tr.load_checkpoint(path)
    assert ckpt["config"] == {"seed": 0}
    np.testing.assert_array_equal(tr.predict(loaded, s.x_test), tr.predict(m1, s.x_test))


def test_missing_and_corrupt_checkpoints_are_named(tmp_path):
    with pytest.raises(tr.CheckpointError, match="model.pt: checkpoint missing"):
        tr.load_checkpoint(tmp_path / "model.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(tr.CheckpointError, match="bad.pt: unreadable checkpoint"):
        tr.load_checkpoint(bad)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(tr.CheckpointError, match="other.pt: not a hilci checkpoint"):
        tr.load_checkpoint(tmp_path / "other.pt")
