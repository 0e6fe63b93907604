"""`ap10k export --checkpoint best.pt --onnx model.onnx [--torchscript model.ts]`: a trained model
for deployment, checked against PyTorch.

The exported model maps normalised crops to heatmaps (batch size free); `ap10k predict
--checkpoint model.onnx` runs it with onnxruntime. After writing, the ONNX (and TorchScript) model
is run on real crops (--verify GT.json --images DIR: its first animals; without it, seeded
random crops, which the output says) and the largest heatmap difference from PyTorch must be at
most --tolerance (1e-4), else the command fails.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX / TorchScript, verified",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a training run's best.pt / last.pt")
    p.add_argument("--onnx", metavar="OUT.onnx", help="write an ONNX model")
    p.add_argument("--torchscript", metavar="OUT.ts", help="write a TorchScript model")
    p.add_argument("--verify", metavar="GT.json", help="annotations whose animals are the "
                                                       "check's crops")
    p.add_argument("--images", metavar="DIR", help="image folder of --verify")
    p.add_argument("--crops", type=int, default=8, help="animals to check on (default 8)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest heatmap difference allowed (default 1e-4)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ap10k import export
    from ap10k.errors import AP10KError
    from ap10k.inference import load_checkpoint

    if not args.onnx and not args.torchscript:
        raise AP10KError("nothing to export: give --onnx OUT.onnx and/or --torchscript OUT.ts")
    if args.verify and not args.images:
        raise AP10KError("--verify needs --images DIR (the folder of its image files)")
    model, pipe, _ = load_checkpoint(args.checkpoint, "cpu")
    if args.verify:
        crops = export.real_crops(args.verify, args.images, pipe, args.crops)
        what = f"{len(crops)} real crops of {args.verify}"
    else:
        gen = torch.Generator().manual_seed(0)
        crops = torch.randn(args.crops, 3, pipe.input_size, pipe.input_size, generator=gen)
        what = f"{len(crops)} random crops (pass --verify GT.json --images DIR for real ones)"
    checks = []
    if args.onnx:
        export.export_onnx(model, pipe, args.onnx)
        onnx_model, _ = export.load_onnx(args.onnx)
        checks.append((args.onnx, export.max_heatmap_difference(model, onnx_model, crops)))
    if args.torchscript:
        export.export_torchscript(model, pipe, args.torchscript)
        scripted = torch.jit.load(args.torchscript, map_location="cpu")
        checks.append((args.torchscript,
                       export.max_heatmap_difference(model, scripted, crops)))
    for path, diff in checks:
        print(f"{path}: max heatmap difference from PyTorch {diff:.2e} on {what}")
        if not diff <= args.tolerance:
            raise AP10KError(f"{path}: heatmaps differ from PyTorch by {diff:.2e}, more than "
                             f"--tolerance {args.tolerance:g}")
    return 0
