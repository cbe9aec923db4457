"""A residual CNN with a spatial attention map.

Pairs of 3x3-conv residual blocks widening 16 -> 32 -> 64 -> 128 channels (stride-2
downsampling between stages, dropout after each block), then a 1x1-conv sigmoid spatial
attention map multiplied into the features, adaptive average pooling and a linear head.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers with a (projected) identity shortcut, ReLU, then dropout.

    Input ``(B, in_ch, H, W)`` float; output ``(B, out_ch, H / stride, W / stride)``.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, dropout: float = 0.1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_ch))
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.dropout(self.relu(out + self.shortcut(x)))


class SpatialAttention(nn.Module):
    """A 1x1 conv to one channel, a sigmoid, multiplied into the features (same shape out).

    The last map is kept in ``self.last_map`` (``(B, 1, H, W)``) for inspection.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)
        nn.init.constant_(self.conv.bias, 2.0)  # start near "attend everywhere" (sigmoid ~0.88)
        self.last_map: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attention = torch.sigmoid(self.conv(x))
        self.last_map = attention.detach()
        return x * attention


class AttentionResNet(nn.Module):
    """Residual CNN with spatial attention; grayscale ``(B, in_channels, H, W)`` -> ``(B, n)``
    logits."""

    def __init__(self, num_classes: int = 2, in_channels: int = 1, dropout: float = 0.2,
                 block_dropout: float = 0.0,
                 widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        # A stride-2 stem keeps the full-resolution stage cheap on CPUs.
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        stages = []
        prev = widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(ResidualBlock(prev, w, stride, block_dropout),
                                        ResidualBlock(w, w, 1, block_dropout)))
            prev = w
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.attention = SpatialAttention(prev)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(prev, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(self.pool(self.attention(x)))
