"""`codec-lab bench`: RD sweeps of codecs on the same frames, measured one way.

Each point: encode the clip, decode the file, crop to the source size, compute
`metrics.evaluate` against the source frames, bitrate from payload bytes.
Each codec's sweep starts from its default settings and widens (up to
`MAX_WIDEN` extra points a side) until it spans roughly `QUALITY_SPAN` dB.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from codec_lab.codecs import Settings, SweepCodec, get_codec
from codec_lab.contracts import BenchClip, BenchResults, RDPoint, Targets, VideoInfo
from codec_lab.errors import CodecLabError
from codec_lab.files import write_text_atomic
from codec_lab.metrics import bitrate_kbps, bits_per_pixel, evaluate, tops_per_frame
from codec_lab.video.frames import Clip

QUALITY_SPAN = (28.0, 42.0)
MAX_WIDEN = 2
BD_ANCHORS = ("x265", "av1")


@dataclass
class BenchProgress:
    """Callbacks for a progress display; all optional."""

    planned: Callable[[int], None] = lambda n: None  # more encodes were planned
    started: Callable[[str, Settings], None] = lambda codec, settings: None
    finished: Callable[[RDPoint], None] = lambda point: None


def settings_tag(settings: Settings) -> str:
    text = "_".join(f"{k}{v}" for k, v in sorted(settings.items()))
    return re.sub(r"[^A-Za-z0-9.=-]+", "-", text)


def measure(
    codec: SweepCodec, clip: Clip, settings: Settings, out_dir: Path, targets: Targets, *, with_ms_ssim: bool = True
) -> RDPoint:
    """Encode, decode, crop, evaluate: one RD point, its file kept in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    encoded = codec.encode(clip, settings, out_dir / f"{codec.name}_{settings_tag(settings)}")
    start = time.perf_counter()
    decoded = codec.decode(encoded.path)
    decode_seconds = time.perf_counter() - start
    decoded = matched_to_source(decoded, clip, encoded.path)
    quality = evaluate(clip, decoded, with_ms_ssim=with_ms_ssim)
    kbps = bitrate_kbps(encoded.payload_bytes, clip.num_frames, float(clip.fps))
    tops = tops_per_frame(encoded.mac_per_pixel, clip.width, clip.height) if encoded.mac_per_pixel is not None else None
    estimated = (
        encoded.estimated_bits / 1000.0 * float(clip.fps) / clip.num_frames if encoded.estimated_bits is not None else None
    )
    return RDPoint(
        codec=codec.name,
        settings=settings,
        frames=clip.num_frames,
        width=clip.width,
        height=clip.height,
        fps=float(clip.fps),
        payload_bytes=encoded.payload_bytes,
        file_bytes=encoded.file_bytes,
        kbps=kbps,
        bpp=bits_per_pixel(encoded.payload_bytes, clip.num_frames, clip.width, clip.height),
        quality=quality,
        encode_seconds=encoded.encode_seconds,
        decode_seconds=decode_seconds,
        mac_per_pixel=encoded.mac_per_pixel,
        tops_per_frame=tops,
        estimated_kbps=estimated,
        meets_target=targets.met_by(kbps, quality.psnr_yuv, quality.ssim, tops),
        path=str(encoded.path),
    )


def matched_to_source(decoded: Clip, source: Clip, path: Path) -> Clip:
    """The decoded clip cropped to the source size; a decoder that lost or added frames is an error, not a metric."""
    if decoded.num_frames != source.num_frames:
        raise CodecLabError(f"{path.name}: decoded {decoded.num_frames} frames, the source has {source.num_frames}")
    if (decoded.width, decoded.height) != (source.width, source.height):
        if decoded.width < source.width or decoded.height < source.height:
            raise CodecLabError(f"{path.name}: decoded {decoded.width}x{decoded.height}, smaller than the source {source.width}x{source.height}")
        decoded = decoded.cropped(source.height, source.width)
    return decoded


def rescored(results: BenchResults, targets: Targets) -> BenchResults:
    """The same points judged against `targets` (a rerun may have changed them)."""
    points = [p.model_copy(update={"meets_target": targets.met_by(p.kbps, p.quality.psnr_yuv, p.quality.ssim, p.tops_per_frame)})
              for p in results.points]
    return results.model_copy(update={"points": points, "targets": targets})


