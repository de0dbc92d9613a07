"""Encoder of `semantic_latent`: overfit latents + networks to one clip (`training.py`), then write the .clv file.

Finalizing (always on the CPU, in the decoder's fixed-point arithmetic): the
latents are rounded, each network's weight step 2**-shift is chosen by
rate-distortion among a few candidates, the latents are range-coded in the
decoder's order with the fixed-point ARM, and the reconstruction is computed by
the decoder's own functions. A file trained on a GPU therefore decodes on any
CPU to exactly the frames the encoder reports.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from codec_lab.codec import bitstream, entropy, motion
from codec_lab.codec.cost import mac_per_pixel
from codec_lab.codec.model import (
    WEIGHT_INT_MAX,
    CodecConfig,
    arm_param_shapes,
    code_latents,
    dequantize,
    level_shapes,
    reconstruct,
    synth_layer_tuples,
)
from codec_lab.codec.presets import DEFAULT_LMBDA, DEFAULT_PRESET, Preset, get_preset
from codec_lab.codec.training import (
    LatentModel,
    Progress,
    Trained,
    Training,
    _distortion,
    _targets,
    reproducible_kernels,
    train_together,
)
from codec_lab.errors import CodecLabError
from codec_lab.files import write_bytes_atomic
from codec_lab.video.frames import Clip

SYNTH_SHIFTS = (6, 7, 8, 9, 10, 11)
ARM_SHIFTS = (5, 6, 7, 8, 9, 10)

@dataclass
class EncodeResult:
    path: Path
    file_bytes: int
    estimated_bits: float  # latents: integer tables' ideal bits; everything else: exact section bits
    reconstruction: Clip  # exactly what `codec-lab decode` produces
    encode_seconds: float
    train_seconds: float
    iterations: int
    mac_per_pixel: float
    config: CodecConfig
    preset: str
    lmbda: float
    device: str
    log: list[Progress] = field(default_factory=list)
    cuda_graphs: str = "off"  # "on", "off" or "failed (why)": whether training replayed CUDA graphs

@dataclass(frozen=True)
class WeightSteps:
    """One network's quantization: tensor i has the step 2**(coarsen[i] - shift)."""

    shift: int
    coarsen: tuple[int, ...]

    def quantize(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.clamp(torch.round(t.detach().double().cpu() * 2.0 ** (self.shift - c)), -WEIGHT_INT_MAX, WEIGHT_INT_MAX).to(torch.int64)
                for t, c in zip(tensors, self.coarsen)]

    def dequantize(self, ints: list[torch.Tensor]) -> list[torch.Tensor]:
        return dequantize(ints, self.shift, list(self.coarsen))


def _weight_bits(ints: list[torch.Tensor]) -> int:
    return sum(bitstream.weight_bits(t.numpy()) for t in ints)


@torch.no_grad()
def _best_steps(net: nn.Module, shifts: tuple[int, ...], cost: Callable[[list[torch.Tensor]], float]) -> WeightSteps:
    """The quantization of `net` that minimises cost(integer weights), evaluated with `net` holding
    the quantized weights: first one step 2**-shift for the whole network, then each tensor made
    coarser while that pays (a first layer's weights take a coarse step, a last layer's bias
    rarely). `net` gets its float weights back."""
    params = list(net.parameters())
    saved = [p.detach().clone() for p in params]

    def evaluate(steps: WeightSteps) -> float:
        ints = steps.quantize(saved)
        for p, q in zip(params, steps.dequantize(ints)):
            p.copy_(q.float())
        return cost(ints)

    zero = (0,) * len(params)
    best_cost, best = min(((evaluate(WeightSteps(shift, zero)), WeightSteps(shift, zero)) for shift in shifts), key=lambda pair: pair[0])
    for i in range(len(params)):
        misses = 0
        for c in range(1, bitstream.MAX_COARSEN + 1):
            trial = WeightSteps(best.shift, best.coarsen[:i] + (c,) + best.coarsen[i + 1 :])
            value = evaluate(trial)
            if value < best_cost:
                best_cost, best, misses = value, trial, 0
            else:
                misses += 1
                if misses == 2:  # past one plateau (a halving that rounds a few values the same way) it only gets worse
                    break
    for p, q in zip(params, saved):
        p.copy_(q)
    return best


