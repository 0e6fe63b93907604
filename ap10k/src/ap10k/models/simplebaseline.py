"""SimpleBaseline (Xiao et al. 2018): a ResNet followed by three stride-2 deconvolutions.

Layout: `backbone` (a torchvision-named ResNet), `deconv_layers` (ConvTranspose 4×4 → BN → ReLU,
three times, 256 channels), `final_layer` (1×1 conv to one heatmap per keypoint). A 256×256 input
gives 64×64 heatmaps (stride 32 in the backbone, ×8 back up). The head names match the official
code and mmpose's `keypoint_head.*`, so their checkpoints map onto this module.
"""

from __future__ import annotations

from torch import Tensor, nn

from ap10k.models.resnet import BN_MOMENTUM, ResNet


def init_conv_bn(module: nn.Module) -> None:
    """He-normal convolutions, unit BatchNorm: the usual from-scratch initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class SimpleBaseline(nn.Module):
    """ResNet-`depth` + 3 deconvolution layers + 1×1 head → (B, num_keypoints, H/4, W/4)."""

    def __init__(self, depth: int = 50, num_keypoints: int = 17, deconv_channels: int = 256,
                 num_deconv: int = 3) -> None:
        super().__init__()
        self.backbone = ResNet(depth)
        init_conv_bn(self.backbone)
        layers: list[nn.Module] = []
        cin = self.backbone.out_channels
        for _ in range(num_deconv):
            layers += [nn.ConvTranspose2d(cin, deconv_channels, 4, stride=2, padding=1,
                                          output_padding=0, bias=False),
                       nn.BatchNorm2d(deconv_channels, momentum=BN_MOMENTUM),
                       nn.ReLU(inplace=True)]
            cin = deconv_channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(cin, num_keypoints, 1)
        # The official initialisation of the head: small normal weights, zero biases.
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.final_layer(self.deconv_layers(self.backbone(x)))
