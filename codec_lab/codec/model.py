"""The `semantic_latent` model, shared by the encoder (float, trainable) and the decoder (fixed point).

Representation (Cool-chic / C3 family, per-frame latent pyramids with shared networks):

- `n_levels` latent grids per frame slice, level l at 1/2**l of the (even-padded)
  frame size, one channel each; level l holds ceil(T / stride_l) slices in time,
  slice n serving frames n*stride_l .. (n+1)*stride_l - 1 (sample-and-hold).
- Upsampling: a fixed bilinear x2 (taps 1/4, 3/4, replicate edges) applied as a
  cascade from the coarsest level, concatenating each finer level on the way:
  the synthesis sees n_levels channels at full resolution.
- Synthesis: a few 1x1 / 3x3 convolutions (replicate padding) to 3 channels at
  full resolution; Y is channel 0, U and V are channels 1 and 2 averaged over
  2x2 (4:2:0 out, so no bits are spent on chroma detail the format drops).
- Inter frames (when the config has an `inter_synth`): frame 0 (and with an
  `intra_period` P frames P, 2P, ..., unless `key_prediction`) is coded as above;
  every other frame t is predicted by the previous decoded frame (with
  `key_prediction` a key frame kP by key frame (k-1)P; with `bidirectional` the
  frames between those anchors by the mean of two, one before and one after:
  `CodecConfig.references`), as it is or (with `motion_block`) moved by a coded
  field of block motion vectors (`motion.py`; a field per reference), and a
  second synthesis network sees the latents of frame t and
  that prediction (Y, and U, V brought up x2) and outputs a correction added to
  the prediction in 4:2:0. Static or well-predicted content then costs almost no
  latent bits.
- Entropy model (ARM): one small MLP shared by all levels, outputs (mean, log2
  scale) of a Laplace for each latent from a causal context: the 3x3 block at
  the same place in the previous slice of its level (the temporal context that
  carries the video's redundancy), its parent in the next coarser level, two
  flags (has previous slice, has parent), and spatial neighbours of its own
  slice, in one of two orders (`CodecConfig.arm_context`):
  `raster` (format version 5 on): the 8 neighbours before it in raster order
  within two rows and two columns, the same for every latent (20 inputs);
  decoded by wavefronts (2i + j constant, each slice a few wavefronts behind the
  one before: `wavefront`), so in a few thousand parallel steps.
  `phases` (files before version 5): four phases of a 2x2 lattice, a latent
  sees the 8 neighbours earlier phases decoded plus its phase (24 inputs); a
  quarter of the latents then see no neighbour at all, which cost 17-27% more
  latent bits on single frames (docs/codec.md).

Decoding arithmetic. `synthesis_fixed` and `arm_fixed` compute in float64 on
values that are all dyadic fixed-point numbers: weights are integers times
2**-shift, activations are rounded to 2**-ACT_FRAC after every layer and
clamped to +-ACT_CLAMP, and the latents are integers. Every product and every
partial sum then fits in 53 bits, so each float64 operation is exact and the
result does not depend on summation order, SIMD width, BLAS, thread count or
device: the decoder's output is a function of the file alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from codec_lab.codec.bitstream import (
    ARM_CONTEXTS,
    MAX_INTRA_PERIOD,
    MAX_MOTION_ROOT,
    MOTION_BLOCKS,
    frame_references,
    intra_frame,
)
from codec_lab.codec.entropy import LMAX, NF, NS, RMAX, S_MAX, S_MIN, S_RES, table_bits
from codec_lab.codec.motion import predict

ACT_FRAC = 12  # fixed-point fraction bits of every activation in the decoder
ACT_CLAMP = float(1 << 11)
WEIGHT_INT_MAX = (1 << 15) - 1
ARM_IN = 24  # "phases" context: 8 neighbours (masked by phase), 9 temporal, parent, 4 phase one-hot, 2 flags
ARM_IN_RASTER = 20  # "raster" context: 8 neighbours, 9 temporal, parent, 2 flags
PHASES = 4
# neighbours in the 3x3 window, row-major, without the centre (index 4 of F.unfold's 9)
_SPATIAL_IDX = [0, 1, 2, 3, 5, 6, 7, 8]
_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
_PHASE_OF_PARITY = ((0, 2), (3, 1))
# "raster" context: the neighbours (row, column offsets) decoded before a latent in raster order
# within two rows and columns. Each has 2 * row + column < 0, so every latent of a wavefront
# 2i + j = d depends only on earlier wavefronts (what lets the decoder code a wavefront at once).
RASTER_OFFSETS = ((-2, -1), (-2, 0), (-2, 1), (-1, -1), (-1, 0), (-1, 1), (0, -2), (0, -1))
# slice n is decoded this many wavefronts behind the slice before it: its temporal context (the
# previous slice's 3x3 around it) lies on wavefronts up to d + 3 there
WAVE_LAG = 4


@dataclass(frozen=True)
class LayerSpec:
    out: int
    kernel: int  # 1 or 3
    relu: bool
    residual: bool = False


@dataclass(frozen=True)
class CodecConfig:
    n_levels: int = 7
    temporal_strides: tuple[int, ...] = (1, 1, 1, 1, 1, 1, 1)
    synth: tuple[LayerSpec, ...] = (
        LayerSpec(16, 1, True),
        LayerSpec(16, 1, True),
        LayerSpec(3, 3, False),
        LayerSpec(3, 3, False, residual=True),
    )
    arm_hidden: int = 12
    arm_layers: int = 2  # hidden layers
    synth_shift: int = 8  # weights are integers x 2**-shift (the encoder picks the shift)
    arm_shift: int = 8
    inter_synth: tuple[LayerSpec, ...] = ()  # empty: every frame intra (format version 1's only mode)
    inter_shift: int = 8
    motion_block: int = 0  # 0: inter frames predicted by their reference frame as it is; else block motion (see motion.py)
    intra_period: int = 0  # with an inter synthesis: frames 0, P, 2P, ... are intra (0: frame 0 only)
    arm_context: str = "raster"  # the ARM's spatial context (module doc); "phases" in files before version 5
    key_prediction: bool = False  # with an intra period: key frames P, 2P, ... predicted from the key frame before, not intra
    motion_depth: int = 0  # motion fields as quadtrees: roots of motion_block << depth, split down to motion_block
    motion_overlap: bool = False  # overlapped block compensation over each whole block (motion.plane_taps)
    motion_sharp: bool = False  # quarter-pel vectors, luma read through 6-tap phase planes (motion.sharp_phases)
    bidirectional: bool = False  # with key prediction: hierarchical B-frames between the anchors (bitstream.frame_references)

    def __post_init__(self) -> None:
        if len(self.temporal_strides) != self.n_levels:
            raise ValueError("one temporal stride per level")
        if self.motion_block and not self.inter:
            raise ValueError("motion needs an inter synthesis")
        if self.motion_block not in (0, *MOTION_BLOCKS):
            raise ValueError(f"motion block {self.motion_block} is not one of {MOTION_BLOCKS}")
        if not 0 <= self.intra_period <= MAX_INTRA_PERIOD:
            raise ValueError(f"intra period {self.intra_period} is outside 0..{MAX_INTRA_PERIOD}")
        if self.arm_context not in ARM_CONTEXTS:
            raise ValueError(f"ARM context {self.arm_context!r} is not one of {ARM_CONTEXTS}")
        if self.motion_depth and not (self.motion_block and self.motion_block << self.motion_depth <= MAX_MOTION_ROOT):
            raise ValueError(f"motion split depth {self.motion_depth} needs a motion block whose roots stay within {MAX_MOTION_ROOT}")
        if self.motion_overlap and not self.motion_block:
            raise ValueError("overlapped compensation needs a motion block")
        if self.motion_sharp and not self.motion_block:
            raise ValueError("sharp interpolation needs a motion block")
        if self.key_prediction and not (self.inter and self.intra_period):
            raise ValueError("key prediction needs an inter synthesis and an intra period")
        if self.bidirectional and not self.key_prediction:
            raise ValueError("B-frames need key prediction")

    @property
    def arm_inputs(self) -> int:
        return ARM_IN_RASTER if self.arm_context == "raster" else ARM_IN

    @property
    def inter(self) -> bool:
        return bool(self.inter_synth)

    def is_intra(self, t: int) -> bool:
        """Whether frame t is coded from its latents alone (else it corrects its prediction from `references`)."""
        return not self.inter or intra_frame(t, self.intra_period, self.key_prediction)

    def references(self, t: int, frames: int) -> tuple[int, ...]:
        """The frames that frame t (of `frames`) is predicted from: none (intra), one (a P-frame: t - 1,
        or a key frame's key frame before) or two (a B-frame: the frames before and after it)."""
        if not self.inter:
            return ()
        return frame_references(t, frames, self.intra_period, self.key_prediction, self.bidirectional)

    def predictions(self, frames: int) -> list[tuple[int, int]]:
        """(frame, reference) of every prediction: one motion field each, in this order."""
        return [(t, r) for t in self.inter_frames(frames) for r in self.references(t, frames)]

    def depths(self, frames: int) -> list[int]:
        """Each frame's distance in predictions from an intra frame along its longest path: a frame
        can be made once every frame of lower depth is (the decoder's order; training's batches)."""
        refs = [self.references(t, frames) for t in range(frames)]
        out: list[int | None] = [None] * frames
        pending = list(range(frames))
        while pending:  # a pass in display order: P-frames' references come before them, B-frames' in earlier passes
            left = []
            for t in pending:
                if any(out[r] is None for r in refs[t]):
                    left.append(t)
                else:
                    out[t] = 1 + max(out[r] for r in refs[t]) if refs[t] else 0
            if len(left) == len(pending):
                raise ValueError(f"frames {left} are predicted from one another")
            pending = left
        return out

    def coding_order(self, frames: int) -> list[int]:
        """The frames in the order a decoder makes them: by depth, then display order."""
        depth = self.depths(frames)
        return sorted(range(frames), key=lambda t: (depth[t], t))

    def intra_frames(self, frames: int) -> list[int]:
        """The frames (of `frames`) coded from their latents alone."""
        return [t for t in range(frames) if self.is_intra(t)]

    def inter_frames(self, frames: int) -> list[int]:
        """The frames (of `frames`) that are predicted; motion fields come in this order."""
        return [t for t in range(frames) if not self.is_intra(t)]

    @property
    def motion_blocks_text(self) -> str:
        kind = ("quarter-pel 6-tap" if self.motion_sharp else "half-pel") + (", overlapped" if self.motion_overlap else "")
        if not self.motion_depth:
            return f"{self.motion_block}x{self.motion_block} blocks, {kind}"
        root = self.motion_block << self.motion_depth
        return f"{root}x{root} blocks split down to {self.motion_block}x{self.motion_block}, {kind}"

    def with_shifts(self, synth_shift: int, arm_shift: int, inter_shift: int | None = None) -> CodecConfig:
        return replace(self, synth_shift=synth_shift, arm_shift=arm_shift, inter_shift=self.inter_shift if inter_shift is None else inter_shift)

    def describe(self) -> dict:
        def layers(specs):
            return [f"{s.kernel}x{s.kernel}->{s.out}{'+relu' if s.relu else ''}{'+res' if s.residual else ''}" for s in specs]

        return {
            "levels": self.n_levels,
            "temporal_strides": list(self.temporal_strides),
            "synthesis": layers(self.synth),
            "inter_synthesis": layers(self.inter_synth) if self.inter else "none (every frame intra)",
            "arm": f"{self.arm_inputs}-" + "-".join([str(self.arm_hidden)] * self.arm_layers) + "-2",
            "arm_context": self.arm_context,
            "synth_step": f"2^-{self.synth_shift}",
            "arm_step": f"2^-{self.arm_shift}",
            **({"inter_step": f"2^-{self.inter_shift}"} if self.inter else {}),
            **({"motion": self.motion_blocks_text} if self.motion_block else {}),
            **({"intra_period": self.intra_period or "frame 0 only"} if self.inter else {}),
            **({"key_frames": "predicted from the key frame before"} if self.key_prediction else {}),
            **({"b_frames": "hierarchical, between the anchors"} if self.bidirectional else {}),
        }


def level_shapes(cfg: CodecConfig, frames: int, height: int, width: int) -> list[tuple[int, int, int]]:
    shapes = []
    h, w = height, width
    for level in range(cfg.n_levels):
        stride = cfg.temporal_strides[level]
        shapes.append(((frames + stride - 1) // stride, h, w))
        h, w = (h + 1) // 2, (w + 1) // 2
    return shapes


PRED_CHANNELS = 3  # the prediction an inter synthesis sees: Y, U and V at full resolution
INTER_LATENT_GAIN = 0.01  # initial scale of the inter synthesis' weights on its latents (see Synthesis)


def synth_inputs(cfg: CodecConfig, inter: bool = False) -> int:
    return cfg.n_levels + (PRED_CHANNELS if inter else 0)


def synth_param_shapes(cfg: CodecConfig, inter: bool = False) -> list[tuple[int, ...]]:
    shapes = []
    c_in = synth_inputs(cfg, inter)
    for spec in cfg.inter_synth if inter else cfg.synth:
        shapes += [(spec.out, c_in, spec.kernel, spec.kernel), (spec.out,)]
        c_in = spec.out
    return shapes


def arm_param_shapes(cfg: CodecConfig) -> list[tuple[int, ...]]:
    dims = [cfg.arm_inputs] + [cfg.arm_hidden] * cfg.arm_layers + [2]
    shapes = []
    for a, b in zip(dims[:-1], dims[1:]):
        shapes += [(b, a), (b,)]
    return shapes


# --------------------------------------------------------------------------- context


def phase_map(height: int, width: int, device=None) -> torch.Tensor:
    pat = torch.tensor(_PHASE_OF_PARITY, dtype=torch.long, device=device)
    return pat.repeat((height + 1) // 2, (width + 1) // 2)[:height, :width]


@lru_cache(maxsize=None)  # unbounded: a captured CUDA graph reads these tensors, so they must never be evicted
def context_mask(height: int, width: int, dtype, device=None) -> torch.Tensor:
    """(8, H*W): 1 where the neighbour is decoded in an earlier phase than the position itself."""
    phase = [[_PHASE_OF_PARITY[i][j] for j in range(2)] for i in range(2)]
    pat = torch.zeros(8, 2, 2, dtype=dtype)
    for k, (di, dj) in enumerate(_OFFSETS):
        for i in range(2):
            for j in range(2):
                pat[k, i, j] = 1.0 if phase[(i + di) % 2][(j + dj) % 2] < phase[i][j] else 0.0
    return pat.repeat(1, (height + 1) // 2, (width + 1) // 2)[:, :height, :width].reshape(8, -1).to(device)


@lru_cache(maxsize=None)
def phase_onehot(height: int, width: int, dtype, device=None) -> torch.Tensor:
    # built on the CPU and copied (a synchronous copy): models training side by side on their own
    # CUDA streams share this cached tensor, so none may read it while another's kernels still write it
    return F.one_hot(phase_map(height, width).reshape(-1), PHASES).to(dtype).t().contiguous().to(device)  # (4, H*W)


def nearest_up(parent: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, h, w) -> (N, H, W) by repeating each value 2x2, cropped."""
    return parent.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)[..., :height, :width]


def arm_context(cur: torch.Tensor, prev: torch.Tensor, has_prev: torch.Tensor, parent: torch.Tensor, has_parent: torch.Tensor) -> torch.Tensor:
    """Context features (N, H*W, 24) for every position of N slices of one level.

    cur, prev, parent: (N, H, W) (parent already brought to H x W); has_prev, has_parent: (N,).
    Neighbours of a later phase are multiplied by 0, so the features of a
    position are the same whether or not they are known yet.
    """
    n, h, w = cur.shape
    hw = h * w
    dtype, device = cur.dtype, cur.device
    # the 8 neighbours of the 3x3 window (not its centre); a cached index: a list would be copied to the device each call
    spatial = F.unfold(cur[:, None], 3, padding=1).index_select(1, device_index(tuple(_SPATIAL_IDX), device)) * context_mask(h, w, dtype, device)
    temporal = F.unfold(prev[:, None], 3, padding=1)
    par = parent.reshape(n, 1, hw)
    phase = phase_onehot(h, w, dtype, device).expand(n, PHASES, hw)
    flags = torch.stack([has_prev, has_parent], dim=1).to(dtype)[:, :, None].expand(n, 2, hw)
    return torch.cat([spatial, temporal, par, phase, flags], dim=1).transpose(1, 2)


def raster_context(cur: torch.Tensor, prev: torch.Tensor, has_prev: torch.Tensor, parent: torch.Tensor, has_parent: torch.Tensor) -> torch.Tensor:
    """The "raster" context features (N, H*W, 20) of every position of N slices (arguments as arm_context's):
    RASTER_OFFSETS' neighbours (zero past the edges), the previous slice's 3x3, the parent, the two flags."""
    n, h, w = cur.shape
    hw = h * w
    # shifted views of one padded copy: 8 values a latent (a 5x5 unfold would make 25, then drop 17)
    padded = F.pad(cur, (2, 2, 2, 2))
    spatial = torch.stack([padded[:, 2 + di : 2 + di + h, 2 + dj : 2 + dj + w] for di, dj in RASTER_OFFSETS], dim=1).reshape(n, 8, hw)
    temporal = F.unfold(prev[:, None], 3, padding=1)
    flags = torch.stack([has_prev, has_parent], dim=1).to(cur.dtype)[:, :, None].expand(n, 2, hw)
    return torch.cat([spatial, temporal, parent.reshape(n, 1, hw), flags], dim=1).transpose(1, 2)


def parent_index(cfg: CodecConfig, level: int, slice_index: int) -> int:
    return (slice_index * cfg.temporal_strides[level]) // cfg.temporal_strides[level + 1]


def take_slices(x: torch.Tensor, idx: list[int]) -> torch.Tensor:
    """x[idx] along dim 0; identity and sample-and-hold cases avoid index (its backward is slow on CPU)."""
    if idx == list(range(x.shape[0])):
        return x
    counts = [0] * x.shape[0]
    for i in idx:
        counts[i] += 1
    if idx == sorted(idx) and all(c > 0 for c in counts):
        return torch.repeat_interleave(x, device_index(tuple(counts), x.device), dim=0, output_size=len(idx))  # sized: no sync
    return x.index_select(0, device_index(tuple(idx), x.device))


@lru_cache(maxsize=None)
def device_index(values: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """An index made once per device (cached: models and CUDA graphs share it): on CUDA a tensor built from a list is a host-to-device copy,
    which syncs every iteration (and cannot be captured in a CUDA graph)."""
    return torch.tensor(values, device=device)


def previous_slice(cfg: CodecConfig, level: int, n: int) -> int | None:
    """The slice of `level` whose latents the ARM sees as slice n's temporal context.

    A predicted frame's slice sees the slice before it. An intra frame's slice sees the intra
    slice before it, not the predicted frame's just before: intra latents code the picture,
    inter latents a correction, and with the correction as context the training made each
    last P-frame of a GOP carry the next I-frame's content (N06, intra period 8: ~1.1 KB in
    every 8th frame). Without an intra period (files before version 4) this is always n - 1, and
    so it is with key prediction (only slice 0 is intra): a predicted key frame's slice sees the
    slice before it, a correction against another reference (slice (k-1)P is untried).
    """
    stride = cfg.temporal_strides[level]
    if n == 0 or not cfg.is_intra(n * stride):
        return n - 1 if n > 0 else None
    return next(m for m in range(n - 1, -1, -1) if cfg.is_intra(m * stride))


@lru_cache(maxsize=None)
def _previous_rows(cfg: CodecConfig, level: int, slices: int, dtype, device) -> tuple[torch.Tensor | None, torch.Tensor]:
    """For `level_context`: each slice's previous-slice row in the zero-padded level (None in the usual
    case, row n for slice n) and the has-previous flags. Cached: built once, not every iteration
    (on CUDA a tensor made from a list is a host-to-device copy)."""
    prev_index = [previous_slice(cfg, level, n) for n in range(slices)]
    has_prev = torch.tensor([0.0 if m is None else 1.0 for m in prev_index], dtype=dtype, device=device)
    if prev_index == [None, *range(slices - 1)]:
        return None, has_prev
    return torch.tensor([0 if m is None else m + 1 for m in prev_index], device=device), has_prev


def level_context(cfg: CodecConfig, levels: list[torch.Tensor], level: int) -> torch.Tensor:
    """Features for all slices of `level` at once (training / encoder side)."""
    q = levels[level]
    t, h, w = q.shape
    rows, has_prev = _previous_rows(cfg, level, t, q.dtype, q.device)
    padded = torch.cat([torch.zeros_like(q[:1]), q], dim=0)  # row 0: no previous slice
    # the usual case without index_select (slow backward on CPU)
    prev = padded[:-1] if rows is None else padded.index_select(0, rows)
    if level + 1 < cfg.n_levels:
        idx = [parent_index(cfg, level, n) for n in range(t)]
        parent = nearest_up(take_slices(levels[level + 1], idx), h, w)
        has_parent = torch.ones(t, dtype=q.dtype, device=q.device)
    else:
        parent = torch.zeros_like(q)
        has_parent = torch.zeros(t, dtype=q.dtype, device=q.device)
    build = raster_context if cfg.arm_context == "raster" else arm_context
    return build(q, prev, has_prev, parent, has_parent)


# --------------------------------------------------------------------------- upsampling + synthesis


def _up_axis(x: torch.Tensor, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    padded = torch.cat([x.narrow(dim, 0, 1), x, x.narrow(dim, n - 1, 1)], dim)
    left, right = padded.narrow(dim, 0, n), padded.narrow(dim, 2, n)
    even = 0.25 * left + 0.75 * x
    odd = 0.75 * x + 0.25 * right
    return torch.stack([even, odd], dim + 1).flatten(dim, dim + 1)


def up2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 (align_corners=False, replicate edges) on the last two dims; exact on dyadic values."""
    return _up_axis(_up_axis(x, x.dim() - 2), x.dim() - 1)


def upsample_levels(cfg: CodecConfig, levels: list[torch.Tensor], frames: list[int]) -> torch.Tensor:
    """Latent pyramid -> (len(frames), n_levels, H, W): coarsest first, full resolution."""
    acc = None
    for level in reversed(range(cfg.n_levels)):
        q = take_slices(levels[level], [f // cfg.temporal_strides[level] for f in frames])[:, None]
        if acc is None:
            acc = q
        else:
            acc = torch.cat([up2x(acc)[..., : q.shape[-2], : q.shape[-1]], q], dim=1)
    return acc


class Synthesis(nn.Module):
    """The intra synthesis (latents -> frame), or with `inter` the one that corrects a prediction."""

    def __init__(self, cfg: CodecConfig, inter: bool = False) -> None:
        super().__init__()
        self.specs = cfg.inter_synth if inter else cfg.synth
        layers = []
        c_in = synth_inputs(cfg, inter)
        for spec in self.specs:
            layers.append(nn.Conv2d(c_in, spec.out, spec.kernel, bias=True))
            c_in = spec.out
        self.layers = nn.ModuleList(layers)
        with torch.no_grad():
            for conv, spec in zip(self.layers, self.specs):
                if spec.residual:
                    conv.weight.zero_()
                    conv.bias.zero_()
            last_plain = self.layers[max(i for i, s in enumerate(self.specs) if not s.residual)]
            if inter:  # start as "the prediction, barely corrected"
                last_plain.weight.mul_(0.1)
                last_plain.bias.zero_()
                # At torch's default scale one latent step moves the correction by about one 8-bit
                # level, as much as a good prediction is off, so under the +-0.5 training noise a
                # latent carried nothing and zero stayed cheapest: the inter latents never left zero
                # and inter frames went uncorrected (N06: 1-4 bytes of latents a frame, the quality
                # falling along the chain). With small weights a correction needs large latents,
                # which the noise barely disturbs (Adam's steps do not shrink with the gradient).
                self.layers[0].weight[:, : cfg.n_levels].mul_(INTER_LATENT_GAIN)
            else:  # start as mid-grey
                last_plain.bias.fill_(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, spec in zip(self.layers, self.specs):
            inp = F.pad(x, (1, 1, 1, 1), mode="replicate") if spec.kernel == 3 else x
            y = conv(inp)
            if spec.residual:
                y = y + x
            if spec.relu:
                y = F.relu(y)
            x = y
        return x


class Arm(nn.Module):
    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        dims = [cfg.arm_inputs] + [cfg.arm_hidden] * cfg.arm_layers + [2]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        with torch.no_grad():
            self.layers[-1].weight.mul_(0.1)
            self.layers[-1].bias.zero_()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = F.relu(x)
        return x[..., 0], x[..., 1]


def to_420(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) -> Y (N, H, W) and UV (N, 2, H/2, W/2) by 2x2 averaging (H, W even)."""
    return out[:, 0], F.avg_pool2d(out[:, 1:3], 2)


def prediction_planes(pred_y: torch.Tensor, pred_uv: torch.Tensor) -> torch.Tensor:
    """The inter synthesis' view of the prediction: (N, 3, H, W), chroma brought up x2 (exact on dyadic values)."""
    return torch.cat([pred_y[:, None], up2x(pred_uv)], dim=1)


def add_correction(out: torch.Tensor, pred_y: torch.Tensor, pred_uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Prediction + the inter synthesis' output, in 4:2:0 (adding at full resolution would blur chroma frame after frame)."""
    y, uv = to_420(out)
    return pred_y + y, pred_uv + uv


def pixel_levels(x: torch.Tensor) -> torch.Tensor:
    """Values on [0, 1] -> the 8-bit levels 0..255 a decoder stores (as floats)."""
    return torch.floor(torch.clamp(x, 0.0, 1.0) * 255.0 + 0.5)


def decoded_value(x: torch.Tensor) -> torch.Tensor:
    """What a decoded pixel is worth as a prediction: 8-bit, then on the 2**-ACT_FRAC grid.

    The decoder applies it to its uint8 frames; training applies it with a straight-through
    gradient so that the chain of frames it trains is the chain the decoder computes.
    """
    pixels = pixel_levels(x) / 255.0
    scale = float(1 << ACT_FRAC)
    return torch.floor(pixels * scale + 0.5) / scale


# --------------------------------------------------------------------------- fixed point (decoder arithmetic)


def round_fp(x: torch.Tensor) -> torch.Tensor:
    scale = float(1 << ACT_FRAC)
    return torch.clamp(torch.floor(x * scale + 0.5) / scale, -ACT_CLAMP, ACT_CLAMP)


def dequantize(ints: list[torch.Tensor], shift: int, coarsen: list[int] | None = None) -> list[torch.Tensor]:
    """Integer weights -> float64 values: tensor i has the step 2**(coarsen[i] - shift)."""
    return [t.to(torch.float64) * (2.0 ** ((coarsen[i] if coarsen else 0) - shift)) for i, t in enumerate(ints)]


def synthesis_fixed(cfg: CodecConfig, x: torch.Tensor, params: list[torch.Tensor], inter: bool = False) -> torch.Tensor:
    """x: (N, channels, H, W) float64 upsampled latents (+ prediction); params: dequantized float64 weights."""
    x = round_fp(x)
    for i, spec in enumerate(cfg.inter_synth if inter else cfg.synth):
        weight, bias = params[2 * i], params[2 * i + 1]
        inp = F.pad(x, (1, 1, 1, 1), mode="replicate") if spec.kernel == 3 else x
        y = round_fp(F.conv2d(inp, weight, bias))
        if spec.residual:
            y = torch.clamp(y + x, -ACT_CLAMP, ACT_CLAMP)
        if spec.relu:
            y = torch.relu(y)
        x = y
    return x


def arm_fixed(x: torch.Tensor, params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    n_layers = len(params) // 2
    for i in range(n_layers):
        x = round_fp(x @ params[2 * i].t() + params[2 * i + 1])
        if i + 1 < n_layers:
            x = torch.relu(x)
    return x[:, 0], x[:, 1]


def table_index(mu: torch.Tensor, log2_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed-point ARM outputs -> (integer part of the mean, table id). Exact on dyadic inputs."""
    mu = torch.clamp(mu, -LMAX, LMAX)
    whole = torch.floor(mu)
    frac = torch.clamp(torch.floor((mu - whole) * NF), 0, NF - 1)
    s = torch.clamp(torch.floor((log2_scale - S_MIN) * S_RES + 0.5), 0, NS - 1)
    return whole.to(torch.int64), (frac * NS + s).to(torch.int64)


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.floor(x * 255.0 + 0.5), 0, 255).to(torch.uint8)


def laplace_bits(q: torch.Tensor, mu: torch.Tensor, log2_scale: torch.Tensor) -> torch.Tensor:
    """Training-time rate of integer (or noisy) q under the Laplace the tables quantize."""
    mu = torch.clamp(mu, -LMAX, LMAX)
    b = torch.exp2(torch.clamp(log2_scale, S_MIN, S_MAX))
    v = -torch.abs(q - mu)  # symmetric: evaluate on the left tail, stable

    def cdf(x):  # one exp of a non-positive argument: no overflow, so no NaN gradient through where()
        e = torch.exp(-torch.abs(x) / b)
        return torch.where(x < 0, 0.5 * e, 1.0 - 0.5 * e)

    p = cdf(v + 0.5) - cdf(v - 0.5)
    return -torch.log2(torch.clamp(p, min=2.0**-17))


# --------------------------------------------------------------------------- latent coding order (shared)


def code_latents(cfg: CodecConfig, shapes: list[tuple[int, int, int]], arm_params: list[torch.Tensor], coder,
                 values: list[torch.Tensor] | None = None, slice_bits: list[tuple[int, int, float]] | None = None) -> list[torch.Tensor]:
    """Walk the latents in coding order (levels coarse to fine), computing each step's tables with the fixed-point ARM.

    `coder.code(tid, symbols)` encodes (values given) or decodes (values None,
    returns symbols). Returns the latent grids (float64 integers).
    slice_bits: if a list, gets (level, slice, ideal bits under its tables) for every slice (stats only).
    """
    code_level = _code_level_raster if cfg.arm_context == "raster" else _code_level_phases
    levels: list[torch.Tensor] = [torch.empty(0)] * cfg.n_levels  # each filled once coded, coarse to fine
    for level in reversed(range(cfg.n_levels)):
        symbols = _SymbolCoder(coder, values[level] if values is not None else None, with_bits=slice_bits is not None)
        levels[level], bits = code_level(cfg, shapes[level], levels, level, arm_params, symbols)
        if slice_bits is not None:
            slice_bits.extend((level, n, float(b)) for n, b in enumerate(bits))
    return levels


class _SymbolCoder:
    """One level's latents through the range coder: encodes the given values or decodes (and range-checks) them."""

    def __init__(self, coder, values: torch.Tensor | None, with_bits: bool = False) -> None:
        self.coder = coder
        self.values = values.reshape(-1).to(torch.int64).numpy() if values is not None else None
        self.with_bits = with_bits

    def code(self, flat_index: np.ndarray, mu: torch.Tensor, log2_scale: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The latents at `flat_index` of the level (given their ARM outputs), and each one's ideal bits
        (zeros unless with_bits: a table lookup and a log per latent that only statistics need)."""
        whole, tid = table_index(mu, log2_scale)
        whole_np, tid_np = whole.numpy(), tid.numpy()
        if self.values is not None:
            q = self.values[flat_index]
            self.coder.code(tid_np, q - whole_np + RMAX)
        else:
            q = self.coder.code(tid_np) + whole_np - RMAX
            if q.min() < -LMAX or q.max() > LMAX:
                from codec_lab.errors import BitstreamError

                raise BitstreamError("a decoded latent is out of range: the file is damaged")
        return q, table_bits(tid_np, q - whole_np + RMAX) if self.with_bits else np.zeros(len(q))


def _code_level_phases(cfg: CodecConfig, shape: tuple[int, int, int], levels: list[torch.Tensor], level: int, arm_params,
                       coder: _SymbolCoder) -> tuple[torch.Tensor, np.ndarray]:
    """The "phases" context (files before version 5): slice by slice, four phases of a 2x2 lattice each.
    Returns the level's latents and each slice's bits."""
    t, h, w = shape
    coded = torch.zeros(shape, dtype=torch.float64)
    phases = phase_map(h, w).reshape(-1)
    positions = [torch.nonzero(phases == p).reshape(-1) for p in range(PHASES)]
    zero = torch.zeros(1, h, w, dtype=torch.float64)
    has_parent = torch.tensor([1.0 if level + 1 < cfg.n_levels else 0.0], dtype=torch.float64)
    bits = np.zeros(t)
    for n in range(t):
        cur = coded[n : n + 1]
        m = previous_slice(cfg, level, n)
        prev = coded[m : m + 1] if m is not None else zero
        parent = nearest_up(levels[level + 1][parent_index(cfg, level, n)][None], h, w) if has_parent else zero
        has_prev = torch.tensor([0.0 if m is None else 1.0], dtype=torch.float64)
        flat = cur.view(-1)
        for p in range(PHASES):
            pos = positions[p]
            if len(pos) == 0:
                continue
            feats = arm_context(cur, prev, has_prev, parent, has_parent)[0, pos]
            q, b = coder.code(n * h * w + pos.numpy(), *arm_fixed(feats, arm_params))
            bits[n] += b.sum()
            flat[pos] = torch.from_numpy(q).to(torch.float64)
    return coded, bits


def wavefront(step: int, slices: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slice, row, column) of the latents the "raster" context codes at `step`: slice n's wavefront
    2i + j = step - WAVE_LAG * n, by slice then row. Steps run from 0 to last_wavefront_step."""
    last = 2 * (height - 1) + (width - 1)
    n = np.arange(max(0, -(-(step - last) // WAVE_LAG)), min(slices - 1, step // WAVE_LAG) + 1)
    d = step - WAVE_LAG * n
    lo, hi = np.maximum(0, (d - width + 2) // 2), np.minimum(height - 1, d // 2)
    counts = np.maximum(0, hi - lo + 1)
    total = int(counts.sum())
    within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = np.repeat(lo, counts) + within
    return np.repeat(n, counts), rows, np.repeat(d, counts) - 2 * rows


def last_wavefront_step(slices: int, height: int, width: int) -> int:
    return 2 * (height - 1) + (width - 1) + WAVE_LAG * (slices - 1)


def _code_level_raster(cfg: CodecConfig, shape: tuple[int, int, int], levels: list[torch.Tensor], level: int, arm_params,
                       coder: _SymbolCoder) -> tuple[torch.Tensor, np.ndarray]:
    """The "raster" context: all slices of the level in one sweep of wavefronts (see `wavefront`), each
    step's latents coded at once. The level lives in a buffer with 2 zeros around every slice (the
    contexts' edges) and one more all-zero slice, the previous slice of those that have none; the
    level returned is a view of it (no second copy of the largest tensor the decoder holds)."""
    t, h, w = shape
    wp = w + 4
    plane = (h + 4) * wp
    buf = torch.zeros((t + 1) * plane, dtype=torch.float64)
    spatial_off = np.array([di * wp + dj for di, dj in RASTER_OFFSETS])
    temporal_off = np.array([di * wp + dj for di in (-1, 0, 1) for dj in (-1, 0, 1)])
    previous = np.array([t if m is None else m for m in (previous_slice(cfg, level, n) for n in range(t))])
    has_parent = level + 1 < cfg.n_levels
    if has_parent:  # a latent's parent: the coarser level's latent at (i // 2, j // 2) in the slice parent_index names
        coarser = levels[level + 1].reshape(-1)
        _, ch, cw = levels[level + 1].shape
        parent_slice = np.array([parent_index(cfg, level, n) for n in range(t)])
    bits = np.zeros(t)
    for step in range(last_wavefront_step(t, h, w) + 1):
        n, i, j = wavefront(step, t, h, w)
        if len(n) == 0:  # a level one latent wide, or slices too small to fill the lag between them
            continue
        centre = (i + 2) * wp + j + 2
        here, before = n * plane + centre, previous[n] * plane + centre
        parent = coarser[torch.from_numpy((parent_slice[n] * ch + i // 2) * cw + j // 2)] if has_parent else torch.zeros(len(n), dtype=torch.float64)
        feats = torch.cat([
            buf[torch.from_numpy(here[:, None] + spatial_off)],
            buf[torch.from_numpy(before[:, None] + temporal_off)],
            parent[:, None],
            torch.from_numpy(np.stack([previous[n] != t, np.full(len(n), has_parent)], 1).astype(np.float64)),
        ], 1)
        q, b = coder.code(n * h * w + i * w + j, *arm_fixed(feats, arm_params))
        np.add.at(bits, n, b)
        buf[torch.from_numpy(here)] = torch.from_numpy(q).to(torch.float64)
    return buf.view(t + 1, h + 4, wp)[:t, 2 : h + 2, 2 : w + 2], bits


def predicted_pixels(cfg: CodecConfig, prev_y: torch.Tensor, prev_uv: torch.Tensor, field) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8-bit prediction of an inter frame from its reference frame's 8-bit values (float64 integers).

    field: the frame's motion vectors (with a motion config), else unused: the reference as it is."""
    if not cfg.motion_block:
        return prev_y, prev_uv
    return tuple(predict(ref, field, cfg.motion_block, subsample, cfg.motion_overlap, cfg.motion_depth, cfg.motion_sharp)
                 for ref, subsample in ((prev_y, 1), (prev_uv, 2)))


def bi_mean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A B-frame's prediction from its two 8-bit predictions: their mean, rounded half up (exact)."""
    return torch.floor((a + b + 1.0) * 0.5)


def reconstruct(cfg: CodecConfig, levels: list[torch.Tensor], synth_params: list[torch.Tensor], frames: int, height: int, width: int,
                inter_params: list[torch.Tensor] | None = None, motion_fields: list | None = None):
    """Fixed-point synthesis, one frame at a time in `cfg.coding_order`: uint8 Y (T, H, W), U, V
    (T, H/2, W/2) at the padded size, in display order.

    motion_fields: with a motion config, the vectors of `cfg.predictions(frames)`, in that order."""
    fields = dict(zip(cfg.predictions(frames), motion_fields or [])) if cfg.motion_block else {}
    ys, us, vs = [None] * frames, [None] * frames, [None] * frames
    for t in cfg.coding_order(frames):
        x = upsample_levels(cfg, levels, [t])
        refs = cfg.references(t, frames)
        if refs:
            preds = [predicted_pixels(cfg, ys[r][None].to(torch.float64), torch.stack([us[r], vs[r]])[None].to(torch.float64),
                                      fields.get((t, r))) for r in refs]
            prev_y, prev_uv = preds[0] if len(preds) == 1 else tuple(bi_mean(a, b) for a, b in zip(*preds))
            pred_y = decoded_value(prev_y / 255.0)
            pred_uv = decoded_value(prev_uv / 255.0)
            out = synthesis_fixed(cfg, torch.cat([x, prediction_planes(pred_y, pred_uv)], dim=1), inter_params, inter=True)
            y, uv = add_correction(out, pred_y, pred_uv)
        else:
            y, uv = to_420(synthesis_fixed(cfg, x, synth_params))
        ys[t], us[t], vs[t] = to_pixels(y[0]), to_pixels(uv[0, 0]), to_pixels(uv[0, 1])
    return torch.stack(ys).numpy(), torch.stack(us).numpy(), torch.stack(vs).numpy()



# --------------------------------------------------------------------------- header <-> config


def config_from_header(header) -> CodecConfig:
    def specs(layers):
        return tuple(LayerSpec(out, kernel, bool(flags & 1), bool(flags & 2)) for out, kernel, flags in layers)

    return CodecConfig(header.levels, tuple(header.temporal_strides), specs(header.synth), header.arm_hidden, header.arm_layers,
                       header.synth_shift, header.arm_shift, specs(header.inter_synth), header.inter_shift, header.motion_block,
                       header.intra_period, header.arm_context, header.key_prediction, header.motion_depth,
                       header.motion_overlap, header.motion_sharp, header.bidirectional)


def synth_layer_tuples(cfg: CodecConfig, inter: bool = False) -> tuple[tuple[int, int, int], ...]:
    return tuple((s.out, s.kernel, (1 if s.relu else 0) | (2 if s.residual else 0)) for s in (cfg.inter_synth if inter else cfg.synth))
