"""An independent torch ResNet50 v1.5 with torchvision's state-dict names (torchvision itself does
not import beside torch 2.13 here). Written from the torchvision architecture description, it is
the reference the ported flax weights are checked against.
"""

from __future__ import annotations

import torch
from torch import nn


class Bottleneck(nn.Module):
  """torchvision's Bottleneck: stride on the 3x3 conv (v1.5), convs without bias."""

  def __init__(self, in_channels: int, filters: int, stride: int):
    super().__init__()
    self.conv1 = nn.Conv2d(in_channels, filters, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(filters)
    self.conv2 = nn.Conv2d(filters, filters, 3, stride=stride, padding=1, bias=False)
    self.bn2 = nn.BatchNorm2d(filters)
    self.conv3 = nn.Conv2d(filters, 4 * filters, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(4 * filters)
    self.relu = nn.ReLU()
    self.downsample = None
    if stride != 1 or in_channels != 4 * filters:
      self.downsample = nn.Sequential(
          nn.Conv2d(in_channels, 4 * filters, 1, stride=stride, bias=False),
          nn.BatchNorm2d(4 * filters))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = self.relu(self.bn1(self.conv1(x)))
    y = self.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    shortcut = x if self.downsample is None else self.downsample(x)
    return self.relu(y + shortcut)


class ResNet50(nn.Module):
  """conv1/bn1/maxpool, layer1..layer4 of (3, 4, 6, 3) bottlenecks, fc."""

  def __init__(self, num_classes: int = 1000, stage_sizes=(3, 4, 6, 3)):
    super().__init__()
    self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
    self.bn1 = nn.BatchNorm2d(64)
    self.relu = nn.ReLU()
    self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
    in_channels = 64
    for i, size in enumerate(stage_sizes):
      blocks = []
      for j in range(size):
        blocks.append(Bottleneck(in_channels, 64 * 2**i, 2 if (i > 0 and j == 0) else 1))
        in_channels = 4 * 64 * 2**i
      setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
    self.num_stages = len(stage_sizes)
    self.avgpool = nn.AdaptiveAvgPool2d(1)
    self.fc = nn.Linear(in_channels, num_classes)

  def features(self, x: torch.Tensor) -> torch.Tensor:
    """x: [B, 3, H, W] -> [B, 2048, h, w] (the output of layer4)."""
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    for i in range(self.num_stages):
      x = getattr(self, f"layer{i + 1}")(x)
    return x

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def randomize_(model: nn.Module, seed: int) -> nn.Module:
  """Random weights everywhere, including non-trivial BN affine parameters and running stats."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for module in model.modules():
      if isinstance(module, nn.Conv2d):
        fan_in = module.weight[0].numel()
        module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in)**0.5)
      elif isinstance(module, nn.BatchNorm2d):
        n = module.num_features
        module.weight.copy_(0.5 + 0.5 * torch.rand(n, generator=gen))
        module.bias.copy_(0.1 * torch.randn(n, generator=gen))
        module.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
        module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
        module.num_batches_tracked.fill_(1000)
  return model.eval()
