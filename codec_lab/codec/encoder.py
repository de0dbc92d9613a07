"""Encoder of `semantic_latent`: overfit latents + networks to one clip, then write the .clv file.

Training (float32, CPU or CUDA): loss = D + lmbda * R, with D the 6:1:1 weighted
MSE of Y, U, V on [0, 1] (what PSNR-YUV rewards) and R the ARM's bits per
(padded) pixel. First additive uniform noise stands in for rounding, then the
last `ste_fraction` of the iterations use straight-through rounding.

Finalizing (always on the CPU, in the decoder's fixed-point arithmetic): the
latents are rounded, each network's weight step 2**-shift is chosen by
rate-distortion among a few candidates, the latents are range-coded in the
decoder's order with the fixed-point ARM, and the reconstruction is computed by
the decoder's own functions. A file trained on a GPU therefore decodes on any
CPU to exactly the frames the encoder reports.
"""

from __future__ import annotations

import math
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
    ARM_IN,
    WEIGHT_INT_MAX,
    Arm,
    CodecConfig,
    Synthesis,
    add_correction,
    arm_param_shapes,
    code_latents,
    decoded_value,
    dequantize,
    laplace_bits,
    level_context,
    level_shapes,
    pixel_levels,
    prediction_planes,
    reconstruct,
    synth_layer_tuples,
    to_420,
    upsample_levels,
)
from codec_lab.codec.presets import DEFAULT_LMBDA, DEFAULT_PRESET, Preset, get_preset
from codec_lab.errors import CodecLabError
from codec_lab.video.frames import Clip

YUV_WEIGHTS = (6.0 / 8.0, 1.0 / 8.0, 1.0 / 8.0)
INTRA_WARMUP = 0.3  # share of the noise phase in which an inter-frame model trains frame 0 alone
SYNTH_SHIFTS = (6, 7, 8, 9, 10, 11)
ARM_SHIFTS = (5, 6, 7, 8, 9, 10)


@dataclass
class Progress:
    iteration: int
    iterations: int
    loss: float
    bits: float  # the ARM's estimate of the latent bits (training-time, continuous)
    psnr_yuv: float  # of the training reconstruction (noisy or rounded latents)
    phase: str
    seconds: float


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


