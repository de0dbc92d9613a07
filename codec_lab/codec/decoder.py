"""Decoder of `semantic_latent`: needs only the .clv file; never imports the encoder or training code.

All arithmetic that decides a symbol or a pixel is exact fixed point carried
in float64 (see `codec_lab.codec.model`), so the frames do not depend on the
machine, the BLAS, the thread count or the device the file was encoded on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from codec_lab.codec import bitstream, entropy, motion
from codec_lab.codec.model import (
    arm_param_shapes,
    code_latents,
    config_from_header,
    dequantize,
    level_shapes,
    reconstruct,
    synth_param_shapes,
)
from codec_lab.errors import BitstreamError
from codec_lab.video.frames import Clip


@dataclass(frozen=True)
class Decoded:
    clip: Clip
    header: bitstream.Header
    file_bytes: int
    seconds: float


def decode_bytes(data: bytes, *, max_pixels: int = bitstream.DEFAULT_MAX_PIXELS,
                 slice_bits: list[tuple[int, int, float]] | None = None) -> Decoded:
    """slice_bits: if a list, gets each latent slice's (level, slice, bits) (see model.code_latents)."""
    start = time.monotonic()
    parsed = bitstream.parse_file(data)
    header = parsed.header
    cfg = config_from_header(header)
    height, width = header.padded_size
    pixels = header.frames * height * width
    if pixels > max_pixels:
        raise BitstreamError(
            f"the file claims {header.frames} frames of {header.width}x{header.height} ({pixels} pixels), above this decoder's cap of {max_pixels}"
        )
    shapes = level_shapes(cfg, header.frames, height, width)
    n_symbols = sum(t * h * w for t, h, w in shapes)
    if n_symbols > entropy.max_symbols_for(len(parsed.latents)):
        raise BitstreamError(
            f"the header implies {n_symbols} latents but a latent section of {len(parsed.latents)} bytes cannot hold that many: the file is damaged"
        )
    synth_shapes, inter_shapes, arm_shapes = synth_param_shapes(cfg), synth_param_shapes(cfg, inter=True), arm_param_shapes(cfg)
    ints, coarsen = bitstream.unpack_weights(parsed.weights, synth_shapes + inter_shapes + arm_shapes, parsed.version)
    ints = [torch.from_numpy(t) for t in ints]
    a, b = len(synth_shapes), len(synth_shapes) + len(inter_shapes)
    synth_params = dequantize(ints[:a], cfg.synth_shift, coarsen[:a])
    inter_params = dequantize(ints[a:b], cfg.inter_shift, coarsen[a:b])
    arm_params = dequantize(ints[b:], cfg.arm_shift, coarsen[b:])
    fields = None
    predictions = cfg.predictions(header.frames)
    if cfg.motion_block and predictions:
        fields = motion.decode_fields(parsed.motion, len(predictions), motion.grid(height, width, cfg.motion_block), depth=cfg.motion_depth,
                                      predictions=motion.readable_predictions(predictions, parsed.version))
    with torch.no_grad():
        levels = code_latents(cfg, shapes, arm_params, entropy.LatentDecoder(parsed.latents), slice_bits=slice_bits)
        y, u, v = reconstruct(cfg, levels, synth_params, header.frames, height, width, inter_params, fields)
    clip = Clip(y, u, v, header.fps).cropped(header.height, header.width)
    return Decoded(clip, header, parsed.file_bytes, time.monotonic() - start)


def decode_file(path: str | Path, *, max_pixels: int = bitstream.DEFAULT_MAX_PIXELS) -> Decoded:
    data = bitstream.read_file(path)
    with bitstream.naming(path):
        return decode_bytes(data, max_pixels=max_pixels)
