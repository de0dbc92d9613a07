"""Where a .clv file's bytes go against x264's at the same rate, frame type by frame type.

    python benchmarks/frame_budget.py FILE.clv [FILE.clv ...] [--clip foreman] [--frames 30] [--match size|psnr]

For each file, x264 medium (the anchors' settings) is run at the crf whose payload is nearest the
file's size (or, with --match psnr, whose mean PSNR-YUV is nearest the file's), on the same
frames; both are decoded and measured frame by frame. The table gives, per frame type (I, P,
B), the frames, their bytes and their mean PSNR-YUV; the .clv's weights, header and framing on
lines of their own (x264's header: the payload's bytes outside its frames). A .clv's frame
bytes are its latents and motion vectors (`codec-lab inspect`); x264's are its packets, SEI
stripped as the anchors strip it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from neural_rd import CLIPS, FRAMES  # noqa: E402

CRFS = range(10, 52)
PICTURE_TYPES = {1: "I", 2: "P", 3: "B"}  # FFmpeg's AVPictureType, an int in PyAV 18


def x264_frames(path: Path) -> list[tuple[str, int]]:
    """x264's frames in display order as (type, bytes). The payload's other bytes are its parameter sets."""
    import av

    with av.open(str(path)) as container:
        sizes = sorted((p.pts, p.size) for p in container.demux(video=0) if p.size)
    with av.open(str(path)) as container:
        kinds = [getattr(frame.pict_type, "name", None) or PICTURE_TYPES.get(int(frame.pict_type), "?")
                 for frame in container.decode(video=0)]
    return [(kind, size) for kind, (_, size) in zip(kinds, sizes)]


def nearest_crf(clip, match: str, target: float, tmp: Path):
    """x264 at the crf whose payload (match "size") or mean PSNR-YUV ("psnr") is nearest target
    (bisection: both fall as crf rises). Returns the crf, its encode, its decoded clip."""
    from codec_lab.codecs import get_codec
    from codec_lab.metrics import evaluate

    codec = get_codec("x264")
    tried = {}

    def measure(crf: int) -> float:
        if crf not in tried:
            encoded = codec.encode(clip, {"crf": crf, "preset": "medium"}, tmp / f"x264_crf{crf}")
            decoded = codec.decode(encoded.path) if match == "psnr" else None  # by size, only the crf chosen is decoded
            value = encoded.payload_bytes if match == "size" else evaluate(clip, decoded, with_ms_ssim=False).psnr_yuv
            tried[crf] = (encoded, decoded, value)
        return tried[crf][2]

    low, high = CRFS[0], CRFS[-1]
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if measure(mid) > target else (low, mid)
    crf = min((low, high), key=lambda c: abs(measure(c) - target))
    encoded, decoded, _ = tried[crf]
    return crf, encoded, decoded if decoded is not None else codec.decode(encoded.path)


def summary(rows: list[tuple[str, float, float | None]]) -> dict[str, tuple[int, float, float]]:
    """(kind, bytes, PSNR-YUV) per frame -> per kind: frames, bytes, mean PSNR-YUV."""
    out = {}
    for kind in "IPB":
        these = [r for r in rows if r[0] == kind]
        if these:
            out[kind] = (len(these), sum(r[1] for r in these), float(np.mean([r[2] for r in these])))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--clip", default="foreman", choices=sorted(CLIPS))
    parser.add_argument("--frames", type=int, default=None, help="default: the issue's count for the clip")
    parser.add_argument("--match", default="size", choices=("size", "psnr"),
                        help="x264 at the crf nearest the file's size (default) or its mean PSNR-YUV")
    args = parser.parse_args()
    from codec_lab.codec.stats import file_stats, frame_quality
    from codec_lab.video import read_clip

    source = read_clip(CLIPS[args.clip](), frames=args.frames or FRAMES[args.clip])
    for path in args.files:
        stats = file_stats(path, source=source)
        clip = source.head(len(stats.frames))
        ours = summary([(f.kind, f.latent_bytes + f.motion_bytes, f.psnr_yuv) for f in stats.frames])
        with tempfile.TemporaryDirectory() as tmp:
            mean_psnr = float(np.mean([f.psnr_yuv for f in stats.frames]))
            crf, encoded, decoded = nearest_crf(clip, args.match, stats.file_bytes if args.match == "size" else mean_psnr, Path(tmp))
            frames = x264_frames(encoded.path)
        quality = [yuv for _, yuv in frame_quality(clip, decoded)]
        theirs = summary([(kind, size, q) for (kind, size), q in zip(frames, quality)])
        print(f"\n{path.name} ({stats.file_bytes} B, {mean_psnr:.2f} dB) against "
              f"x264 crf {crf} ({encoded.payload_bytes} B, {np.mean(quality):.2f} dB), {clip.num_frames} frames of {args.clip}")
        print("| | semantic_latent: frames, bytes, PSNR-YUV | x264: frames, bytes, PSNR-YUV |\n|---|---|---|")
        for kind in "IPB":
            cells = [f"{n} / {b:,.0f} B / {q:.2f} dB" if (n, b, q) != (0, 0, 0) else "-"
                     for n, b, q in (side.get(kind, (0, 0, 0)) for side in (ours, theirs))]
            print(f"| {kind}-frames | {cells[0]} | {cells[1]} |")
        print(f"| weights | {stats.weights_section:,} B | - |")
        rest = encoded.payload_bytes - sum(size for _, size in frames)
        print(f"| header and framing | {stats.header_bytes + stats.framing_bytes} B | {rest} B (parameter sets outside the frames) |")
        print(f"| total | {stats.file_bytes:,} B | {encoded.payload_bytes:,} B |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