@torch.no_grad()
def _choose_steps(model: LatentModel, y: torch.Tensor, uv: torch.Tensor, lmbda: float) -> tuple[WeightSteps, WeightSteps, WeightSteps | None]:
    """Each network's weight steps (synthesis, ARM, inter synthesis) by D + lmbda * R, one network at a time."""
    pixels = float(y.numel())
    frames = list(range(y.shape[0]))
    qs = [torch.round(lat.detach()) for lat in model.latents]

    def synthesis_cost(ints: list[torch.Tensor]) -> float:
        y_hat, uv_hat = model.render(qs, frames)
        return float(_distortion(y_hat, uv_hat, y, uv)) + lmbda * _weight_bits(ints) / pixels

    def arm_cost(ints: list[torch.Tensor]) -> float:
        return lmbda * (float(model.rate_bits(qs)) + _weight_bits(ints)) / pixels

    synth = _best_steps(model.synth, SYNTH_SHIFTS, synthesis_cost)
    inter = _best_steps(model.inter, SYNTH_SHIFTS, synthesis_cost) if model.inter is not None else None
    arm = _best_steps(model.arm, ARM_SHIFTS, arm_cost)
    return synth, arm, inter


# Peak training memory per pixel-frame (activations, gradients, Adam state) measured on the CPU
# with the default network: 889 B marginal at 352x288 (max RSS, Mobile CIF 2 against 10 frames,
# session 6; it was 775, then 848 before the ARM's coarse levels became one batch); rounded up.
# Refusing beats the OOM killer.
TRAIN_BYTES_PER_PIXEL = 900
MOTION_BYTES_PER_PIXEL = 128  # an inter frame's motion taps (4 int64 indices + 4 float32 weights per sample, x1.25 for chroma), twice: stacked per wave too
OVERLAP_TAPS = 3  # ... times this with overlapped compensation (12 taps a sample)
# Sharp interpolation needs no more: its phase planes take what its fewer luma taps (1 a vector, not 4)
# save (max RSS, Foreman QCIF overlapped, 16 against 30 frames: 30 MB a frame with it or without; session 13).
TRAIN_BYTES_FIXED = 512 * 1024**2


def available_memory(dev: torch.device) -> int | None:
    if dev.type == "cuda":  # free on the device plus what PyTorch's allocator holds but does not use
        return int(torch.cuda.mem_get_info(dev)[0]) + int(torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev))
    limits = []
    try:
        with open("/proc/meminfo") as handle:
            limits += [int(line.split()[1]) * 1024 for line in handle if line.startswith("MemAvailable:")]
    except OSError:
        pass
    try:  # a container's cgroup v2 limit, which MemAvailable does not see
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        if limit != "max":
            limits.append(int(limit) - int(open("/sys/fs/cgroup/memory.current").read().strip()))
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


MODEL_STATE_BYTES_PER_PIXEL = 24  # what each model keeps between iterations: its latents, their gradient and Adam's two moments


