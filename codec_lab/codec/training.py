"""Training of `semantic_latent` (encoder side): the model being overfitted and the loop that fits it.

loss = D + lmbda * R, with D the 6:1:1 weighted MSE of Y, U, V on [0, 1] (what
PSNR-YUV rewards) and R the ARM's bits per (padded) pixel. First soft rounding
with uniform noise stands in for rounding, then the last `ste_fraction` of the
iterations use straight-through rounding. Float32 on the CPU or CUDA; on CUDA
each iteration is replayed from a captured CUDA graph (CudaGraphSteps), and
several models can train at once on their own streams (train_together).

What is written to the file is decided afterwards, in `encoder.py`.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import nn

from codec_lab.codec import entropy, motion
from codec_lab.codec.model import (
    Arm,
    CodecConfig,
    Synthesis,
    add_correction,
    bi_mean,
    decoded_value,
    device_index,
    laplace_bits,
    level_context,
    pixel_levels,
    prediction_planes,
    to_420,
    upsample_levels,
)
from codec_lab.codec.presets import Preset
from codec_lab.errors import CodecLabError
from codec_lab.metrics import PSNR_YUV_WEIGHTS
from codec_lab.video.frames import Clip

YUV_WEIGHTS = tuple(w / sum(PSNR_YUV_WEIGHTS) for w in PSNR_YUV_WEIGHTS)  # the loss weighs Y, U, V as PSNR-YUV does
INTRA_WARMUP = 0.3  # share of the noise phase in which an inter-frame model trains its intra frames alone
# What cuBLAS needs to be deterministic (reproducible_kernels); read when cuBLAS first starts in a
# process, so set at import (if it is not set already) rather than only when training begins.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
MAX_TOGETHER = 32  # models training together on one GPU: PyTorch's pool of streams a device and priority


@dataclass
class Progress:
    iteration: int
    iterations: int
    loss: float
    bits: float  # the ARM's estimate of the latent bits (training-time, continuous)
    psnr_yuv: float  # of the training reconstruction (noisy or rounded latents)
    phase: str
    seconds: float


def soft_round(x: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """Differentiable rounding (Agustsson & Theis 2020); tends to round() as the temperature goes to 0.
    temperature: a number, or a 0-d tensor on x's device (what a CUDA graph replays with)."""
    alpha = 1.0 / temperature
    m = torch.floor(x) + 0.5
    norm = 2.0 * (torch.tanh(alpha / 2.0) if torch.is_tensor(alpha) else math.tanh(alpha / 2.0))
    return m + torch.tanh(alpha * (x - m)) / norm


