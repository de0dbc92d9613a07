"""`codec-lab eval REF DISTORTED`: the lab's metrics for any decoded file against a reference."""

from __future__ import annotations

import argparse
import json

from codec_lab.commands._common import add_input_options, read_input


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="metrics of a decoded video against its reference", description=__doc__)
    parser.add_argument("reference", help="the reference video")
    parser.add_argument("distorted", help="the decoded video to score (same size)")
    add_input_options(parser)
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--no-ms-ssim", action="store_true", help="skip MS-SSIM (slow on large frames)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from codec_lab.metrics import PSNR_CAP_DB, evaluate

    reference = read_input(args, args.reference)
    distorted = read_input(argparse.Namespace(**{**vars(args), "frames": reference.num_frames}), args.distorted)
    quality = evaluate(reference, distorted, with_ms_ssim=not args.no_ms_ssim)
    if args.json:
        print(json.dumps(quality.model_dump(), indent=2))
        return 0
    table = Table(title=f"{args.distorted} vs {args.reference} ({quality.frames} frames)")
    for column in ("PSNR-Y", "PSNR-U", "PSNR-V", "PSNR-YUV", "SSIM", "MS-SSIM"):
        table.add_column(column, justify="right")
    ms = "n/a" if quality.ms_ssim is None else f"{quality.ms_ssim:.4f}"
    table.add_row(*(f"{v:.2f}" for v in (quality.psnr_y, quality.psnr_u, quality.psnr_v, quality.psnr_yuv)), f"{quality.ssim:.4f}", ms)
    console = Console()
    console.print(table)
    console.print(f"PSNR in dB, capped at {PSNR_CAP_DB:g} dB for identical planes; PSNR-YUV = (6Y+U+V)/8 per frame, averaged.")
    return 0
