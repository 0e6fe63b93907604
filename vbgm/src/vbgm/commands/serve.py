"""`vbgm serve`: the web app and HTTP API (Gradio) with the model kept warm."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `serve` subcommand."""
    p = subparsers.add_parser(
        "serve", help="serve the web app and the HTTP API (/generate, /compose)",
        description="A web page (and its HTTP API) to add music to a video or compose music, "
                    "with the model loaded once. Binds 127.0.0.1 unless --host says otherwise.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--checkpoint", type=Path, help="model checkpoint (default: the shipped one)")
    p.add_argument("--max-jobs", type=int, default=2, metavar="N",
                   help="jobs running at once; as many more wait, the rest are refused "
                        "(default 2)")
    p.add_argument("--max-upload-mb", type=float, default=200.0, metavar="MB",
                   help="largest upload accepted (default 200)")
    p.add_argument("--max-seconds", type=float, default=300.0, metavar="S",
                   help="longest video, and longest composed music, accepted (default 300)")
    p.add_argument("--keep-minutes", type=float, default=30.0, metavar="MIN",
                   help="results and uploads are removed this long after a job (default 30)")
    p.add_argument("--synth", default="auto", choices=("auto", "fluidsynth", "symusic"),
                   help="audio renderer")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the options, then serve until interrupted."""
    from vbgm.serve import ServeConfig, serve

    serve(ServeConfig(host=args.host, port=args.port, checkpoint=args.checkpoint,
                      max_jobs=args.max_jobs, max_upload_mb=args.max_upload_mb,
                      max_seconds=args.max_seconds, keep_minutes=args.keep_minutes,
                      synth=args.synth))
    return 0
