"""What a fixed intra period costs the classical anchors (session 7's yardstick for our I-frames).

    python benchmarks/gop_anchors.py [--clip foreman] [--frames 30] [--keyints 8,1] [--codecs x264,x265]

Each codec at its default GOP (keyint 250 with scene cuts) and at each fixed keyint (no scene
cuts), crf sweep as neural_rd.py's anchors, on the same frames; prints the RD points and the
BD-rate of every keyint against the default (codec_lab.report.rd, PSNR-YUV).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from neural_rd import ANCHOR_CRFS, CLIPS, FRAMES, point  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default="foreman", choices=sorted(CLIPS))
    parser.add_argument("--frames", type=int, default=None, help="default: the issue's count for the clip")
    parser.add_argument("--keyints", default="8,1")
    parser.add_argument("--codecs", default="x264,x265")
    args = parser.parse_args()
    from codec_lab.codecs import get_codec
    from codec_lab.report.rd import bd_rate_detail
    from codec_lab.video import read_clip

    clip = read_clip(CLIPS[args.clip](), frames=args.frames or FRAMES[args.clip])
    print(f"{args.clip}: {clip.num_frames} frames of {clip.width}x{clip.height}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.codecs.split(","):
            codec = get_codec(name)
            curves = {}
            for keyint in [None, *(int(k) for k in args.keyints.split(","))]:
                points = []
                for crf in ANCHOR_CRFS[name]:
                    settings = {"crf": crf, "preset": codec.preset, **({"keyint": keyint} if keyint else {})}
                    encoded = codec.encode(clip, settings, Path(tmp) / f"{name}_{keyint}_{crf}")
                    start = time.perf_counter()
                    recon = codec.decode(encoded.path)
                    points.append(point(name, settings, clip, encoded, recon, time.perf_counter() - start))
                curves[keyint] = points
                label = f"keyint {keyint}" if keyint else "default GOP"
                rd = ", ".join(f"{p.kbps:.0f}/{p.quality.psnr_yuv:.2f}" for p in sorted(points, key=lambda p: p.kbps))
                bd = ""
                if keyint:
                    value, why = bd_rate_detail(curves[None], points)
                    bd = f"  BD-rate vs default GOP: {value:+.1f}%" if value is not None else f"  BD-rate: n/a ({why})"
                print(f"{name} {label}: {rd}{bd}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
