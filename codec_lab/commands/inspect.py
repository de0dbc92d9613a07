"""`codec-lab inspect FILE [--source CLIP]`: where a .clv file's bytes go (header, each network's
weights, motion vectors, every frame's latents) and, given the source, every frame's PSNR."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="where a .clv file's bytes go, frame by frame", description=__doc__)
    parser.add_argument("bitstream", help="a .clv file written by codec-lab encode")
    parser.add_argument("--source", help="the clip it was encoded from: adds each frame's PSNR")
    parser.add_argument("--max-pixels", type=int, default=None, help="refuse files that would decode to more frames x pixels than this")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from codec_lab.codec import bitstream
    from codec_lab.codec.stats import file_stats
    from codec_lab.video import read_clip

    source = read_clip(args.source, frames=bitstream.read_header(args.bitstream).frames) if args.source else None
    stats = file_stats(args.bitstream, source, max_pixels=args.max_pixels or bitstream.DEFAULT_MAX_PIXELS)
    print("\n".join(stats.lines()))
    return 0
