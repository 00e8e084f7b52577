"""The example perception model: a small two-conv CNN classifying digits, sized by `image_size`."""

from __future__ import annotations

import torch
from torch import nn


class DigitNet(nn.Module):
    """conv-relu, conv-relu, maxpool, linear: enough to reach ~99% on digits, small enough for 2 CPU cores."""

    def __init__(self, image_size: int = 8, channels: tuple[int, int] = (16, 32), classes: int = 10) -> None:
        super().__init__()
        self.image_size = image_size
        self.channels = tuple(channels)
        self.conv1 = nn.Conv2d(1, channels[0], 3, padding=1)
        self.conv2 = nn.Conv2d(channels[0], channels[1], 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(channels[1] * (image_size // 2) ** 2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))

    def spec(self) -> dict:
        """What rebuilds this architecture from a checkpoint."""
        return {"image_size": self.image_size, "channels": list(self.channels), "classes": self.fc.out_features}
