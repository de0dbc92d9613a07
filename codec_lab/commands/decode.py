"""`codec-lab decode FILE -o recon.y4m`: decode a .clv file (needs nothing but the file), or any
classical file (MP4 from x264/x265/SVT-AV1, ...) through PyAV, so that every experiment is
decoded by a separate process the same way."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("decode", help="decode a .clv file (or any video) to .y4m or lossless .mp4/.mkv", description=__doc__)
    parser.add_argument("bitstream", help="a .clv file written by codec-lab encode, or a classical video file")
    parser.add_argument("-o", "--output", required=True, help="the video to write: .y4m (exact) or .mp4/.mkv (lossless x264)")
    parser.add_argument("--max-pixels", type=int, default=None, help="refuse files that would decode to more frames x pixels than this")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1); the frames are the same at any count")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not _is_clv(args.bitstream):
        return _decode_classical(args)
    import torch

    from codec_lab.codec import bitstream
    from codec_lab.codec.cost import mac_per_pixel
    from codec_lab.codec.decoder import decode_file
    from codec_lab.codec.model import config_from_header
    from codec_lab.metrics import bitrate_kbps, tops_per_frame
    from codec_lab.video import write_clip

    torch.set_num_threads(args.threads)  # the result is exact at any thread count; this is only speed
    decoded = decode_file(args.bitstream, max_pixels=args.max_pixels or bitstream.DEFAULT_MAX_PIXELS)
    write_clip(decoded.clip, args.output)
    h = decoded.header
    mac = mac_per_pixel(config_from_header(h), h.height, h.width, h.frames)
    kbps = bitrate_kbps(decoded.file_bytes, h.frames, float(h.fps))
    print(f"{args.bitstream}: {h.strategy}, {decoded.file_bytes} bytes ({kbps:.1f} kbps), {h.frames} frames of {h.width}x{h.height} at {float(h.fps):g} fps")
    print(f"decoder {mac:.0f} MAC/pixel ({tops_per_frame(mac, h.width, h.height):.2e} TOPS/frame), decoded in {decoded.seconds:.2f}s -> {args.output}")
    return 0


def _is_clv(path: str) -> bool:
    """A .clv name or the .clv magic; anything else goes to FFmpeg."""
    from pathlib import Path

    from codec_lab.codec.bitstream import MAGIC, SUFFIX
    from codec_lab.errors import BitstreamError

    if not Path(path).is_file():
        raise BitstreamError(f"{path}: no such file")
    with open(path, "rb") as handle:
        return Path(path).suffix.lower() == SUFFIX or handle.read(len(MAGIC)) == MAGIC


def _decode_classical(args: argparse.Namespace) -> int:
    import time

    from codec_lab.video import read_clip, write_clip

    start = time.perf_counter()
    clip = read_clip(args.bitstream)
    seconds = time.perf_counter() - start
    write_clip(clip, args.output)
    print(f"{args.bitstream}: {clip.num_frames} frames of {clip.width}x{clip.height} decoded by FFmpeg in {seconds:.2f}s -> {args.output}")
    return 0


if __name__ == "__main__":  # python -m codec_lab.commands.decode FILE -o OUT
    import sys

    from codec_lab.cli import main

    sys.exit(main(["decode", *sys.argv[1:]]))