def sweep_codec(
    codec: SweepCodec, clip: Clip, out_dir: Path, targets: Targets, progress: BenchProgress, *, with_ms_ssim: bool = True,
    target_kbps: list[float] | None = None,
) -> list[RDPoint]:
    """The codec's default sweep, widened towards QUALITY_SPAN where the codec allows;
    or, with `target_kbps`, one point per target bitrate (the encoder's rate control)."""
    if target_kbps:
        plan = [{"kbps": kbps} for kbps in target_kbps]
        progress.planned(len(plan))
        points = []
        for settings in plan:
            progress.started(codec.name, settings)
            points.append(measure(codec, clip, settings, out_dir, targets, with_ms_ssim=with_ms_ssim))
            progress.finished(points[-1])
        return points
    plan = codec.sweep(clip)
    progress.planned(len(plan))
    points: list[RDPoint] = []
    for settings in plan:
        progress.started(codec.name, settings)
        points.append(measure(codec, clip, settings, out_dir, targets, with_ms_ssim=with_ms_ssim))
        progress.finished(points[-1])
    low, high = QUALITY_SPAN
    for direction, short in (("higher", lambda q: q < high), ("lower", lambda q: q > low)):
        for _ in range(MAX_WIDEN):
            edge = max(points, key=lambda p: p.quality.psnr_yuv) if direction == "higher" else min(points, key=lambda p: p.quality.psnr_yuv)
            if not short(edge.quality.psnr_yuv):
                break
            nxt = codec.beyond(dict(edge.settings), direction)
            if nxt is None:
                break
            progress.planned(1)
            progress.started(codec.name, nxt)
            points.append(measure(codec, clip, nxt, out_dir, targets, with_ms_ssim=with_ms_ssim))
            progress.finished(points[-1])
    return sorted(points, key=lambda p: p.kbps)


@dataclass
class BenchConfig:
    codecs: list[str] = field(default_factory=lambda: ["x264", "x265", "av1"])
    av1_preset: int = 6
    targets: Targets = field(default_factory=Targets)
    with_ms_ssim: bool = True
    codec_options: dict[str, dict] = field(default_factory=dict)  # per codec name, passed to its factory
    target_kbps: list[float] = field(default_factory=list)  # rate-control points instead of the CRF sweep


def run_bench(clip: Clip, source: VideoInfo | str, out_dir: Path, config: BenchConfig, progress: BenchProgress | None = None) -> BenchResults:
    progress = progress or BenchProgress()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CodecLabError(f"{out_dir}: cannot be used as the output folder ({exc}); pass another --out") from None
    start = time.perf_counter()
    points: list[RDPoint] = []
    for name in config.codecs:
        options = dict(config.codec_options.get(name, {}))
        if name == "av1":
            options.setdefault("preset", config.av1_preset)
        codec = get_codec(name, **options)
        points.extend(sweep_codec(codec, clip, out_dir, config.targets, progress, with_ms_ssim=config.with_ms_ssim,
                                  target_kbps=config.target_kbps))
    from codec_lab.report.rd import bd_rate_table, plot_rd

    path = source.path if isinstance(source, VideoInfo) else str(source)
    bd_values, bd_notes = bd_rate_table(points, BD_ANCHORS)
    results = BenchResults(
        clip=BenchClip(path=path, width=clip.width, height=clip.height, frames=clip.num_frames, fps=float(clip.fps), notes=list(clip.notes)),
        targets=config.targets,
        points=points,
        bd_rate=bd_values,
        bd_rate_notes=bd_notes,
        wall_seconds=time.perf_counter() - start,
    )
    write_text_atomic(out_dir / "results.json", results.model_dump_json(indent=2))
    plot_rd(points, out_dir / "rd.png", config.targets, f"{Path(path).name}: {clip.width}x{clip.height}, {clip.num_frames} frames")
    return results


def load_results(path: Path) -> BenchResults:
    try:
        return BenchResults.model_validate(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as exc:  # ValueError covers bad JSON and failed validation
        raise CodecLabError(f"{path}: not a readable results.json ({exc.__class__.__name__}); delete it to measure again") from None
