"""`codec-lab encode CLIP -o clip.clv`: overfit the neural codec to one clip and write its bitstream."""

from __future__ import annotations

import argparse
import sys

from codec_lab.commands._common import add_input_options, positive_float, read_input

STRATEGIES = ("semantic_latent",)


def register(subparsers) -> None:
    parser = subparsers.add_parser("encode", help="encode a clip with a neural codec into a .clv file", description=__doc__)
    parser.add_argument("clip", help="a video file")
    parser.add_argument("-o", "--output", required=True, help="the .clv file to write")
    parser.add_argument("--strategy", default="semantic_latent", choices=STRATEGIES, help="which codec (default: semantic_latent)")
    parser.add_argument("--lmbda", type=positive_float, default=None, help="rate-distortion trade-off: higher = smaller file (default 1e-3)")
    parser.add_argument("--preset", default="fast", help="training budget: test, fast (default), medium, full")
    parser.add_argument("--iterations", type=int, default=None, help="override the preset's iteration count")
    parser.add_argument("--prediction", default=None, choices=("intra", "previous", "motion"),
                        help="intra (default): every frame from its own latents; motion: an intra frame every --intra-period "
                             "frames, the others correct the previous decoded frame moved by coded block motion vectors "
                             "(better RD where measured; its motion search is slow on large frames); previous: the same without motion")
    parser.add_argument("--intra-period", type=int, default=None,
                        help="with previous/motion: an intra frame every N frames (default: the preset's, 8; 0: frame 0 only)")
    parser.add_argument("--key-prediction", action=argparse.BooleanOptionalAction, default=None,
                        help="with an intra period: the key frames after frame 0 are predicted from the key frame before "
                             "instead of coded intra (default: the preset's, on)")
    parser.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                        help="with key prediction: the frames between key frames as hierarchical B-frames, each predicted "
                             "by the mean of the frames before and after it, moved (default: the preset's; on with motion in fast, medium and full)")
    parser.add_argument("--intra-first", action=argparse.BooleanOptionalAction, default=None,
                        help="with previous/motion: train the intra frame(s) alone first, then the rest with their synthesis frozen "
                             "(default: the preset's, on, for 4x the iterations at lambda / 4)")
    parser.add_argument("--intra-frozen", action=argparse.BooleanOptionalAction, default=None,
                        help="with intra first: keep the intra frames' latents as that stage left them instead of training them "
                             "on with the rest (default: the preset's, off)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to train (decoding arithmetic is device-independent)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast for the synthesis on CUDA")
    parser.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false",
                        help="on CUDA, train eagerly instead of replaying each iteration from a captured CUDA graph")
    parser.add_argument("--max-seconds", type=positive_float, default=None, help="stop the motion search and training after about this long (at least a quarter is left to training; writing the file comes after)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0): same input + settings + seed = same file")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for training (default 1: on a shared machine more threads can be far slower)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_input_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import torch

    from codec_lab.codec.encoder import encode_clip
    from codec_lab.codec.presets import (
        DEFAULT_LMBDA,
        DEFAULT_PREDICTION,
        get_preset,
        with_prediction,
    )
    from codec_lab.metrics import bitrate_kbps, evaluate, tops_per_frame

    if args.threads:
        torch.set_num_threads(args.threads)
    clip = read_input(args, args.clip)
    preset = get_preset(args.preset)
    if args.iterations:
        preset = replace(preset, iterations=args.iterations)
    preset = with_prediction(preset, args.prediction or DEFAULT_PREDICTION, args.intra_period, args.key_prediction, args.bidirectional)
    if args.intra_first is not None:
        preset = replace(preset, intra_first=args.intra_first)
    if args.intra_frozen is not None:
        preset = replace(preset, intra_frozen=args.intra_frozen)
    lmbda = args.lmbda if args.lmbda is not None else DEFAULT_LMBDA

    def show(p) -> None:
        if args.quiet:
            return
        width = 30
        done = int(width * p.iteration / max(1, p.iterations))
        bar = "#" * done + "-" * (width - done)
        print(
            f"\r[{bar}] {p.iteration}/{p.iterations} {p.phase:5s} loss {p.loss:.5f}  est {p.bits / 8 / 1024:.1f} KiB  PSNR-YUV {p.psnr_yuv:.2f} dB  {p.seconds:.0f}s",
            end="",
            file=sys.stderr,
            flush=True,
        )

    result = encode_clip(clip, args.output, lmbda=lmbda, preset=preset, device=args.device, max_seconds=args.max_seconds, seed=args.seed, amp=args.amp, progress=show,
                         cuda_graphs=args.cuda_graphs)
    if not args.quiet:
        print(file=sys.stderr)
    quality = evaluate(clip, result.reconstruction)
    kbps = bitrate_kbps(result.file_bytes, clip.num_frames, float(clip.fps))
    print(f"wrote {result.path}: {result.file_bytes} bytes, {kbps:.1f} kbps over {clip.num_frames} frames of {clip.width}x{clip.height} at {float(clip.fps):g} fps")
    print(f"entropy-model estimate {result.estimated_bits / 8:.0f} bytes (a check; the bitrate is the file size)")
    print(f"PSNR-YUV {quality.psnr_yuv:.2f} dB  PSNR-Y {quality.psnr_y:.2f} dB  SSIM {quality.ssim:.4f}")
    print(
        f"decoder {result.mac_per_pixel:.0f} MAC/pixel, {tops_per_frame(result.mac_per_pixel, clip.width, clip.height):.2e} TOPS/frame here, "
        f"{tops_per_frame(result.mac_per_pixel, 1920, 1080):.4f} at 1080p"
    )
    print(f"{result.iterations} iterations in {result.train_seconds:.1f}s on {result.device}, {result.encode_seconds:.1f}s in all (preset {result.preset}, lmbda {lmbda:g})")
    return 0
