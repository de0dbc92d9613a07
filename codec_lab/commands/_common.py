"""Options and printing shared by the sub-commands (kept free of heavy imports)."""

from __future__ import annotations

import argparse
import sys


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value}); leave the option out to use every frame")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive (got {value})")
    return value


def add_input_options(parser: argparse.ArgumentParser, *, frames: bool = True) -> None:
    group = parser.add_argument_group("input")
    if frames:
        group.add_argument("--frames", type=positive_int, help="use the first N frames (default: all)")
    group.add_argument("--fps", type=positive_float, help="frame rate for inputs without timing (raw .264/.265/.yuv; default 25)")
    group.add_argument("--size", help="WIDTHxHEIGHT of a headerless .yuv (default: from the file name)")
    group.add_argument("--pix-fmt", help="pixel format of a headerless .yuv: yuv420p (default) or yuv420p10le")


def input_kwargs(args: argparse.Namespace) -> dict:
    from codec_lab.video import parse_size

    return {
        "fps": args.fps,
        "size": parse_size(args.size) if args.size else None,
        "pix_fmt": args.pix_fmt,
    }


def read_input(args: argparse.Namespace, path: str):
    """Read a clip as the input options say, printing the reader's notes as warnings."""
    from codec_lab.video import read_clip

    clip = read_clip(path, frames=getattr(args, "frames", None), **input_kwargs(args))
    warn_notes(path, clip.notes)
    return clip


def warn_notes(path: str, notes) -> None:
    for note in notes:
        print(f"note: {path}: {note}", file=sys.stderr)


def add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("targets (the seed's by default)")
    group.add_argument("--max-kbps", type=positive_float, default=1000.0, help="target bitrate ceiling (default 1000)")
    group.add_argument("--min-psnr", type=float, default=35.0, help="target PSNR-YUV floor in dB (default 35)")
    group.add_argument("--min-ssim", type=float, default=0.95, help="target SSIM floor (default 0.95)")


def targets_from_args(args: argparse.Namespace):
    from codec_lab.contracts import Targets

    return Targets(max_kbps=args.max_kbps, min_psnr_yuv=args.min_psnr, min_ssim=args.min_ssim)
