"""HRNet (Sun et al. 2019, "Deep High-Resolution Representation Learning"), the pose variant.

Stem (two stride-2 3×3 convs, 64 ch) → stage 1 (4 bottlenecks, 256 ch) → stages 2–4 with 2/3/4
parallel branches of widths c, 2c, 4c, 8c (1, 4 and 3 modules of 4 basic blocks per branch), with
exchange ("fuse") units after every module; the last module only keeps the highest-resolution
output, and a 1×1 conv (`final_layer`) gives the heatmaps at stride 4.

Parameter names follow the official code (and timm, mmpose's `backbone.*`, HRNet-Image-
Classification): `conv1`, `bn1`, `conv2`, `bn2`, `layer1`, `transition1`, `stage2.0.branches.0.0
.conv1`, `stage2.0.fuse_layers.0.1.0`, ..., so their ImageNet weights load by name.
"""

from __future__ import annotations

from torch import Tensor, nn

from ap10k.models.resnet import BN_MOMENTUM, BasicBlock, Bottleneck, make_layer
from ap10k.models.simplebaseline import init_conv_bn

# (branches, modules, blocks per branch) for stages 2, 3, 4 of every published width
STAGES = ((2, 1, 4), (3, 4, 4), (4, 3, 4))


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=BN_MOMENTUM)


class HRModule(nn.Module):
    """Parallel branches of basic blocks, then every output resolution sums all inputs."""

    def __init__(self, widths: list[int], blocks: int, multi_scale_output: bool = True) -> None:
        super().__init__()
        n = len(widths)
        self.branches = nn.ModuleList(make_layer(BasicBlock, w, w, blocks) for w in widths)
        self.fuse_layers = nn.ModuleList()
        for i in range(n if multi_scale_output else 1):
            row = nn.ModuleList()
            for j in range(n):
                if j > i:  # lower resolution → 1×1 to width i, nearest upsampling
                    row.append(nn.Sequential(nn.Conv2d(widths[j], widths[i], 1, bias=False),
                                             _bn(widths[i]),
                                             nn.Upsample(scale_factor=2 ** (j - i),
                                                         mode="nearest")))
                elif j == i:
                    row.append(nn.Identity())
                else:  # higher resolution → (i - j) stride-2 3×3 convs
                    steps: list[nn.Module] = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        cout = widths[i] if last else widths[j]
                        step = [nn.Conv2d(widths[j], cout, 3, 2, 1, bias=False), _bn(cout)]
                        if not last:
                            step.append(nn.ReLU(inplace=True))
                        steps.append(nn.Sequential(*step))
                    row.append(nn.Sequential(*steps))
            self.fuse_layers.append(row)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for row in self.fuse_layers:
            y = row[0](xs[0])
            for j in range(1, len(xs)):
                y = y + row[j](xs[j])
            out.append(self.relu(y))
        return out


def _transition(prev: list[int], cur: list[int]) -> nn.ModuleList:
    """Adapts the branch widths between stages and spawns the new lowest-resolution branch."""
    layers = nn.ModuleList()
    for i, w in enumerate(cur):
        if i < len(prev):
            if w != prev[i]:
                layers.append(nn.Sequential(nn.Conv2d(prev[i], w, 3, 1, 1, bias=False), _bn(w),
                                            nn.ReLU(inplace=True)))
            else:
                layers.append(nn.Identity())
        else:
            steps = []
            for k in range(i + 1 - len(prev)):
                cout = w if k == i - len(prev) else prev[-1]
                steps.append(nn.Sequential(nn.Conv2d(prev[-1], cout, 3, 2, 1, bias=False),
                                           _bn(cout), nn.ReLU(inplace=True)))
            layers.append(nn.Sequential(*steps))
    return layers


class HRNet(nn.Module):
    """HRNet-w`width` pose network: image (B,3,H,W) → heatmaps (B, num_keypoints, H/4, W/4)."""

    def __init__(self, width: int = 32, num_keypoints: int = 17) -> None:
        super().__init__()
        self.width = width
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = _bn(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = _bn(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(Bottleneck, 64, 64, 4)
        prev = [256]
        for s, (branches, modules, blocks) in enumerate(STAGES, start=2):
            widths = [width * 2 ** b for b in range(branches)]
            setattr(self, f"transition{s - 1}", _transition(prev, widths))
            last_stage = s == 1 + len(STAGES)
            stage = nn.Sequential(*[
                HRModule(widths, blocks, multi_scale_output=not (last_stage and m == modules - 1))
                for m in range(modules)])
            setattr(self, f"stage{s}", stage)
            prev = widths
        self.final_layer = nn.Conv2d(width, num_keypoints, 1)
        init_conv_bn(self)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for s in range(2, 2 + len(STAGES)):
            transition = getattr(self, f"transition{s - 1}")
            # existing branches pass through (or re-width); a new one grows from the lowest
            xs = [t(xs[i] if i < len(xs) else xs[-1]) for i, t in enumerate(transition)]
            for module in getattr(self, f"stage{s}"):
                xs = module(xs)
        return self.final_layer(xs[0])
