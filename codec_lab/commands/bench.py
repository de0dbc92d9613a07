"""`codec-lab bench CLIP`: RD sweeps of codecs on the same frames, BD-rates, the seed's target."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codec_lab.commands._common import (
    add_input_options,
    add_target_options,
    read_input,
    targets_from_args,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="RD sweep of codecs on one clip", description=__doc__)
    parser.add_argument("clip", help="the video to compress")
    parser.add_argument("--codecs", default="x264,x265,av1", help="comma-separated: x264, x265, av1, semantic_latent (default x264,x265,av1)")
    parser.add_argument("--out", type=Path, help="output folder (default bench-out/<clip name>)")
    parser.add_argument("--av1-preset", type=int, default=6, choices=range(0, 14), metavar="0-13", help="SVT-AV1 preset (default 6)")
    parser.add_argument("--neural-preset", default="fast", help="semantic_latent training preset: test, fast (default), medium, full")
    parser.add_argument("--neural-max-seconds", type=float, help="cap on each semantic_latent training, in seconds")
    parser.add_argument("--neural-prediction", choices=["intra", "previous", "motion"], default=None,
                        help="semantic_latent frames: intra (default), motion (predicted from the previous decoded frame moved "
                             "by coded block motion vectors, an intra frame every 8) or previous (not moved)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where semantic_latent trains")
    parser.add_argument("--kbps", help="target bitrates instead of the CRF sweep, e.g. 1000 or 500,1000 (two-pass x264/x265, VBR SVT-AV1)")
    parser.add_argument("--no-ms-ssim", action="store_true", help="skip MS-SSIM (about 1 s per 1080p frame)")
    parser.add_argument("--json", action="store_true", help="print results.json instead of tables")
    add_input_options(parser)
    add_target_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from codec_lab.bench import BenchConfig, BenchProgress, run_bench
    from codec_lab.codecs import parse_codec_list

    codecs = parse_codec_list(args.codecs)
    clip = read_input(args, args.clip)
    out_dir = args.out or Path("bench-out") / Path(args.clip).stem
    config = BenchConfig(codecs=codecs, av1_preset=args.av1_preset, targets=targets_from_args(args), with_ms_ssim=not args.no_ms_ssim,
                         target_kbps=parse_kbps(args.kbps) if args.kbps else [],
                         codec_options={"semantic_latent": {"preset": args.neural_preset, "max_seconds": args.neural_max_seconds,
                                                            "device": args.device, "prediction": args.neural_prediction}})
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 150)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task("bench", total=0)
        hooks = BenchProgress(
            planned=lambda n: bar.update(task, total=bar.tasks[0].total + n),
            started=lambda codec, settings: bar.update(task, description=f"{codec} {settings}"),
            finished=lambda point: bar.advance(task),
        )
        results = run_bench(clip, args.clip, out_dir, config, hooks)
    if args.json:
        print(results.model_dump_json(indent=2))
    else:
        print_results(console, results)
        console.print(f"wrote {out_dir / 'results.json'}, {out_dir / 'rd.png'} and the encoded files in {out_dir} ({results.wall_seconds:.1f} s)")
    return 0


def parse_kbps(text: str) -> list[float]:
    from codec_lab.errors import CodecLabError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CodecLabError(f"--kbps {text!r}: give bitrates in kbps separated by commas, e.g. 500,1000") from None
    if not values or any(v <= 0 for v in values):
        raise CodecLabError(f"--kbps {text!r}: bitrates must be positive")
    return values


def print_results(console, results) -> None:
    from rich.table import Table

    t = results.targets
    table = Table(title=f"{results.clip.path}: {results.clip.width}x{results.clip.height}, {results.clip.frames} frames @ {results.clip.fps:.3f} fps")
    for column in ("codec", "settings", "kbps", "bpp", "PSNR-Y", "PSNR-YUV", "SSIM", "MS-SSIM", "enc s", "dec s", "target"):
        table.add_column(column, justify="left" if column in ("codec", "settings") else "right")
    for p in results.points:
        q = p.quality
        settings = " ".join(f"{k}={v}" for k, v in p.settings.items())
        ms = "n/a" if q.ms_ssim is None else f"{q.ms_ssim:.4f}"
        table.add_row(
            p.codec, settings, f"{p.kbps:.1f}", f"{p.bpp:.4f}", f"{q.psnr_y:.2f}", f"{q.psnr_yuv:.2f}", f"{q.ssim:.4f}", ms,
            f"{p.encode_seconds:.2f}", f"{p.decode_seconds:.2f}", "[green]met[/]" if p.meets_target else "[red]no[/]",
        )
    console.print(table)
    console.print(
        f"target: <= {t.max_kbps:g} kbps, PSNR-YUV >= {t.min_psnr_yuv:g} dB, SSIM >= {t.min_ssim:g}"
        + (", decoder <= {:g} TOPS/frame".format(t.max_tops_per_frame))
    )
    anchors = sorted({a for row in results.bd_rate.values() for a in row})
    if anchors:
        bd = Table(title="BD-rate %", caption="Akima, kbps vs PSNR-YUV; negative = fewer bits than the anchor")
        bd.add_column("codec")
        for anchor in anchors:
            bd.add_column(f"vs {anchor}", justify="right")
        for codec, row in results.bd_rate.items():
            bd.add_row(codec, *("-" if anchor == codec else ("n/a" if row.get(anchor) is None else f"{row[anchor]:+.1f}") for anchor in anchors))
        console.print(bd)
        for codec, row in results.bd_rate_notes.items():
            for anchor, why in row.items():
                console.print(f"no BD-rate for {codec} vs {anchor}: {why}")