def soft_round(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """Differentiable rounding (Agustsson & Theis 2020); tends to round() as the temperature goes to 0."""
    alpha = 1.0 / temperature
    m = torch.floor(x) + 0.5
    return m + torch.tanh(alpha * (x - m)) / (2.0 * math.tanh(alpha / 2.0))


def _straight_through(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """`value` forward, the identity's gradient backward."""
    return x + (value - x).detach()


def _ste_prediction(prev_y: torch.Tensor, prev_uv: torch.Tensor, taps: tuple[motion.Taps, motion.Taps] | None):
    """The decoder's prediction of an inter frame from the previous frame's training output, with a
    straight-through gradient at each rounding (8-bit reference, rounded interpolation, fixed point).
    taps: the frame's (luma, chroma) motion taps, or None for the previous frame as it is."""
    if taps is not None:
        refs = (_straight_through(255.0 * v, pixel_levels(v.detach())) for v in (prev_y, prev_uv))
        prev_y, prev_uv = (motion.compensate(ref, t, straight_through=True) / 255.0 for ref, t in zip(refs, taps))
    return tuple(_straight_through(v, decoded_value(v.detach())) for v in (prev_y, prev_uv))


class LatentModel(nn.Module):
    def __init__(self, cfg: CodecConfig, shapes: list[tuple[int, int, int]], fields: list[np.ndarray] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        # Each inter frame's taps, built once (autograd would hold them until backward anyway):
        # buffers, so they follow the model to its device.
        self.taps_meta: list[tuple[tuple[int, tuple[int, int]], ...]] = []
        for t, vectors in enumerate(fields or []):
            taps = motion.frame_taps(vectors, cfg.motion_block, shapes[0][1], shapes[0][2], dtype=torch.float32)
            for k, plane in enumerate(taps):
                self.register_buffer(f"taps_{t}_{k}_index", plane.index, persistent=False)
                self.register_buffer(f"taps_{t}_{k}_weight", plane.weight, persistent=False)
            self.taps_meta.append(tuple((plane.norm, plane.shape) for plane in taps))
        self.latents = nn.ParameterList([nn.Parameter(torch.zeros(s)) for s in shapes])
        self.synth = Synthesis(cfg)
        self.arm = Arm(cfg)
        self.inter = Synthesis(cfg, inter=True) if cfg.inter else None

    def quantized(self, noise: bool, temperature: float = 0.3, amplitude: float = 1.0) -> list[torch.Tensor]:
        """Training proxy of rounding: soft rounding plus annealed uniform noise, then hard rounding (STE)."""
        out = []
        for lat in self.latents:
            if noise:
                # noise between two soft roundings (as Cool-chic 3): a latent parked on a rounding
                # boundary becomes a coin flip instead of a cheap fractional value
                out.append(soft_round(soft_round(lat, temperature) + amplitude * (torch.rand_like(lat) - 0.5), temperature))
            else:
                out.append(_straight_through(lat, torch.round(lat)))
        return out

    def rate_bits(self, qs: list[torch.Tensor], frames: int | None = None) -> torch.Tensor:
        """The ARM's bits for the latents, or only for those the first `frames` frames use."""
        total = qs[0].new_zeros(())
        for level in range(self.cfg.n_levels):
            stride = self.cfg.temporal_strides[level]
            used = qs[level].shape[0] if frames is None else (frames + stride - 1) // stride
            feats = level_context(self.cfg, qs, level)[:used].reshape(-1, ARM_IN)
            mu, log2_scale = self.arm(feats)
            total = total + laplace_bits(qs[level][:used].reshape(-1), mu, log2_scale).sum()
        return total

    def motion_taps(self, t: int) -> tuple[motion.Taps, motion.Taps] | None:
        """The (luma, chroma) motion taps of frame t >= 1 (None without motion)."""
        if not self.cfg.motion_block:
            return None
        return tuple(motion.Taps(getattr(self, f"taps_{t - 1}_{k}_index"), getattr(self, f"taps_{t - 1}_{k}_weight"), norm, shape)
                     for k, (norm, shape) in enumerate(self.taps_meta[t - 1]))

    def render(self, qs: list[torch.Tensor], frames: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        x = upsample_levels(self.cfg, qs, frames)
        if self.inter is None:
            return to_420(self.synth(x))
        # Inter frames form a chain: frame t is predicted by frame t-1 as the decoder will have it
        # (8-bit, straight-through gradient), so the gradient of every frame reaches frame 0.
        # (Cutting the gradient along the chain was measured worse: frame 0 got better, the
        # later frames drifted down by ~1 dB a frame on N06.)
        if frames != list(range(len(frames))):
            raise ValueError("inter frames are rendered as a chain from frame 0")
        # The chain itself (8-bit prediction, 4:2:0 add) stays float32 under --amp: in bf16 it would
        # be up to 2 levels away from the decoder's chain.
        y, uv = to_420(self.synth(x[:1]).float())
        ys, uvs = [y], [uv]
        for t in range(1, len(frames)):
            pred_y, pred_uv = _ste_prediction(ys[-1], uvs[-1], self.motion_taps(t))
            out = self.inter(torch.cat([x[t : t + 1], prediction_planes(pred_y, pred_uv)], dim=1)).float()
            y, uv = add_correction(out, pred_y, pred_uv)
            ys.append(y)
            uvs.append(uv)
        return torch.cat(ys), torch.cat(uvs)


def _targets(clip: Clip, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.from_numpy(clip.y.astype(np.float32) / 255.0).to(device)
    uv = torch.from_numpy(np.stack([clip.u, clip.v], axis=1).astype(np.float32) / 255.0).to(device)
    return y, uv


def _distortion(y_hat, uv_hat, y, uv) -> torch.Tensor:
    mse_y = torch.mean((y_hat - y) ** 2)
    mse_u = torch.mean((uv_hat[:, 0] - uv[:, 0]) ** 2)
    mse_v = torch.mean((uv_hat[:, 1] - uv[:, 1]) ** 2)
    return YUV_WEIGHTS[0] * mse_y + YUV_WEIGHTS[1] * mse_u + YUV_WEIGHTS[2] * mse_v


def _psnr(mse: float) -> float:
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def train(
    model: LatentModel,
    y: torch.Tensor,
    uv: torch.Tensor,
    lmbda: float,
    preset: Preset,
    *,
    max_seconds: float | None,
    amp: bool,
    progress: Callable[[Progress], None] | None,
) -> tuple[int, float, list[Progress]]:
    frames = list(range(y.shape[0]))
    pixels = float(y.numel())
    if y.device.type == "cpu":
        torch.set_flush_denormal(True)
    opt = torch.optim.Adam(model.parameters(), lr=preset.lr)
    total = preset.iterations
    noise_end = int(round(total * (1.0 - preset.ste_fraction)))
    start = time.monotonic()
    log: list[Progress] = []
    it = 0
    device_type = y.device.type
    while it < total:
        noise = it < noise_end
        if noise:
            lr = preset.lr * 0.5 * (1.0 + math.cos(math.pi * it / max(1, noise_end)))
            lr = max(lr, preset.lr * 0.02)
        else:
            lr = preset.lr * preset.ste_lr_factor * (1.0 - (it - noise_end) / max(1, total - noise_end)) + 1e-5
        for group in opt.param_groups:
            group["lr"] = lr
        progress_in_noise = min(1.0, it / max(1, noise_end))
        temperature = 0.3 - 0.2 * progress_in_noise
        amplitude = 1.0
        qs = model.quantized(noise, temperature, amplitude)
        # With inter frames, frame 0 trains alone first (as an I-frame before its P-frames): trained
        # with the chain from the start it settles ~1.4 dB lower and the later frames with it.
        # Its rate alone too: the inter latents are not charged before their frames are shown
        # (charging them only pushed them to zero before they had a use). Frame 0's bits stay
        # priced per pixel of the whole clip meanwhile, 1/T of their later price, much as an
        # I-frame gets a lower QP: pricing them per pixel of frame 0 cost 1-2 dB at high lambda (N06).
        shown = frames[:1] if model.inter is not None and it < INTRA_WARMUP * noise_end else frames
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=amp and device_type == "cuda"):
            y_hat, uv_hat = model.render(qs, shown)
        dist = _distortion(y_hat.float(), uv_hat.float(), y[: len(shown)], uv[: len(shown)])
        bits = model.rate_bits(qs, len(shown))
        loss = dist + lmbda * bits / pixels
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for lat in model.latents:
                lat.clamp_(-entropy.LMAX + 0.49, entropy.LMAX - 0.49)
        it += 1
        if it % preset.check_every == 0 or it == total:
            elapsed = time.monotonic() - start
            stats = torch.stack([loss.detach(), bits.detach(), dist.detach()]).cpu().tolist()  # the only sync
            if not all(math.isfinite(v) for v in stats):
                raise CodecLabError(f"training diverged at iteration {it} (loss {stats[0]}); try a smaller learning rate or another lmbda")
            entry = Progress(it, total, stats[0], stats[1], _psnr(stats[2]), "noise" if noise else "ste", elapsed)
            log.append(entry)
            if progress:
                progress(entry)
        if max_seconds is not None:
            # Checked every iteration (a clock read, no device sync): at 1080p on a CPU one
            # iteration can take minutes, so waiting for `check_every` could overrun the budget by hours.
            elapsed = time.monotonic() - start
            if noise and elapsed > max_seconds * (1.0 - preset.ste_fraction):
                noise_end = it
                total = it + max(1, int(it * preset.ste_fraction / (1.0 - preset.ste_fraction)))
            elif not noise and elapsed > max_seconds:
                break
    return it, time.monotonic() - start, log


def _quantize(tensors: list[torch.Tensor], shift: int) -> list[torch.Tensor]:
    scale = float(1 << shift)
    return [torch.clamp(torch.round(t.detach().double().cpu() * scale), -WEIGHT_INT_MAX, WEIGHT_INT_MAX).to(torch.int64) for t in tensors]


def _weight_bits(ints: list[torch.Tensor]) -> int:
    return sum(4 + min(bitstream.eg_bits(t.reshape(-1).numpy(), k) for k in range(16)) for t in ints)


@torch.no_grad()
def _best_shift(net: nn.Module, shifts: tuple[int, ...], cost: Callable[[list[torch.Tensor]], float]) -> int:
    """The weight step 2**-shift of `net` that minimises cost(integer weights), evaluated with `net`
    holding the quantized weights; `net` gets its float weights back."""
    params = list(net.parameters())
    saved = [p.detach().clone() for p in params]
    best, best_cost = shifts[0], float("inf")
    for shift in shifts:
        ints = _quantize(saved, shift)
        for p, q in zip(params, dequantize(ints, shift)):
            p.copy_(q.float())
        value = cost(ints)
        if value < best_cost:
            best, best_cost = shift, value
    for p, q in zip(params, saved):
        p.copy_(q)
    return best


@torch.no_grad()
def _choose_shifts(model: LatentModel, y: torch.Tensor, uv: torch.Tensor, lmbda: float) -> tuple[int, int, int]:
    """Each network's weight step (synthesis, ARM, inter synthesis) by D + lmbda * R, one network at a time."""
    pixels = float(y.numel())
    frames = list(range(y.shape[0]))
    qs = [torch.round(lat.detach()) for lat in model.latents]

    def synthesis_cost(ints: list[torch.Tensor]) -> float:
        y_hat, uv_hat = model.render(qs, frames)
        return float(_distortion(y_hat, uv_hat, y, uv)) + lmbda * _weight_bits(ints) / pixels

    def arm_cost(ints: list[torch.Tensor]) -> float:
        return lmbda * (float(model.rate_bits(qs)) + _weight_bits(ints)) / pixels

    best_s = _best_shift(model.synth, SYNTH_SHIFTS, synthesis_cost)
    best_i = _best_shift(model.inter, SYNTH_SHIFTS, synthesis_cost) if model.inter is not None else 0
    best_a = _best_shift(model.arm, ARM_SHIFTS, arm_cost)
    return best_s, best_a, best_i


# Peak training memory per pixel-frame (activations, gradients, Adam state) measured on the CPU
# with the default network: 775 B marginal at 352x288; rounded up. Refusing beats the OOM killer.
TRAIN_BYTES_PER_PIXEL = 800
MOTION_BYTES_PER_PIXEL = 64  # an inter frame's motion taps: 4 int64 indices + 4 float32 weights per sample, x1.25 for chroma
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


def check_training_memory(frames: int, height: int, width: int, dev: torch.device, motion: bool = False) -> None:
    """A clear error, before anything is allocated, when training would not fit in memory."""
    available = available_memory(dev)
    per_pixel = TRAIN_BYTES_PER_PIXEL + (MOTION_BYTES_PER_PIXEL if motion else 0)
    needed = TRAIN_BYTES_FIXED + per_pixel * frames * height * width
    if available is None or needed <= available:
        return
    fits = max(0, (available - TRAIN_BYTES_FIXED) // (per_pixel * height * width))
    advice = f"use --frames {fits} or fewer" if fits else "even one frame of this size does not fit: downscale it"
    raise CodecLabError(
        f"training on {frames} frames of {width}x{height} needs about {needed / 1024**3:.1f} GB and {dev.type} has "
        f"{available / 1024**3:.1f} GB free: {advice}, or use a device with more memory"
    )


def encode_clip(
    clip: Clip,
    out_path: str | Path,
    *,
    lmbda: float = DEFAULT_LMBDA,
    preset: str | Preset = DEFAULT_PRESET,
    device: str = "cpu",
    max_seconds: float | None = None,
    seed: int = 0,
    amp: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> EncodeResult:
    """Train on `clip` and write `out_path`. Same clip, settings, seed, device and thread count: same file."""
    t0 = time.monotonic()
    preset = get_preset(preset) if isinstance(preset, str) else preset
    if not (lmbda > 0 and math.isfinite(lmbda)):
        raise CodecLabError(f"--lmbda must be a positive number, got {lmbda}")
    if clip.width > bitstream.MAX_DIM or clip.height > bitstream.MAX_DIM or clip.num_frames > bitstream.MAX_FRAMES:
        raise CodecLabError(f"clip {clip.width}x{clip.height}x{clip.num_frames} is beyond what the format holds")
    if device == "cuda" and not torch.cuda.is_available():
        raise CodecLabError("--device cuda asked for, but torch sees no CUDA device")
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = False
    cfg = preset.config
    padded = clip.padded(2)
    frames, height, width = padded.num_frames, padded.height, padded.width
    check_training_memory(frames, height, width, dev, motion=bool(cfg.motion_block))
    shapes = level_shapes(cfg, frames, height, width)
    fields: list[np.ndarray] = []
    if cfg.motion_block:
        from codec_lab.codec.motion_search import choose_motion

        block, fields = choose_motion(padded.y, preset.motion_blocks, lmbda)
        cfg = replace(cfg, motion_block=block)

    torch.manual_seed(seed)
    model = LatentModel(cfg, shapes, fields).to(dev)
    y, uv = _targets(padded, dev)
    iterations, train_seconds, log = train(model, y, uv, lmbda, preset, max_seconds=max_seconds, amp=amp, progress=progress)

    # ---- finalize on the CPU in the decoder's arithmetic
    model = model.cpu().float()
    y, uv = y.cpu(), uv.cpu()
    synth_shift, arm_shift, inter_shift = _choose_shifts(model, y, uv, lmbda)
    cfg = cfg.with_shifts(synth_shift, arm_shift, inter_shift)
    synth_ints = _quantize(list(model.synth.parameters()), synth_shift)
    inter_ints = _quantize(list(model.inter.parameters()), inter_shift) if model.inter is not None else []
    arm_ints = _quantize(list(model.arm.parameters()), arm_shift)
    assert [tuple(t.shape) for t in arm_ints] == arm_param_shapes(cfg)
    weights = bitstream.pack_weights([t.numpy() for t in synth_ints + inter_ints + arm_ints])
    values = [torch.round(lat.detach().double()).clamp(-entropy.LMAX, entropy.LMAX) for lat in model.latents]
    coder = entropy.LatentEncoder()
    levels = code_latents(cfg, shapes, dequantize(arm_ints, arm_shift), coder, values)
    latents = coder.finish()
    header = bitstream.Header(
        "semantic_latent", clip.width, clip.height, clip.num_frames, clip.fps, cfg.n_levels, cfg.temporal_strides,
        synth_layer_tuples(cfg), cfg.arm_hidden, cfg.arm_layers, synth_shift, arm_shift,
        synth_layer_tuples(cfg, inter=True), inter_shift, cfg.motion_block,
    )
    motion_section = motion.encode_fields(fields) if fields else b""
    data = bitstream.write_file(header, weights, latents, motion_section)
    out_path = Path(out_path)
    out_path.write_bytes(data)
    y8, u8, v8 = reconstruct(cfg, levels, dequantize(synth_ints, synth_shift), frames, height, width,
                             dequantize(inter_ints, inter_shift), fields)
    recon = Clip(y8, u8, v8, clip.fps).cropped(clip.height, clip.width)
    estimated = coder.ideal_bits + 8.0 * (len(data) - len(latents))
    return EncodeResult(
        path=out_path,
        file_bytes=len(data),
        estimated_bits=estimated,
        reconstruction=recon,
        encode_seconds=time.monotonic() - t0,
        train_seconds=train_seconds,
        iterations=iterations,
        mac_per_pixel=mac_per_pixel(cfg, clip.height, clip.width, clip.num_frames),
        config=cfg,
        preset=preset.name,
        lmbda=lmbda,
        device=str(dev),
        log=log,
    )

