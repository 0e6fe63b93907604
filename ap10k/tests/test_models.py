"""Models: output shapes, published parameter counts, forward/backward, pretrained key layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ap10k.errors import AP10KError
from ap10k.models import MODELS, build_model, count_parameters, load_pretrained
from ap10k.models.pretrained import map_state_dict

# Published parameter counts (mmpose model zoo / the HRNet and SimpleBaseline papers), in M.
PUBLISHED = {"hrnet_w32": 28.54, "hrnet_w48": 63.60, "resnet50": 34.00, "resnet101": 53.00}


@pytest.mark.parametrize("name,millions", PUBLISHED.items())
def test_parameter_counts_match_published(name: str, millions: float) -> None:
    assert count_parameters(build_model(name)) / 1e6 == pytest.approx(millions, abs=0.02)


def test_hourglass52_matches_mmpose_count() -> None:
    # mmpose lists Hourglass-52 as 94.85 M; that includes one basic block (256→256, two 3×3
    # convs + 2 BN) that its single-stack network builds but never runs. We leave it out.
    unused_block = 2 * 256 * 256 * 9 + 2 * 2 * 256
    n = count_parameters(build_model("hourglass52"))
    assert (n + unused_block) / 1e6 == pytest.approx(94.85, abs=0.01)


@pytest.mark.parametrize("name", ["resnet18", "hrnet_w18", "hourglass52"])
def test_forward_backward_shapes(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name)
    x = torch.randn(2, 3, 64, 96)
    y = model(x)
    assert y.shape == (2, 17, 16, 24)
    y.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_every_registered_model_builds_and_stacked_hourglass_outputs_each_stack() -> None:
    assert set(MODELS) >= {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                           "hrnet_w18", "hrnet_w32", "hrnet_w48", "hourglass52"}
    model = build_model("hourglass104", widths=(16, 16, 24, 24, 24, 32), feat_channel=16).eval()
    with torch.no_grad():
        outs = model.forward_stacks(torch.zeros(1, 3, 64, 64))
        # the same through forward (what a DDP wrapper calls), and the last stack by default
        via_forward = model(torch.zeros(1, 3, 64, 64), stacks=True)
        last = model(torch.zeros(1, 3, 64, 64))
    assert [o.shape for o in outs] == [(1, 17, 16, 16)] * 2
    assert all(torch.equal(a, b) for a, b in zip(outs, via_forward, strict=True))
    assert torch.equal(last, outs[-1])
    with pytest.raises(AP10KError, match="unknown model"):
        build_model("vgg16")


# ---------------------------------------------------------------- published key layouts
def torchvision_resnet_keys(depth: int) -> dict[str, tuple[int, ...]]:
    """The torchvision/timm ImageNet ResNet state dict names and shapes, from the architecture
    (He et al. 2016, torchvision's naming), written out independently of our modules."""
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth]
    bottleneck = depth >= 50
    exp = 4 if bottleneck else 1
    keys: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix: str, c: int) -> None:
        for s in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{prefix}.{s}"] = (c,)
        keys[f"{prefix}.num_batches_tracked"] = ()

    bn("bn1", 64)
    cin = 64
    for stage, (n, planes) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        for i in range(n):
            p = f"layer{stage}.{i}"
            if bottleneck:
                keys[f"{p}.conv1.weight"] = (planes, cin, 1, 1)
                keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                keys[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
                bn(f"{p}.bn1", planes)
                bn(f"{p}.bn2", planes)
                bn(f"{p}.bn3", planes * 4)
            else:
                keys[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
                keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                bn(f"{p}.bn1", planes)
                bn(f"{p}.bn2", planes)
            if i == 0 and (stage > 1 or cin != planes * exp):
                keys[f"{p}.downsample.0.weight"] = (planes * exp, cin, 1, 1)
                bn(f"{p}.downsample.1", planes * exp)
            cin = planes * exp
    keys["fc.weight"] = (1000, 512 * exp)
    keys["fc.bias"] = (1000,)
    return keys


def synthetic_state(keys: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {k: (torch.tensor(7) if s == () else torch.randn(s, generator=g))
            for k, s in keys.items()}


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_resnet_state_dict_loads_into_simplebaseline(tmp_path: Path,
                                                                 depth: int) -> None:
    state = synthetic_state(torchvision_resnet_keys(depth))
    path = tmp_path / "resnet.pth"
    torch.save(state, path)
    model = build_model(f"resnet{depth}")
    head_before = model.final_layer.weight.clone()
    report = load_pretrained(model, path)
    ours = model.state_dict()
    for k, v in state.items():
        if not k.startswith("fc."):
            assert torch.equal(ours[f"backbone.{k}"], v), k
    assert sorted(report.unused) == ["fc.bias", "fc.weight"]
    assert report.head_loaded == 0 and torch.equal(model.final_layer.weight, head_before)


def test_wrapped_and_prefixed_checkpoints_load(tmp_path: Path) -> None:
    # mmpose layout (backbone.* + keypoint_head.*) inside {"state_dict": ...}, keys DDP-prefixed
    src = build_model("resnet18")
    for p in src.parameters():
        torch.nn.init.normal_(p)
    renamed = {}
    for k, v in src.state_dict().items():
        k = k if k.startswith("backbone.") else f"keypoint_head.{k}"
        renamed[f"module.{k}"] = v
    torch.save({"meta": {}, "state_dict": renamed}, tmp_path / "mm.pth")
    model = build_model("resnet18")
    report = load_pretrained(model, tmp_path / "mm.pth")
    assert report.unused == [] and report.head_loaded == len(
        [k for k in model.state_dict() if not k.startswith("backbone.")])
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def hrnet_backbone_keys(width: int) -> set[str]:
    """Parameter names of the official / timm HRNet (stem to stage 4, pose variant: the last
    module keeps only the high-resolution output), written from the architecture description."""
    keys: set[str] = set()

    def conv_bn(prefix_conv: str, prefix_bn: str) -> None:
        keys.add(f"{prefix_conv}.weight")
        keys.update(f"{prefix_bn}.{s}" for s in ("weight", "bias", "running_mean",
                                                  "running_var", "num_batches_tracked"))

    conv_bn("conv1", "bn1")
    conv_bn("conv2", "bn2")
    for i in range(4):
        for j in (1, 2, 3):
            conv_bn(f"layer1.{i}.conv{j}", f"layer1.{i}.bn{j}")
    conv_bn("layer1.0.downsample.0", "layer1.0.downsample.1")
    widths = [width * 2**b for b in range(4)]
    conv_bn("transition1.0.0", "transition1.0.1")
    conv_bn("transition1.1.0.0", "transition1.1.0.1")
    for stage, (n_branch, n_module) in {2: (2, 1), 3: (3, 4), 4: (4, 3)}.items():
        if stage > 2:
            t = f"transition{stage - 1}.{n_branch - 1}.0"
            conv_bn(f"{t}.0", f"{t}.1")
        for m in range(n_module):
            p = f"stage{stage}.{m}"
            for b in range(n_branch):
                for blk in range(4):
                    for c in (1, 2):
                        conv_bn(f"{p}.branches.{b}.{blk}.conv{c}", f"{p}.branches.{b}.{blk}.bn{c}")
            outputs = 1 if (stage == 4 and m == n_module - 1) else n_branch
            for i in range(outputs):
                for j in range(n_branch):
                    if j > i:
                        conv_bn(f"{p}.fuse_layers.{i}.{j}.0", f"{p}.fuse_layers.{i}.{j}.1")
                    for k in range(i - j):
                        conv_bn(f"{p}.fuse_layers.{i}.{j}.{k}.0", f"{p}.fuse_layers.{i}.{j}.{k}.1")
    assert widths  # widths only set shapes, which the load test checks through the model
    return keys


def test_hrnet_key_names_follow_the_official_layout() -> None:
    model = build_model("hrnet_w18")
    ours = {k for k in model.state_dict() if not k.startswith("final_layer.")}
    assert ours == hrnet_backbone_keys(18)


def test_timm_hrnet_imagenet_checkpoint_loads_and_ignores_classifier(tmp_path: Path) -> None:
    model = build_model("hrnet_w18")
    g = torch.Generator().manual_seed(3)
    state = {k: torch.randn(v.shape, generator=g) if v.dtype.is_floating_point else v
             for k, v in model.state_dict().items() if not k.startswith("final_layer.")}
    # classification-only parts of the timm / HRNet-Image-Classification checkpoint
    state["incre_modules.0.0.conv1.weight"] = torch.randn(32, 18, 1, 1)
    state["final_layer.0.weight"] = torch.randn(2048, 1024, 1, 1)
    state["classifier.weight"] = torch.randn(1000, 2048)
    state["stage4.2.fuse_layers.1.0.0.0.weight"] = torch.randn(36, 18, 3, 3)
    torch.save({"state_dict_ema": state}, tmp_path / "hrnet_w18.pth")
    fresh = build_model("hrnet_w18")
    report = load_pretrained(fresh, tmp_path / "hrnet_w18.pth")
    assert report.head_kept == ["final_layer.weight", "final_layer.bias"]
    assert len(report.unused) == 4
    assert torch.equal(fresh.state_dict()["stage4.2.branches.3.3.conv2.weight"],
                       state["stage4.2.branches.3.3.conv2.weight"])


def test_wrong_architecture_weights_are_refused(tmp_path: Path) -> None:
    torch.save(synthetic_state(torchvision_resnet_keys(50)), tmp_path / "r50.pth")
    with pytest.raises(AP10KError, match="wrong shape"):
        load_pretrained(build_model("resnet18"), tmp_path / "r50.pth")
    partial = synthetic_state(torchvision_resnet_keys(18))
    del partial["layer4.1.conv2.weight"]
    with pytest.raises(AP10KError, match="not in the file"):
        map_state_dict(partial, build_model("resnet18"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(AP10KError, match="junk.pth"):
        load_pretrained(build_model("resnet18"), tmp_path / "junk.pth")
