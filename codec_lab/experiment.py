"""One experiment, start to finish: encode the plan's codec, decode the file in a
separate process (`codec-lab decode`, which needs nothing but the file), measure
the decoded frames against the source, write `result.json`. A failure of any
step becomes a failed `ExperimentResult` with the error: never an exception, never lost.
"""

from __future__ import annotations

import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from codec_lab.codecs import Settings, SweepCodec, get_codec
from codec_lab.contracts import ExperimentMetrics, ExperimentPlan, ExperimentResult, Targets
from codec_lab.errors import CodecLabError
from codec_lab.files import write_text_atomic
from codec_lab.metrics import bitrate_kbps, evaluate, tops_per_frame
from codec_lab.video.frames import Clip

DECODE_TIMEOUT_S = 600
KEEP_RECON_BYTES = 64 * 1024**2  # larger reconstructions keep only their sample frame


@dataclass(frozen=True)
class ExperimentOptions:
    device: str = "cpu"
    max_seconds: float | None = None  # training time cap for neural strategies
    with_ms_ssim: bool = True


def codec_for_plan(plan: ExperimentPlan, options: ExperimentOptions) -> tuple[SweepCodec, Settings]:
    """The codec a plan names, and the settings to encode with."""
    params = dict(plan.parameters)
    if plan.strategy == "av1":
        return get_codec("av1", preset=int(params.get("preset", 6))), {"crf": int(params["crf"]), "preset": str(params.get("preset", 6))}
    if plan.strategy == "semantic_latent":
        codec = get_codec("semantic_latent", device=options.device, max_seconds=options.max_seconds)
        return codec, params
    raise CodecLabError(f"strategy {plan.strategy!r} has no codec yet; the planner should not have proposed it")


def decode_in_subprocess(bitstream: Path, recon: Path) -> float:
    """`codec-lab decode BITSTREAM -o RECON` in a fresh interpreter; returns its wall time."""
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "codec_lab.cli", "decode", str(bitstream), "-o", str(recon)],
        capture_output=True, text=True, timeout=DECODE_TIMEOUT_S,
    )
    if run.returncode != 0:
        raise CodecLabError(f"the standalone decoder failed on {bitstream.name}: {run.stderr.strip()[-500:]}")
    return time.perf_counter() - start


def save_sample(clip: Clip, path: Path) -> Path:
    """The middle frame as an RGB PNG (BT.601, chroma upsampled by repetition) for the report."""
    import numpy as np
    from skimage.color import ycbcr2rgb
    from skimage.io import imsave

    i = clip.num_frames // 2
    u = np.repeat(np.repeat(clip.u[i], 2, axis=0), 2, axis=1)[: clip.height, : clip.width]
    v = np.repeat(np.repeat(clip.v[i], 2, axis=0), 2, axis=1)[: clip.height, : clip.width]
    rgb = ycbcr2rgb(np.stack([clip.y[i], u, v], axis=-1).astype(np.float64))
    imsave(path, (np.clip(rgb, 0, 1) * 255).astype(np.uint8), check_contrast=False)
    return path


def run_experiment(plan: ExperimentPlan, clip: Clip, out_dir: Path, targets: Targets, options: ExperimentOptions) -> ExperimentResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        result = _run(plan, clip, out_dir, targets, options, started)
    except Exception as exc:  # noqa: BLE001 - any failure is recorded, and the run goes on
        detail = str(exc) if isinstance(exc, CodecLabError) else "".join(traceback.format_exception_only(exc)).strip()
        (out_dir / "error.txt").write_text(traceback.format_exc())
        result = ExperimentResult(
            plan_id=plan.plan_id, video_id=plan.video_id, status="failed",
            error=f"{type(exc).__name__}: {detail}"[:4000],
            artifacts={"log": str(out_dir / "error.txt")},
            timings={"total": time.perf_counter() - started},
        )
    write_text_atomic(out_dir / "result.json", result.model_dump_json(indent=2))
    return result


def _run(plan: ExperimentPlan, clip: Clip, out_dir: Path, targets: Targets, options: ExperimentOptions, started: float) -> ExperimentResult:
    from codec_lab.bench import matched_to_source
    from codec_lab.video import read_clip

    codec, settings = codec_for_plan(plan, options)
    encoded = codec.encode(clip, settings, out_dir / "bitstream")
    recon_path = out_dir / "recon.y4m"
    decode_seconds = decode_in_subprocess(encoded.path, recon_path)
    decoded = matched_to_source(read_clip(recon_path), clip, encoded.path)
    quality = evaluate(clip, decoded, with_ms_ssim=options.with_ms_ssim)
    sample = save_sample(decoded, out_dir / "sample.png")
    kbps = bitrate_kbps(encoded.payload_bytes, clip.num_frames, float(clip.fps))
    tops = tops_per_frame(encoded.mac_per_pixel, clip.width, clip.height) if encoded.mac_per_pixel is not None else None
    artifacts = {"bitstream": str(encoded.path), "sample": str(sample)}
    if recon_path.stat().st_size <= KEEP_RECON_BYTES:
        artifacts["reconstruction"] = str(recon_path)
    else:
        recon_path.unlink()
    timings = {"encode": encoded.encode_seconds, "decode": decode_seconds, "total": time.perf_counter() - started}
    if plan.strategy != "av1":
        timings["gpu"] = encoded.encode_seconds  # compute seconds spent training, on whichever device
    return ExperimentResult(
        plan_id=plan.plan_id, video_id=plan.video_id, status="succeeded",
        metrics=ExperimentMetrics(
            quality=quality, kbps=kbps, payload_bytes=encoded.payload_bytes, mac_per_pixel=encoded.mac_per_pixel,
            tops_per_frame=tops, meets_target=targets.met_by(kbps, quality.psnr_yuv, quality.ssim, tops),
        ),
        artifacts=artifacts,
        timings=timings,
    )