def check_training_memory(frames: int, height: int, width: int, dev: torch.device, motion: bool = False, models: int = 1,
                          overlap: bool = False, bidirectional: bool = False) -> None:
    """A clear error, before anything is allocated, when training would not fit in memory.
    models: trained together. On CUDA each keeps a whole iteration's memory (its graph's pool); on
    the CPU they take turns, so beyond the first only their lasting state counts. overlap: the
    motion is compensated overlapped (3x the taps); bidirectional: B-frames (two predictions' taps)."""
    available = available_memory(dev)
    taps = MOTION_BYTES_PER_PIXEL * (OVERLAP_TAPS if overlap else 1) * (2 if bidirectional else 1) if motion else 0
    per_pixel = TRAIN_BYTES_PER_PIXEL + taps
    each_more = per_pixel if dev.type == "cuda" else MODEL_STATE_BYTES_PER_PIXEL + taps
    per_frame = (per_pixel + (models - 1) * each_more) * height * width
    needed = TRAIN_BYTES_FIXED + per_frame * frames
    if available is None or needed <= available:
        return
    fits = max(0, (available - TRAIN_BYTES_FIXED) // per_frame)
    advice = f"use --frames {fits} or fewer" if fits else "even one frame of this size does not fit: downscale it"
    together = f" ({models} models together)" if models > 1 else ""
    advice += ", train fewer points together" if models > 1 else ""
    raise CodecLabError(
        f"training on {frames} frames of {width}x{height}{together} needs about {needed / 1024**3:.1f} GB and {dev.type} has "
        f"{available / 1024**3:.1f} GB free: {advice}, or use a device with more memory"
    )


@dataclass
class _Job:
    """One RD point being encoded: what finishing it needs once its model is trained."""

    out_path: Path
    lmbda: float
    cfg: CodecConfig
    shapes: list[tuple[int, int, int]]
    fields: list[np.ndarray]  # the predictions' motion, in cfg.predictions order
    model: LatentModel
    size: tuple[int, int, int]  # frames, height, width of the padded clip


def encode_clip(clip: Clip, out_path: str | Path, *, lmbda: float = DEFAULT_LMBDA, **options) -> EncodeResult:
    """Train on `clip` and write `out_path`. Same clip, settings, seed, device and thread count: same file.
    options: those of encode_clip_points (preset, device, max_seconds, seed, amp, progress, cuda_graphs)."""
    return encode_clip_points(clip, [(out_path, lmbda)], **options)[0]


def encode_clip_points(
    clip: Clip,
    points: list[tuple[str | Path, float]],
    *,
    preset: str | Preset = DEFAULT_PRESET,
    device: str = "cpu",
    max_seconds: float | None = None,
    seed: int = 0,
    amp: bool = False,
    progress: Callable[[Progress], None] | None = None,
    cuda_graphs: bool | None = None,
) -> list[EncodeResult]:
    """Several RD points of one clip, (out_path, lmbda) each, trained together (training.train_together:
    on CUDA their kernels overlap) and sharing one motion search. Without a time cap each file is
    the one encode_clip would write alone. A point whose training diverges raises a CodecLabError
    once the others are written.
    max_seconds: caps the motion search and the training of all of them together (wall time; see
    training_budget); each result's encode_seconds is the whole call's.
    cuda_graphs: replay training from CUDA graphs (None: on CUDA, yes; ignored on the CPU)."""
    t0 = time.monotonic()
    preset = get_preset(preset) if isinstance(preset, str) else preset
    for _, lmbda in points:
        if not (lmbda > 0 and math.isfinite(lmbda)):
            raise CodecLabError(f"--lmbda must be a positive number, got {lmbda}")
    if clip.width > bitstream.MAX_DIM or clip.height > bitstream.MAX_DIM or clip.num_frames > bitstream.MAX_FRAMES:
        raise CodecLabError(f"clip {clip.width}x{clip.height}x{clip.num_frames} is beyond what the format holds")
    if device == "cuda" and not torch.cuda.is_available():
        raise CodecLabError("--device cuda asked for, but torch sees no CUDA device")
    outputs = [Path(out_path) for out_path, _ in points]
    if len({path.resolve() for path in outputs}) < len(outputs):
        raise CodecLabError(f"two RD points would write the same file: {', '.join(map(str, outputs))}")
    for path in outputs:
        _check_output(path)
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = False
    padded = clip.padded(2)
    frames, height, width = padded.num_frames, padded.height, padded.width
    check_training_memory(frames, height, width, dev, motion=bool(preset.config.motion_block), models=len(points),
                          overlap=preset.motion_overlap, bidirectional=preset.config.bidirectional)
    searched: dict = {}  # the motion search does not depend on lmbda, only the choice of block size and smoothness does
    jobs = [_prepare(padded, Path(out_path), lmbda, preset, dev, seed, searched) for out_path, lmbda in points]
    y, uv = _targets(padded, dev)
    with reproducible_kernels(dev):
        if preset.intra_first and preset.config.inter:
            _train_intra_first(jobs, y, uv, preset, dev, seed, amp, training_budget(max_seconds, time.monotonic() - t0), cuda_graphs)
        train_seconds = training_budget(max_seconds, time.monotonic() - t0)
        trainings = [Training(job.model, y, uv, job.lmbda, preset, max_seconds=train_seconds, amp=amp, progress=progress,
                              cuda_graphs=dev.type == "cuda" and cuda_graphs is not False) for job in jobs]
        trained = train_together(trainings)
        # ---- weight steps: ~80 float renders of the clip, on the training device (fast on a GPU)
        steps = [_choose_steps(job.model.float(), y, uv, job.lmbda) if run.error is None else None for job, run in zip(jobs, trained)]
    results = [_finish(clip, job, run, step, preset, dev) for job, run, step in zip(jobs, trained, steps) if run.error is None]
    for result in results:
        result.encode_seconds = time.monotonic() - t0
    failed = [(job, run.error) for job, run in zip(jobs, trained) if run.error is not None]
    if len(points) == 1 and failed:
        raise failed[0][1]
    if failed:  # the others' files are written
        raise CodecLabError("; ".join(f"lmbda {job.lmbda:g}: {error}" for job, error in failed)
                            + f" ({len(results)} other point(s) written: {', '.join(str(r.path) for r in results) or 'none'})")
    return results


def _check_output(out_path: Path) -> None:
    """Fail before training, not after it: the file's folder is made if missing, and must be writable."""
    if out_path.is_dir():
        raise CodecLabError(f"output {out_path} is a folder: give a file name, e.g. {out_path / 'clip.clv'}")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CodecLabError(f"cannot make the output folder {out_path.parent} ({error.strerror}): choose another -o") from error
    if not os.access(out_path.parent, os.W_OK) or (out_path.exists() and not os.access(out_path, os.W_OK)):
        raise CodecLabError(f"cannot write {out_path}: choose another -o")


def _train_intra_first(jobs: list[_Job], y: torch.Tensor, uv: torch.Tensor, preset: Preset, dev: torch.device, seed: int,
                       amp: bool, max_seconds: float | None, cuda_graphs: bool | None) -> None:
    """Preset.intra_first: each job's intra frames trained first, alone, as an all-intra model with
    the preset's schedule stretched by intra_iteration_factor, at lambda x intra_lambda_factor, then
    frozen into the job's model (LatentModel.take_intra; their latents too with Preset.intra_frozen,
    else they train on with the rest), which trains the rest without a warm-up.
    Trained jointly, a lone I-frame (key prediction) came out worse: Foreman 16 frames, lambda 6e-3,
    2,587 B at 30.3 dB against 1,376 B at 32.8 trained first (docs/codec.md, session 8). The jobs'
    first stages train together, as their second stages do; under a time cap they get their share
    of the compute (frames x iterations) of the cap."""
    firsts, trainings = [], []
    for job in jobs:
        cfg, (frames, height, width) = job.cfg, job.size
        intra = cfg.intra_frames(frames)
        intra_cfg = replace(cfg, inter_synth=(), motion_block=0, motion_depth=0, motion_overlap=False, motion_sharp=False, intra_period=0,
                            key_prediction=False, bidirectional=False)
        torch.manual_seed(seed)
        first = LatentModel(intra_cfg, level_shapes(intra_cfg, len(intra), height, width), noise_seed=seed).to(dev)
        if dev.type == "cpu":
            first.use_channels_last()
        index = torch.tensor(intra, device=dev)
        iterations = max(1, round(preset.iterations * preset.intra_iteration_factor))
        share = len(intra) * iterations / (len(intra) * iterations + frames * preset.iterations)  # of the compute, ~ frames x iterations
        trainings.append(Training(first, y.index_select(0, index), uv.index_select(0, index), job.lmbda * preset.intra_lambda_factor,
                                  replace(preset, config=intra_cfg, iterations=iterations),
                                  max_seconds=None if max_seconds is None else max_seconds * share, amp=amp, progress=None,
                                  cuda_graphs=dev.type == "cuda" and cuda_graphs is not False))
        firsts.append(first)
    for job, first, run in zip(jobs, firsts, train_together(trainings)):
        if run.error is not None:
            raise run.error
        job.model.take_intra(first, freeze_latents=preset.intra_frozen)


MIN_TRAIN_SHARE = 0.25  # of --max-seconds, left to training however long the motion search took


def training_budget(max_seconds: float | None, spent: float) -> float | None:
    """What a --max-seconds cap leaves to training once `spent` seconds went to preparing (the
    motion search: ~2 s a CIF frame on this CPU, far more at 1080p), but never under
    MIN_TRAIN_SHARE of the cap: a cap counts the search too, rather than being overrun by it."""
    if max_seconds is None:
        return None
    return max(max_seconds - spent, MIN_TRAIN_SHARE * max_seconds)


def _prepare(padded: Clip, out_path: Path, lmbda: float, preset: Preset, dev: torch.device, seed: int, searched: dict) -> _Job:
    """The motion (if any) and the untrained model of one RD point."""
    cfg = preset.config
    frames, height, width = padded.num_frames, padded.height, padded.width
    shapes = level_shapes(cfg, frames, height, width)
    fields: list[np.ndarray] = []
    if cfg.motion_block:
        from codec_lab.codec.motion_search import choose_motion

        pairs = cfg.predictions(frames)
        (block, depth), fields = choose_motion(padded.y, preset.motion_blocks, lmbda, [t for t, _ in pairs], searched,
                                               references=[r for _, r in pairs], split_depth=preset.motion_depth,
                                               overlap=preset.motion_overlap, sharp=preset.motion_sharp)
        cfg = replace(cfg, motion_block=block, motion_depth=depth, motion_overlap=preset.motion_overlap, motion_sharp=preset.motion_sharp)
    by_frame: dict[int, list[np.ndarray]] = {}
    for (t, _), vectors in zip(cfg.predictions(frames), fields):
        by_frame.setdefault(t, []).append(vectors)
    torch.manual_seed(seed)
    model = LatentModel(cfg, shapes, by_frame, noise_seed=seed, frames=frames).to(dev)
    if dev.type == "cpu":
        model.use_channels_last()
    return _Job(out_path, lmbda, cfg, shapes, fields, model, (frames, height, width))


def _finish(clip: Clip, job: _Job, trained: Trained, steps: tuple[WeightSteps, WeightSteps, WeightSteps | None],
            preset: Preset, dev: torch.device) -> EncodeResult:
    """Quantize the trained model, code it and write the file, on the CPU in the decoder's arithmetic."""
    synth_steps, arm_steps, inter_steps = steps
    cfg, shapes, fields = job.cfg, job.shapes, job.fields
    frames, height, width = job.size
    inter_steps = inter_steps or WeightSteps(cfg.inter_shift, ())
    model = job.model.cpu()
    cfg = cfg.with_shifts(synth_steps.shift, arm_steps.shift, inter_steps.shift)
    synth_ints = synth_steps.quantize(list(model.synth.parameters()))
    inter_ints = inter_steps.quantize(list(model.inter.parameters())) if model.inter is not None else []
    arm_ints = arm_steps.quantize(list(model.arm.parameters()))
    assert [tuple(t.shape) for t in arm_ints] == arm_param_shapes(cfg)
    weights = bitstream.pack_weights([t.numpy() for t in synth_ints + inter_ints + arm_ints],
                                     list(synth_steps.coarsen + inter_steps.coarsen + arm_steps.coarsen))
    values = [torch.round(lat.detach().double()).clamp(-entropy.LMAX, entropy.LMAX) for lat in model.latents]
    coder = entropy.LatentEncoder()
    levels = code_latents(cfg, shapes, arm_steps.dequantize(arm_ints), coder, values)
    latents = coder.finish()
    header = bitstream.Header(
        "semantic_latent", clip.width, clip.height, clip.num_frames, clip.fps, cfg.n_levels, cfg.temporal_strides,
        synth_layer_tuples(cfg), cfg.arm_hidden, cfg.arm_layers, cfg.synth_shift, cfg.arm_shift,
        synth_layer_tuples(cfg, inter=True), cfg.inter_shift, cfg.motion_block, cfg.intra_period, cfg.arm_context,
        cfg.key_prediction, cfg.motion_depth, cfg.motion_overlap, cfg.motion_sharp, cfg.bidirectional,
    )
    motion_section = motion.encode_fields(fields, cfg.motion_depth, cfg.predictions(frames)) if fields else b""
    data = bitstream.write_file(header, weights, latents, motion_section)
    write_bytes_atomic(job.out_path, data)  # a crash mid-write leaves no half file
    y8, u8, v8 = reconstruct(cfg, levels, synth_steps.dequantize(synth_ints), frames, height, width,
                             inter_steps.dequantize(inter_ints), fields)
    recon = Clip(y8, u8, v8, clip.fps).cropped(clip.height, clip.width)
    estimated = coder.ideal_bits + 8.0 * (len(data) - len(latents))
    return EncodeResult(
        path=job.out_path,
        file_bytes=len(data),
        estimated_bits=estimated,
        reconstruction=recon,
        encode_seconds=0.0,  # set by the caller
        train_seconds=trained.seconds,
        iterations=trained.iterations,
        mac_per_pixel=mac_per_pixel(cfg, clip.height, clip.width, clip.num_frames),
        config=cfg,
        preset=preset.name,
        lmbda=job.lmbda,
        device=str(dev),
        log=trained.log,
        cuda_graphs=trained.cuda_graphs,
    )
