"""Stacked hourglass network (Newell et al. 2016) in the form mmpose trains ("Hourglass-52").

Stem (7×7 stride-2 conv, 128 ch; a stride-2 basic block to 256 ch) → `num_stacks` hourglass
modules, each recursing `downsample_times` levels (stage widths 256, 256, 384, 384, 384, 512 and
basic-block counts 2, 2, 2, 2, 2, 4) → a 3×3 conv to `feat_channel` per stack → a 1×1 head per
stack. Stacks after the first take the previous stack's features and output remapped and summed
(intermediate supervision). A 256×256 input gives 64×64 heatmaps.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ap10k.models.resnet import BN_MOMENTUM, BasicBlock
from ap10k.models.simplebaseline import init_conv_bn


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
                               nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def res_layer(cin: int, cout: int, blocks: int, stride: int = 1,
              downsample_first: bool = True) -> nn.Sequential:
    """`blocks` basic blocks from `cin` to `cout`; the width/stride change happens in the first
    block (`downsample_first`) or the last one."""
    def block(i: int, o: int, s: int) -> BasicBlock:
        proj = None
        if s != 1 or i != o:
            proj = nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False),
                                 nn.BatchNorm2d(o, momentum=BN_MOMENTUM))
        return BasicBlock(i, o, s, proj)

    if downsample_first:
        layers = [block(cin, cout, stride)] + [block(cout, cout, 1) for _ in range(blocks - 1)]
    else:
        layers = [block(cin, cin, 1) for _ in range(blocks - 1)] + [block(cin, cout, stride)]
    return nn.Sequential(*layers)


class HourglassModule(nn.Module):
    """One recursion level: skip branch at this resolution + (down, recurse, up) branch."""

    def __init__(self, depth: int, widths: tuple[int, ...], blocks: tuple[int, ...]) -> None:
        super().__init__()
        cur, nxt = widths[0], widths[1]
        self.up1 = res_layer(cur, cur, blocks[0])
        self.low1 = res_layer(cur, nxt, blocks[0], stride=2)
        self.low2: nn.Module = (HourglassModule(depth - 1, widths[1:], blocks[1:]) if depth > 1
                                else res_layer(nxt, nxt, blocks[1]))
        self.low3 = res_layer(nxt, cur, blocks[0], downsample_first=False)

    def forward(self, x: Tensor) -> Tensor:
        up1 = self.up1(x)
        # nearest upsampling to the skip branch's size (works for any input size)
        low = F.interpolate(self.low3(self.low2(self.low1(x))), size=up1.shape[-2:],
                            mode="nearest")
        return up1 + low


class StackedHourglass(nn.Module):
    """Image (B,3,H,W) → heatmaps (B, num_keypoints, H/4, W/4) of the last stack.

    `forward(x, stacks=True)` (or `forward_stacks`) returns every stack's heatmaps for
    intermediate supervision; training calls it through the (DDP) wrapper's forward.
    """

    def __init__(self, num_stacks: int = 1, num_keypoints: int = 17, downsample_times: int = 5,
                 widths: tuple[int, ...] = (256, 256, 384, 384, 384, 512),
                 blocks: tuple[int, ...] = (2, 2, 2, 2, 2, 4), feat_channel: int = 256) -> None:
        super().__init__()
        if len(widths) != downsample_times + 1 or len(blocks) != downsample_times + 1:
            raise ValueError("widths and blocks need downsample_times + 1 entries")
        c = widths[0]
        self.num_stacks = num_stacks
        self.stem = nn.Sequential(conv_bn(3, c // 2, 7, stride=2),
                                  res_layer(c // 2, c, 1, stride=2))
        self.hourglass_modules = nn.ModuleList(
            HourglassModule(downsample_times, widths, blocks) for _ in range(num_stacks))
        self.out_convs = nn.ModuleList(conv_bn(c, feat_channel, 3) for _ in range(num_stacks))
        self.conv1x1s = nn.ModuleList(conv_bn(c, c, 1, relu=False)
                                      for _ in range(num_stacks - 1))
        self.remap_convs = nn.ModuleList(conv_bn(feat_channel, c, 1, relu=False)
                                         for _ in range(num_stacks - 1))
        self.inters = nn.ModuleList(res_layer(c, c, 1) for _ in range(num_stacks - 1))
        self.relu = nn.ReLU(inplace=True)
        self.final_layers = nn.ModuleList(nn.Conv2d(feat_channel, num_keypoints, 1)
                                          for _ in range(num_stacks))
        init_conv_bn(self)
        for head in self.final_layers:
            nn.init.normal_(head.weight, std=0.001)
            nn.init.zeros_(head.bias)

    def forward_stacks(self, x: Tensor) -> list[Tensor]:
        inter = self.stem(x)
        outs = []
        for i in range(self.num_stacks):
            feat = self.out_convs[i](self.hourglass_modules[i](inter))
            outs.append(self.final_layers[i](feat))
            if i < self.num_stacks - 1:
                inter = self.conv1x1s[i](inter) + self.remap_convs[i](feat)
                inter = self.inters[i](self.relu(inter))
        return outs

    def forward(self, x: Tensor, stacks: bool = False) -> Tensor | list[Tensor]:
        """The last stack's heatmaps, or every stack's (a list) when `stacks`."""
        outs = self.forward_stacks(x)
        return outs if stacks else outs[-1]
