"""`codec-lab decode clip.clv -o recon.y4m`: decode a .clv file (needs nothing but the file)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("decode", help="decode a .clv file to .y4m (or lossless .mp4/.mkv)", description=__doc__)
    parser.add_argument("bitstream", help="a .clv file written by codec-lab encode")
    parser.add_argument("-o", "--output", required=True, help="the video to write: .y4m (exact) or .mp4/.mkv (lossless x264)")
    parser.add_argument("--max-pixels", type=int, default=None, help="refuse files that would decode to more frames x pixels than this")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1); the frames are the same at any count")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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


if __name__ == "__main__":  # python -m codec_lab.commands.decode FILE -o OUT
    import sys

    from codec_lab.cli import main

    sys.exit(main(["decode", *sys.argv[1:]]))