def _straight_through(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """`value` forward, the identity's gradient backward."""
    return x + (value - x).detach()


def _ste_levels(prev_y: torch.Tensor, prev_uv: torch.Tensor, taps: tuple[motion.Taps, motion.Taps] | None):
    """The decoder's 8-bit prediction (levels 0..255) of inter frames from their reference frames'
    training output, with a straight-through gradient at each rounding (8-bit reference, rounded
    interpolation). taps: the frames' (luma, chroma) motion taps, or None for the references as they are."""
    refs = tuple(_straight_through(255.0 * v, pixel_levels(v.detach())) for v in (prev_y, prev_uv))
    if taps is None:
        return refs
    return tuple(_compensate_frames(ref, t) for ref, t in zip(refs, taps))


def _ste_prediction(levels: tuple[torch.Tensor, torch.Tensor], later: tuple[torch.Tensor, torch.Tensor] | None = None):
    """What the inter synthesis sees of 8-bit prediction `levels` (Y, UV) of a wave's frames, fixed
    point, straight-through. later: the B-frames' predictions from their later references, all the
    wave's rows (a P-frame's row repeats `levels`, and the rounded mean of a value with itself is it)."""
    if later is not None:
        levels = tuple(_straight_through((a + b) * 0.5, bi_mean(a.detach(), b.detach())) for a, b in zip(levels, later))
    return tuple(_straight_through(v / 255.0, decoded_value(v.detach() / 255.0)) for v in levels)


def _compensate_frames(ref: torch.Tensor, taps: motion.Taps) -> torch.Tensor:
    """motion.compensate of B frames at once: ref (B, h, w) or (B, C, h, w), taps from _stack_taps."""
    if ref.dim() == 3:  # phase taps read each frame's own phase planes: they keep the frames apart
        frames = ref if taps.phases else ref.reshape(-1, ref.shape[-1])
        return motion.compensate(frames, taps, straight_through=True).reshape(ref.shape)
    planes = ref.transpose(0, 1)  # (C, B, h, w): the planes of a frame share its taps
    out = motion.compensate(planes.reshape(planes.shape[0], -1, ref.shape[-1]), taps, straight_through=True)
    return out.reshape(planes.shape).transpose(0, 1)


def _stack_taps(taps: list[motion.Taps]) -> motion.Taps:
    """The taps of B frames as those of one plane of B*h rows: frame b's samples (or phase samples)
    come after b times a frame's others."""
    if len(taps) == 1:
        return taps[0]
    h, w = taps[0].shape
    size = motion.source_samples(h, w, taps[0].phases)
    index = torch.cat([t.index + b * size for b, t in enumerate(taps)], dim=1)
    return motion.Taps(index, torch.cat([t.weight for t in taps], dim=1), taps[0].norm, (len(taps) * h, w), taps[0].phases)


class LatentModel(nn.Module):
    def __init__(self, cfg: CodecConfig, shapes: list[tuple[int, int, int]], fields: dict[int, np.ndarray | tuple[np.ndarray, ...]] | None = None,
                 noise_seed: int = 0, frames: int | None = None) -> None:
        """fields: with a motion config, the motion vectors of each predicted frame, by frame index:
        one field, or a tuple of one per reference (a B-frame's two, in `cfg.references` order).
        noise_seed: of the training noise's own generator (see noise_generator).
        frames: the clip's frame count, which places B-frames' references (default, without B-frames:
        level 0's slices)."""
        super().__init__()
        if frames is None and cfg.bidirectional:
            raise ValueError("a model with B-frames needs the clip's frame count")
        self.cfg = cfg
        self.frames = shapes[0][0] if frames is None else frames
        self.noise_seed = noise_seed
        self._generators: dict[str, torch.Generator] = {}
        # Each prediction's taps, built once (autograd would hold them until backward anyway):
        # buffers, so they follow the model to its device.
        self.taps_meta: dict[tuple[int, int], tuple[tuple[int, tuple[int, int], bool], ...]] = {}
        for t, per_frame in (fields or {}).items():
            per_frame = (per_frame,) if isinstance(per_frame, np.ndarray) else tuple(per_frame)
            refs = cfg.references(t, self.frames)
            if len(per_frame) != len(refs):
                raise ValueError(f"frame {t} has {len(per_frame)} motion fields for {len(refs)} references")
            for r, vectors in zip(refs, per_frame):
                taps = motion.frame_taps(vectors, cfg.motion_block, shapes[0][1], shapes[0][2], dtype=torch.float32,
                                         overlap=cfg.motion_overlap, depth=cfg.motion_depth, sharp=cfg.motion_sharp)
                for k, plane in enumerate(taps):
                    self.register_buffer(f"taps_{t}_{r}_{k}_index", plane.index, persistent=False)
                    self.register_buffer(f"taps_{t}_{r}_{k}_weight", plane.weight, persistent=False)
                self.taps_meta[(t, r)] = tuple((plane.norm, plane.shape, plane.phases) for plane in taps)
        # All levels in one tensor: quantizing, clamping and their gradients are then one kernel
        # each instead of one per level (kernel counts bound a GPU's speed for networks this small).
        self.latent_shapes = [tuple(s) for s in shapes]
        self.latent_flat = nn.Parameter(torch.zeros(sum(math.prod(s) for s in shapes)))
        self.synth = Synthesis(cfg)
        self.arm = Arm(cfg)
        self.inter = Synthesis(cfg, inter=True) if cfg.inter else None
        self._wave_plan: dict[tuple, _WavePlan] = {}
        self._stacked_taps: dict[tuple, tuple[motion.Taps, motion.Taps]] = {}
        self.channels_last = False
        self.frozen: torch.Tensor | None = None  # latents (a mask over latent_flat) kept as they are: see take_intra
        self.intra_trained = False  # the intra frames come trained (take_intra): no warm-up

    def use_channels_last(self) -> LatentModel:
        """The synthesis in NHWC: its 1x1 layers are then plain matrix products, ~1.5x faster
        fwd+bwd on the CPU (8 QCIF frames, one thread). Training arithmetic only: the decoder's
        fixed-point synthesis is unaffected. Not measured on CUDA, so the CPU only."""
        self.channels_last = True
        for net in (self.synth, self.inter):
            if net is not None:
                net.to(memory_format=torch.channels_last)
        return self

    @property
    def latents(self) -> list[torch.Tensor]:
        """The latent grid of each level: views of `latent_flat`."""
        return self._levels(self.latent_flat)

    def _levels(self, flat: torch.Tensor) -> list[torch.Tensor]:
        sizes = [math.prod(s) for s in self.latent_shapes]
        return [chunk.view(shape) for chunk, shape in zip(flat.split(sizes), self.latent_shapes)]

    def quantized(self, noise: bool, temperature: float | torch.Tensor = 0.3) -> list[torch.Tensor]:
        """Training proxy of rounding: soft rounding plus annealed uniform noise, then hard rounding (STE)."""
        lat = self.latent_flat
        if noise:
            # noise between two soft roundings (as Cool-chic 3): a latent parked on a rounding
            # boundary becomes a coin flip instead of a cheap fractional value
            uniform = torch.rand(lat.shape, generator=self.noise_generator(lat.device), device=lat.device, dtype=lat.dtype)
            q = soft_round(soft_round(lat, temperature) + (uniform - 0.5), temperature)
        else:
            q = _straight_through(lat, torch.round(lat))
        if self.frozen is not None:  # integers already, as the decoder has them; no gradient
            q = torch.where(self.frozen, lat.detach(), q)
        return self._levels(q)

    def take_intra(self, trained: LatentModel, freeze_latents: bool = True) -> None:
        """Take the intra frames from `trained`, an all-intra model of this model's intra frames (in
        order) trained first: its synthesis and ARM, and its latents rounded into this model's intra
        slices. The synthesis stays as it is from now on (only intra frames use it; training it on
        with the rest let the chroma collapse in a 9-frame check); with `freeze_latents` so do those
        latents, else they train on with the rest. The ARM trains on. Either way the intra frames
        are trained: no warm-up (Training)."""
        intra = self.cfg.intra_frames(self.latent_shapes[0][0])
        if any(s != 1 for s in self.cfg.temporal_strides) or trained.latent_shapes[0][0] != len(intra):
            raise ValueError("take_intra needs one slice per frame in every level, and a model of the intra frames")
        self.synth.load_state_dict(trained.synth.state_dict())
        self.arm.load_state_dict(trained.arm.state_dict())
        self.synth.requires_grad_(False)
        index = torch.tensor(intra, device=self.latent_flat.device)
        with torch.no_grad():
            for mine, theirs in zip(self.latents, trained.latents):
                mine.index_copy_(0, index, torch.round(theirs.detach()).to(mine))
        if freeze_latents:
            mask = torch.zeros_like(self.latent_flat, dtype=torch.bool)
            for frozen in self._levels(mask):
                frozen.index_fill_(0, index, True)
            self.frozen = mask
        self.intra_trained = True

    def noise_generator(self, device: torch.device) -> torch.Generator:
        """The training noise's generator on `device`, seeded with noise_seed: a model's noise does not
        depend on what else draws random numbers meanwhile (other models training beside it)."""
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.noise_seed)
        return self._generators[key]

    def rate_bits(self, qs: list[torch.Tensor], frames: list[int] | None = None) -> torch.Tensor:
        """The ARM's bits for the latents, or only for the slices that `frames` use."""
        feats, values = [], []
        for level in range(self.cfg.n_levels):
            f, q = level_context(self.cfg, qs, level), qs[level]
            if frames is not None:
                stride = self.cfg.temporal_strides[level]
                used = device_index(tuple(sorted({t // stride for t in frames})), q.device)
                f, q = f.index_select(0, used), q.index_select(0, used)
            feats.append(f.reshape(-1, f.shape[-1]))
            values.append(q.reshape(-1))
        # The finest level alone, the coarser ones (a third of the latents) as one batch: one ARM
        # pass and one rate term for six levels saves ~400 of an iteration's ~2,700 kernels (what
        # bounds a GPU's speed here) for a copy of a third of the features.
        total = qs[0].new_zeros(())
        for f, q in ((feats[0], values[0]), (torch.cat(feats[1:]), torch.cat(values[1:]))) if len(feats) > 1 else ((feats[0], values[0]),):
            mu, log2_scale = self.arm(f)
            total = total + laplace_bits(q, mu, log2_scale).sum()
        return total

    def motion_taps(self, t: int, r: int) -> tuple[motion.Taps, motion.Taps] | None:
        """The (luma, chroma) motion taps of frame t's prediction from frame r (None without motion)."""
        if not self.cfg.motion_block:
            return None
        return tuple(motion.Taps(getattr(self, f"taps_{t}_{r}_{k}_index"), getattr(self, f"taps_{t}_{r}_{k}_weight"), norm, shape, phases)
                     for k, (norm, shape, phases) in enumerate(self.taps_meta[(t, r)]))

    def render(self, qs: list[torch.Tensor], frames: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The training reconstruction of `frames` (ascending): Y (N, H, W), UV (N, 2, H/2, W/2)."""
        x = upsample_levels(self.cfg, qs, frames)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.inter is None:
            return to_420(self.synth(x))
        # Predicted frames form chains from each intra frame: frame t is predicted by its reference
        # (frame t-1, a key frame's key frame before, or a B-frame's two) as the decoder will
        # have it (8-bit, straight-through gradient), so the gradient of every
        # frame reaches the intra frame of its chain. (Cutting the gradient along the chain was
        # measured worse: frame 0 got better, the later frames drifted down by ~1 dB a frame on N06.)
        plan = self._waves(tuple(frames), x.device)
        # The chain itself (8-bit prediction, 4:2:0 add) stays float32 under --amp: in bf16 it would
        # be up to 2 levels away from the decoder's chain.
        y0, uv0 = to_420(self.synth(x.index_select(0, plan.rows[0])).float())
        ys, uvs = [y0], [uv0]  # by wave
        # Wave k holds the frames k predictions away from their intra frame (cfg.depths), trained as
        # one batch: 10 batches (8 with B-frames) instead of 29 predicted frames for Foreman's 30 frames
        # with a key frame every 8 (the ops per iteration, which bound a GPU's speed for networks this
        # small, fall by as much).
        for k in range(1, len(plan.waves)):
            levels = _ste_levels(_gather(ys, plan.first[k]), _gather(uvs, plan.first[k]), self._wave_taps(plan.pairs[k][0], x.device))
            later = None
            if plan.later[k] is not None:
                rows, sources = plan.later[k]
                extra = _ste_levels(_gather(ys, sources), _gather(uvs, sources), self._wave_taps(plan.pairs[k][1], x.device))
                later = tuple(v.index_copy(0, rows, e) for v, e in zip(levels, extra))
            pred_y, pred_uv = _ste_prediction(levels, later)
            out = self.inter(torch.cat([x.index_select(0, plan.rows[k]), prediction_planes(pred_y, pred_uv)], dim=1)).float()
            y_k, uv_k = add_correction(out, pred_y, pred_uv)
            ys.append(y_k)
            uvs.append(uv_k)
        if len(plan.waves) == 1:
            return ys[0], uvs[0]
        return torch.cat(ys).index_select(0, plan.order), torch.cat(uvs).index_select(0, plan.order)

    def _wave_taps(self, pairs: tuple[tuple[int, int], ...], device) -> tuple[motion.Taps, motion.Taps] | None:
        """The (luma, chroma) taps of predictions (frame, reference) stacked for one batch
        (_stack_taps), made once: built every iteration they cost ~4 kernels a frame. (A second copy
        of those frames' taps: MOTION_BYTES_PER_PIXEL counts it.) None without motion."""
        if not self.cfg.motion_block:
            return None
        key = (pairs, str(device))
        if key not in self._stacked_taps:
            per_frame = [self.motion_taps(t, r) for t, r in pairs]
            self._stacked_taps[key] = (_stack_taps([t[0] for t in per_frame]), _stack_taps([t[1] for t in per_frame]))
        return self._stacked_taps[key]

    def _waves(self, frames: tuple[int, ...], device) -> _WavePlan:
        """How `render` makes `frames` (made once: no host-to-device copy per iteration): see _WavePlan."""
        key = (frames, str(device))
        if key not in self._wave_plan:
            refs = {t: self.cfg.references(t, self.frames) for t in frames}
            if any(r not in refs for t in frames for r in refs[t]) or list(frames) != sorted(frames):
                raise ValueError("a predicted frame is rendered without a frame it is predicted from")
            depth = self.cfg.depths(self.frames)
            waves = [[i for i, t in enumerate(frames) if depth[t] == d] for d in sorted({depth[t] for t in frames})]
            first, later, pairs = [None], [None], [((), ())]
            made: dict[int, tuple[int, int]] = {}  # frame -> (its wave, its row there)
            for k, wave in enumerate(waves):
                if k:
                    ts = [frames[i] for i in wave]
                    bs = [n for n, t in enumerate(ts) if len(refs[t]) == 2]
                    first.append(_sources([made[refs[t][0]] for t in ts], device))
                    later.append((torch.tensor(bs, device=device), _sources([made[refs[ts[n]][1]] for n in bs], device)) if bs else None)
                    pairs.append((tuple((t, refs[t][0]) for t in ts), tuple((ts[n], refs[ts[n]][1]) for n in bs)))
                made.update((frames[i], (k, n)) for n, i in enumerate(wave))
            position = {i: p for p, i in enumerate(i for wave in waves for i in wave)}
            order = torch.tensor([position[i] for i in range(len(frames))], device=device)
            self._wave_plan[key] = _WavePlan(waves, [torch.tensor(w, device=device) for w in waves], first, later, pairs, order)
        return self._wave_plan[key]


Sources = list[tuple[int, torch.Tensor | None, torch.Tensor]]  # (wave, rows of the result or None for all, rows of that wave)


def _sources(places: list[tuple[int, int]], device) -> Sources:
    """Where rows (wave, row) are read, grouped by wave: see _gather."""
    out = []
    for wave in sorted({w for w, _ in places}):
        dst = [n for n, (w, _) in enumerate(places) if w == wave]
        src = torch.tensor([places[n][1] for n in dst], device=device)
        out.append((wave, None if len(dst) == len(places) else torch.tensor(dst, device=device), src))
    return out


def _gather(outputs: list[torch.Tensor], sources: Sources) -> torch.Tensor:
    """The rows `sources` names of the waves' `outputs`, in order (one index_select per wave read:
    no copy of whole earlier waves)."""
    if sources[0][1] is None:  # all from one wave
        return outputs[sources[0][0]].index_select(0, sources[0][2])
    shape = outputs[sources[0][0]].shape[1:]
    out = outputs[0].new_zeros((sum(len(src) for _, _, src in sources), *shape))
    for wave, dst, src in sources:
        out = out.index_copy(0, dst, outputs[wave].index_select(0, src))
    return out


class _WavePlan(NamedTuple):
    """Rows of the frames rendered, by wave (0: the intra frames; k: the frames of depth k, all of
    whose references are in earlier waves), and for each wave k > 0, where in the earlier waves'
    outputs (_gather) each frame's first reference is (`first`), and for its B-frames (None if
    none) their rows in the wave and where their later references are (`later`); the
    (frame, reference) pairs of those two reads (`pairs`); the permutation back to display order."""
    waves: list[list[int]]
    rows: list[torch.Tensor]
    first: list[Sources | None]
    later: list[tuple[torch.Tensor, Sources] | None]
    pairs: list[tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]]
    order: torch.Tensor


def _targets(clip: Clip, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.from_numpy(clip.y.astype(np.float32) / 255.0).to(device)
    uv = torch.from_numpy(np.stack([clip.u, clip.v], axis=1).astype(np.float32) / 255.0).to(device)
    return y, uv


def _distortion(y_hat, uv_hat, y, uv, kind: str = "mse") -> torch.Tensor:
    """The clip's MSE, Y, U and V weighed as PSNR-YUV weighs them. kind "psnr": the same value, but
    each frame's and plane's MSE weighed by (that value / its own MSE), detached, so that the
    gradient is the gradient of what the metric averages, 10 log10 of each frame's and plane's MSE
    (up to a scale): a frame or plane already good gains more PSNR from a unit of MSE than a poor
    one, and plain MSE under-rates it (Preset.distortion)."""
    if kind == "mse":  # as it always was, summed over the whole clip: files trained on mse keep their bytes
        mse_y = torch.mean((y_hat - y) ** 2)
        mse_u = torch.mean((uv_hat[:, 0] - uv[:, 0]) ** 2)
        mse_v = torch.mean((uv_hat[:, 1] - uv[:, 1]) ** 2)
        return YUV_WEIGHTS[0] * mse_y + YUV_WEIGHTS[1] * mse_u + YUV_WEIGHTS[2] * mse_v
    frame_y = torch.mean((y_hat - y) ** 2, dim=(-2, -1))  # (T,)
    frame_uv = torch.mean((uv_hat - uv) ** 2, dim=(-2, -1))  # (T, 2)
    planes = (frame_y, frame_uv[:, 0], frame_uv[:, 1])
    plain = sum(w * m for w, m in zip(YUV_WEIGHTS, planes)).mean().detach()
    return sum(w * (m * (plain / m.detach().clamp_min(1e-10))) for w, m in zip(YUV_WEIGHTS, planes)).mean()


def _psnr(mse: float) -> float:
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def noise_position(it: int, noise_end: int, elapsed: float | None, max_seconds: float | None, ste_fraction: float) -> float:
    """How far (0..1) training is through its noise phase, which sets the learning rate, the
    soft-rounding temperature and the end of the intra warm-up. Under a time cap, the further of
    the iteration count and the clock: a capped run anneals on time instead of stopping at
    iteration 1,000 of a 12,000-iteration schedule still at its top learning rate and in warm-up."""
    position = it / max(1, noise_end)
    if max_seconds is not None and elapsed is not None:
        position = max(position, elapsed / max(1e-9, max_seconds * (1.0 - ste_fraction)))
    return min(1.0, position)


class TrainStep:
    """One training iteration: quantize, render, loss = D + lmbda * R, backward, Adam, clamp.

    `graphable`: written so that a CUDA graph can capture it (see CudaGraphSteps): the learning
    rates and the soft-rounding temperature live in device tensors that `schedule` fills, and the
    gradients are zeroed in place rather than dropped, so every replay finds them where it left
    them. Otherwise they are Python numbers, as they always were on the CPU (same file bytes)."""

    def __init__(self, model: LatentModel, y: torch.Tensor, uv: torch.Tensor, lmbda: float, preset: Preset,
                 *, amp: bool = False, graphable: bool = False) -> None:
        self.model, self.y, self.uv, self.lmbda = model, y, uv, lmbda
        self.amp, self.graphable = amp and y.device.type == "cuda", graphable
        self.distortion = preset.distortion
        self.frames = list(range(y.shape[0]))
        self.intra_frames = model.cfg.intra_frames(len(self.frames))
        intra_index = torch.tensor(self.intra_frames, device=y.device)
        self.intra_targets = y.index_select(0, intra_index), uv.index_select(0, intra_index)  # once, not every warm-up iteration
        self.pixels = float(y.numel())
        latents = [model.latent_flat]
        networks = [p for name, p in model.named_parameters() if name != "latent_flat"]
        # fused: one kernel for all parameters instead of ~10 per tensor (the tiny networks are launch-bound on a GPU)
        groups = [{"params": latents, "factor": preset.latent_lr_factor}, {"params": networks, "factor": 1.0}]
        self.opt = torch.optim.Adam(groups, lr=preset.lr, fused=True, capturable=graphable)
        self.temperature: float | torch.Tensor = 0.3
        if graphable:
            for group in self.opt.param_groups:
                group["lr"] = torch.tensor(group["lr"] * group["factor"], device=y.device)
            self.temperature = torch.tensor(0.3, device=y.device)

    def schedule(self, lr: float, temperature: float) -> None:
        if not self.graphable:
            for group in self.opt.param_groups:
                group["lr"] = lr * group["factor"]
            self.temperature = temperature
            return
        for group in self.opt.param_groups:  # fills: kernels with a scalar argument, no host sync
            group["lr"].fill_(lr * group["factor"])
        self.temperature.fill_(temperature)

    def __call__(self, noise: bool, warmup: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One iteration; returns (loss, bits, distortion), detached and on the device.
        warmup: the intra frames alone (inter models, first part of the noise phase)."""
        model = self.model
        qs = model.quantized(noise, self.temperature)
        shown = self.intra_frames if warmup else self.frames
        # autocast's weight-cast cache would hold casts made during a graph capture: off when graphable
        with torch.autocast(device_type=self.y.device.type, dtype=torch.bfloat16, enabled=self.amp, cache_enabled=not self.graphable):
            y_hat, uv_hat = model.render(qs, shown)
        if warmup:
            dist = _distortion(y_hat.float(), uv_hat.float(), *self.intra_targets, kind=self.distortion)
        else:
            dist = _distortion(y_hat.float(), uv_hat.float(), self.y, self.uv, kind=self.distortion)
        bits = model.rate_bits(qs, shown if warmup else None)
        loss = dist + self.lmbda * bits / self.pixels
        # zeroed in place when graphable: a graph replays into the gradients it was captured with.
        # A network that a step does not use keeps no gradient (None) either way, so Adam leaves it
        # alone: the inter network's moments start when its frames are first shown.
        self.opt.zero_grad(set_to_none=not self.graphable)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            model.latent_flat.clamp_(-entropy.LMAX + 0.49, entropy.LMAX - 0.49)
        return loss.detach(), bits.detach(), dist.detach()


class CudaGraphSteps:
    """A TrainStep replayed from CUDA graphs: each kind of step (warm-up, noise, straight-through)
    runs eagerly WARM times (lazy initialisations, Adam's state), is then captured once and
    replayed. A replay launches the iteration's ~1,800 kernels in one call, where eager PyTorch
    spends more time launching them than the GPU spends running them (this codec's networks are
    tiny). The kinds come in order and never return, so only the current graph is kept.
    Everything runs on `stream` (the model's own; never the default stream, which graphs cannot
    capture): the eager runs, the capture and the replays. Captured on a stream of its own, a
    model's graphs also get their own cuBLAS workspace: models replaying side by side
    (train_together) would otherwise write their matrix products' partial sums into one buffer.
    If a capture fails (an op that cannot be captured), training goes on eagerly, with a warning."""

    WARM = 3

    def __init__(self, step: TrainStep, stream: torch.cuda.Stream | None = None) -> None:
        assert step.graphable and step.y.device.type == "cuda"
        self.step = step
        self.graph: tuple[tuple[bool, bool], torch.cuda.CUDAGraph, tuple] | None = None
        self.runs: dict[tuple[bool, bool], int] = {}
        self.stream = stream if stream is not None else torch.cuda.Stream(step.y.device)
        self.failed: str | None = None

    def __call__(self, noise: bool, warmup: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        caller = torch.cuda.current_stream(self.stream.device)  # the same stream when called by a Training
        self.stream.wait_stream(caller)
        with torch.cuda.stream(self.stream):
            out = self._step((noise, warmup))
        caller.wait_stream(self.stream)
        return out

    def _step(self, key: tuple[bool, bool]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.graph is not None:
            if self.graph[0] == key:
                self.graph[1].replay()
                return self.graph[2]
            self.graph = None  # the previous kind never comes back: free its memory before the next warms up
        if self.failed or self.runs.get(key, 0) < self.WARM:
            self.runs[key] = self.runs.get(key, 0) + 1
            return self.step(*key)
        graph = torch.cuda.CUDAGraph()
        try:
            # the model's own noise generator: a replay then draws fresh noise from it, as the
            # default generator's would (torch.cuda.graph registers only that one)
            graph.register_generator_state(self.step.model.noise_generator(self.step.y.device))
            with torch.cuda.graph(graph, stream=self.stream):
                out = self.step(*key)
        except Exception as exc:  # noqa: BLE001 (any capture error: fall back, never lose the encode)
            self.failed = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"CUDA graph capture failed, training goes on without graphs: {self.failed}", RuntimeWarning, stacklevel=2)
            torch.cuda.synchronize()
            return self._step(key)
        self.graph = (key, graph, out)
        graph.replay()  # capturing records the kernels without running them
        return out


def learning_rate(preset: Preset, it: int, noise_end: int, total: int, position: float) -> float:
    """Cosine over the noise phase (floored at 2%), then a linear fall from ste_lr_factor."""
    if it < noise_end:
        return max(preset.lr * 0.5 * (1.0 + math.cos(math.pi * position)), preset.lr * 0.02)
    return preset.lr * preset.ste_lr_factor * (1.0 - (it - noise_end) / max(1, total - noise_end)) + 1e-5


class Trained(NamedTuple):
    iterations: int
    seconds: float
    log: list[Progress]
    cuda_graphs: str  # "off", "on" or "failed (why)"
    error: CodecLabError | None = None  # training diverged


class Training:
    """One model's training run, advanced an iteration at a time so that several can take turns
    (train_together). On CUDA with graphs it runs on a stream of its own: the kernels of models
    taking turns then overlap on the GPU, which one process alone leaves mostly idle (an
    iteration's ~1,800 kernels are each too small to fill it; Foreman QCIF takes about as long for
    8 frames as for 30), and which separate processes cannot share at once."""

    def __init__(self, model: LatentModel, y: torch.Tensor, uv: torch.Tensor, lmbda: float, preset: Preset, *,
                 max_seconds: float | None = None, amp: bool = False, progress: Callable[[Progress], None] | None = None,
                 cuda_graphs: bool = False) -> None:
        self.model, self.preset, self.max_seconds, self.progress = model, preset, max_seconds, progress
        self.graphed = cuda_graphs and y.device.type == "cuda"
        self.step = TrainStep(model, y, uv, lmbda, preset, amp=amp, graphable=self.graphed)
        # one stream a model (PyTorch hands out 32 a device and priority, round robin: train_together caps its count)
        self.stream = torch.cuda.Stream(y.device) if self.graphed else None
        self.run = CudaGraphSteps(self.step, self.stream) if self.graphed else self.step
        self.total = preset.iterations
        self.noise_end = int(round(self.total * (1.0 - preset.ste_fraction)))
        self.it = 0
        self.start: float | None = None
        self.log: list[Progress] = []
        self.stopped = False  # by the time cap, or an error
        self.error: CodecLabError | None = None  # training diverged
        self.end: float | None = None
        if y.device.type == "cpu":
            torch.set_flush_denormal(True)

    @property
    def done(self) -> bool:
        return self.stopped or self.it >= self.total

    def advance(self) -> None:
        """One iteration (on this training's stream, if it has one). A diverged training stops and
        keeps its error (`error`) instead of raising, so that trainings beside it go on."""
        try:
            self._advance()
        except CodecLabError as exc:
            self.error, self.stopped = exc, True
        if self.done and self.end is None:
            self.end = time.monotonic()

    def _advance(self) -> None:
        if self.start is None:
            self.start = time.monotonic()
            if self.stream is not None:  # the model and targets were made on the current stream
                self.stream.wait_stream(torch.cuda.current_stream(self.stream.device))
        if self.stream is None:
            self._iteration()
            return
        with torch.cuda.stream(self.stream):
            self._iteration()

    def _iteration(self) -> None:
        preset, max_seconds = self.preset, self.max_seconds
        noise = self.it < self.noise_end
        position = noise_position(self.it, self.noise_end, time.monotonic() - self.start if max_seconds is not None else None,
                                  max_seconds, preset.ste_fraction)
        self.step.schedule(learning_rate(preset, self.it, self.noise_end, self.total, position), 0.3 - 0.2 * position)
        # With inter frames, the intra frames train alone first (as I-frames before their
        # P-frames): trained with the chain from the start frame 0 settles ~1.4 dB lower and the
        # later frames with it. Their rate alone too: the inter latents are not charged before
        # their frames are shown (charging them only pushed them to zero before they had a use).
        # The intra frames' bits stay priced per pixel of the whole clip meanwhile, a fraction of
        # their later price, much as an I-frame gets a lower QP: pricing them per pixel of the
        # frames shown cost 1-2 dB at high lambda (N06).
        warmup = self.model.inter is not None and not self.model.intra_trained and noise and position < INTRA_WARMUP
        loss, bits, dist = self.run(noise, warmup)
        self.it += 1
        if self.it % preset.check_every == 0 or self.it == self.total:
            stats = torch.stack([loss, bits, dist]).cpu().tolist()  # the only sync
            if not all(math.isfinite(v) for v in stats):
                raise CodecLabError(f"training diverged at iteration {self.it} (loss {stats[0]}); try a smaller learning rate or another lmbda")
            entry = Progress(self.it, self.total, stats[0], stats[1], _psnr(stats[2]), "noise" if noise else "ste", time.monotonic() - self.start)
            self.log.append(entry)
            if self.progress:
                self.progress(entry)
        if max_seconds is not None:
            # Checked every iteration (a clock read, no device sync): at 1080p on a CPU one
            # iteration can take minutes, so waiting for `check_every` could overrun the budget by hours.
            elapsed = time.monotonic() - self.start
            if noise and elapsed > max_seconds * (1.0 - preset.ste_fraction):
                self.noise_end = self.it
                self.total = self.it + max(1, int(self.it * preset.ste_fraction / (1.0 - preset.ste_fraction)))
            elif not noise and elapsed > max_seconds:
                self.stopped = True

    def result(self) -> Trained:
        if self.stream is not None:
            self.stream.synchronize()
            self.run.graph = None  # its memory pool, before the weight steps are chosen
        graphs = "off" if not self.graphed else (f"failed ({self.run.failed})" if self.run.failed else "on")
        end = self.end or time.monotonic()
        return Trained(self.it, end - (self.start or end), self.log, graphs, self.error)


def train_together(trainings: list[Training]) -> list[Trained]:
    """Runs each training to its end, taking turns an iteration at a time: on CUDA (with graphs)
    each has its own stream, so the models' kernels can overlap; on the CPU it is the same as one
    after the other, bar the clock under a time cap. Without a time cap a model's result does not
    depend on its companions: its noise comes from its own generator (LatentModel.noise_generator).
    One diverging does not stop the others (Trained.error)."""
    if sum(t.stream is not None for t in trainings) > MAX_TOGETHER:
        raise CodecLabError(f"at most {MAX_TOGETHER} models train together on one GPU (one stream each), got {len(trainings)}")
    try:
        while not all(t.done for t in trainings):
            for t in trainings:
                if not t.done:
                    t.advance()
    finally:  # nothing still queued on a stream when the models' memory goes
        if any(t.stream is not None for t in trainings):
            torch.cuda.synchronize()
    return [t.result() for t in trainings]


def train(model: LatentModel, y: torch.Tensor, uv: torch.Tensor, lmbda: float, preset: Preset, *, max_seconds: float | None,
          amp: bool, progress: Callable[[Progress], None] | None, cuda_graphs: bool = False) -> Trained:
    """Trains one model (see Training). cuda_graphs: replay the iterations from CUDA graphs (CUDA only)."""
    trained = train_together([Training(model, y, uv, lmbda, preset, max_seconds=max_seconds, amp=amp, progress=progress,
                                       cuda_graphs=cuda_graphs)])[0]
    if trained.error is not None:
        raise trained.error
    return trained


@contextmanager
def reproducible_kernels(dev: torch.device):
    """On CUDA, PyTorch's deterministic kernels while it is open. The default backward of some ops
    adds with atomics: an intra encode on an H200 wrote a different file each run, and with these
    the same file twice (intra and motion). warn_only: an op with no such kernel warns, not fails.
    The CPU needs none of this (motion's one offender has its own backward: motion._TakeTaps)."""
    if dev.type != "cuda":
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


