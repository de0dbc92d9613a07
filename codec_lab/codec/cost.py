"""Decoder cost: MACs per pixel (thop for the networks, hand counts for the rest) and TOPS per frame."""

from __future__ import annotations

import contextlib
import io

import torch

from codec_lab.codec.model import (
    Arm,
    CodecConfig,
    Synthesis,
    level_shapes,
    synth_inputs,
)

MOTION_MACS = 4.0 + 2 * 4.0 / 4
SHARP_MOTION_MACS = 36.0 + 2 * 4.0 / 4  # a 6x6 separable kernel's phase per luma sample (filtered directly), chroma bilinear
OVERLAP_TAPS = 3  # overlapped compensation mixes three vectors' bilinear predictions
BI_MEAN_MACS = 1.0 + 2 * 1.0 / 4  # a B-frame's two predictions averaged, luma and chroma


def _thop_macs(module: torch.nn.Module, example: torch.Tensor) -> float:
    import thop

    with contextlib.redirect_stdout(io.StringIO()):
        macs, _params = thop.profile(module, inputs=(example,), verbose=False)
    return float(macs)


def mac_breakdown(cfg: CodecConfig, height: int, width: int, frames: int = 1) -> dict[str, float]:
    """MACs per output (luma) pixel of everything the decoder runs, at this size.

    - synthesis: thop on the convolutions at full resolution (replicate padding, residual adds and
      ReLUs are not MACs);
    - arm: thop MACs per latent x latents per pixel (the ARM runs once per latent);
    - upsampling: hand count, bilinear x2 as two separable 2-tap passes: 3 MACs per output sample
      per channel (1 for the vertical pass at half width, 2 for the horizontal);
    - chroma: 2x2 averaging of two channels: 2 MACs per luma pixel.
    - inter frames (configs with an inter synthesis): the inter network instead of the intra one,
      plus bringing the predicted chroma up x2 (3 MACs x 2 channels per luma pixel). The figure is
      that of the costlier kind of frame: the decoder's budget is per frame.
    - motion compensation (configs with a motion block): a 4-tap bilinear per predicted sample,
      4 MACs per luma pixel plus 4 x 2 chroma planes at a quarter of the pixels; sharp (6-tap
      quarter-pel luma), the 36 taps of the sample's phase of the separable 6x6 kernel instead of 4
      (a decoder filtering whole blocks' rows once needs ~12-20); overlapped, three such
      predictions mixed; with B-frames, two such predictions and their mean.
    """
    ph, pw = height + height % 2, width + width % 2
    probe = 32
    synth = _thop_macs(Synthesis(cfg), torch.zeros(1, cfg.n_levels, probe, probe)) / (probe * probe)
    if cfg.inter:
        inter = _thop_macs(Synthesis(cfg, inter=True), torch.zeros(1, synth_inputs(cfg, True), probe, probe)) / (probe * probe)
        per_vector = SHARP_MOTION_MACS if cfg.motion_sharp else MOTION_MACS
        motion = per_vector * (OVERLAP_TAPS if cfg.motion_overlap else 1) if cfg.motion_block else 0.0
        if cfg.bidirectional:
            motion = 2 * motion + BI_MEAN_MACS
        synth = max(synth, inter + 6.0 + motion)
    arm_per_latent = _thop_macs(Arm(cfg), torch.zeros(1, cfg.arm_inputs))
    shapes = level_shapes(cfg, frames, ph, pw)
    latents_per_pixel = sum(t * h * w for t, h, w in shapes) / (frames * ph * pw)
    up = 0.0
    for level in range(cfg.n_levels - 1):
        channels = cfg.n_levels - 1 - level  # coarser channels brought up to this level
        _, h, w = shapes[level]
        up += 3.0 * channels * h * w / (ph * pw)
    out = {
        "synthesis": synth,
        "arm": arm_per_latent * latents_per_pixel,
        "upsampling": up,
        "chroma": 2.0,
    }
    out["total"] = sum(out.values())
    return out


def mac_per_pixel(cfg: CodecConfig, height: int, width: int, frames: int = 1) -> float:
    return mac_breakdown(cfg, height, width, frames)["total"]


def tops_per_frame(mac: float, width: int, height: int) -> float:
    return 2.0 * mac * width * height / 1e12
