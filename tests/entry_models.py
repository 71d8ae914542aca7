"""Python entry points the tests name as --model tests_entry:FUNCTION (this folder on PYTHONPATH)."""
from __future__ import annotations

import torch
from torch import nn


def tiny_cnn() -> nn.Module:
    """A small CNN that takes any input size: conv, batch norm, pooling, a linear head."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, groups=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )


class _FixedInput(nn.Module):
    """Takes only 48x48 inputs (a flatten straight into a linear layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.head = nn.Linear(4 * 24 * 24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(torch.relu(self.conv(x)), 1))


def fixed_48() -> nn.Module:
    return _FixedInput()


class _KeepsATensor(nn.Module):
    """tiny_cnn with its input scale kept as a plain tensor attribute (not a parameter or buffer): it cannot run on
    the meta device, as some user models cannot."""

    def __init__(self) -> None:
        super().__init__()
        self.body = tiny_cnn()
        self.scale = torch.full((1, 3, 1, 1), 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x * self.scale)


def keeps_a_tensor() -> nn.Module:
    return _KeepsATensor()


def not_a_module():
    return "not a module"


def tiny_vit() -> nn.Module:
    """A two-block timm vision transformer at 64x64 (attention matmuls for the FLOPs tests)."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=2, num_classes=10)


class _Nhwc(nn.Module):
    """tiny_cnn behind an NHWC input (as TensorFlow-style exports have)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = tiny_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.permute(0, 3, 1, 2))


def nhwc_cnn() -> nn.Module:
    return _Nhwc()


def fails_to_load() -> nn.Module:
    """A model whose code fails when it is built (a zoo fails its cells only; a plain run calls it bad input)."""
    raise RuntimeError("weights file missing (on purpose)")
