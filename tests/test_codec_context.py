"""The ARM's context: the coder (decoder order) sees exactly the features training priced, and the
"raster" wavefront schedule codes every latent once, after everything its context reads."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from codec_lab.codec import model
from codec_lab.codec.model import (
    RASTER_OFFSETS,
    WAVE_LAG,
    CodecConfig,
    LayerSpec,
    code_latents,
    last_wavefront_step,
    level_context,
    level_shapes,
    wavefront,
)


class _Recorder:
    """A range coder stand-in: code_latents only needs the symbols back."""

    def code(self, tid, symbols=None):
        return symbols


@pytest.mark.parametrize("context", ["raster", "phases"])
@pytest.mark.parametrize("intra_period", [0, 2])
def test_coder_sees_the_features_training_prices(monkeypatch, context, intra_period):
    cfg = CodecConfig(n_levels=3, temporal_strides=(1, 1, 2), synth=(LayerSpec(3, 1, False),), arm_hidden=4, arm_layers=1,
                      inter_synth=(LayerSpec(3, 1, False),), intra_period=intra_period, arm_context=context)
    shapes = level_shapes(cfg, 5, 10, 14)
    gen = torch.Generator().manual_seed(1)
    values = [torch.randint(-5, 6, s, generator=gen).double() for s in shapes]
    calls: list[tuple[int, np.ndarray]] = []  # (level, flat indices) of every coding step
    features: list[torch.Tensor] = []  # what the fixed-point ARM saw at that step
    real_code, real_arm_fixed = model._SymbolCoder.code, model.arm_fixed
    level_now = [None]

    def code(self, flat_index, mu, log2_scale):
        calls.append((level_now[0], flat_index.copy()))
        return real_code(self, flat_index, mu, log2_scale)

    def arm_fixed(feats, params):
        features.append(feats.clone())
        return real_arm_fixed(feats, params)

    real_level = getattr(model, f"_code_level_{context}")

    def code_level(cfg_, shape, levels, level, arm_params, coder):
        level_now[0] = level
        return real_level(cfg_, shape, levels, level, arm_params, coder)

    monkeypatch.setattr(model._SymbolCoder, "code", code)
    monkeypatch.setattr(model, "arm_fixed", arm_fixed)
    monkeypatch.setattr(model, f"_code_level_{context}", code_level)
    params = [p.detach().double() for p in model.Arm(cfg).parameters()]
    out = code_latents(cfg, shapes, params, _Recorder(), values)
    assert len(calls) == len(features)
    for level, shape in enumerate(shapes):
        assert torch.equal(out[level], values[level])
        indices = np.concatenate([index for lv, index in calls if lv == level])
        assert sorted(indices.tolist()) == list(range(int(np.prod(shape)))), "every latent coded once"
        got = torch.cat([f for (lv, _), f in zip(calls, features) if lv == level])[np.argsort(indices)]
        assert torch.equal(got, level_context(cfg, values, level).reshape(-1, cfg.arm_inputs)), f"level {level}"


@pytest.mark.parametrize("slices,height,width", [(1, 1, 1), (3, 5, 7), (4, 9, 2), (2, 2, 11)])
def test_wavefronts_code_each_latent_once_after_its_context(slices, height, width):
    step_of = np.full((slices, height, width), -1)
    for step in range(last_wavefront_step(slices, height, width) + 1):
        n, i, j = wavefront(step, slices, height, width)
        assert (step_of[n, i, j] == -1).all()
        step_of[n, i, j] = step
    assert (step_of >= 0).all()
    for n in range(slices):
        for i in range(height):
            for j in range(width):
                for di, dj in RASTER_OFFSETS:  # same slice: raster-causal neighbours
                    if 0 <= i + di < height and 0 <= j + dj < width:
                        assert step_of[n, i + di, j + dj] < step_of[n, i, j]
                if n:  # the previous slice's 3x3 (an intra slice may look further back: earlier still)
                    for di in (-1, 0, 1):
                        for dj in (-1, 0, 1):
                            if 0 <= i + di < height and 0 <= j + dj < width:
                                assert step_of[n - 1, i + di, j + dj] < step_of[n, i, j]
    assert WAVE_LAG >= 4


def test_raster_context_sees_no_later_neighbour():
    """Changing a latent changes the context of no latent coded before it."""
    cur = torch.zeros(1, 6, 7, dtype=torch.float64)
    cur[0, 3, 3] = 5.0
    zero = torch.zeros_like(cur)
    feats = model.raster_context(cur, zero, torch.zeros(1), zero, torch.zeros(1))[0, :, :8]
    touched = {divmod(p, 7) for p in torch.nonzero(feats.abs().sum(1)).reshape(-1).tolist()}
    assert touched == {(3 - di, 3 - dj) for di, dj in RASTER_OFFSETS}
    assert all(2 * i + j > 2 * 3 + 3 for i, j in touched)


def test_phases_and_raster_configs_differ_only_in_the_arm_inputs():
    raster, phases = CodecConfig(), replace(CodecConfig(), arm_context="phases")
    assert (raster.arm_inputs, phases.arm_inputs) == (20, 24)
    with pytest.raises(ValueError):
        replace(raster, arm_context="diagonal")


@pytest.mark.parametrize("frames,height,width", [(2, 8, 8), (1, 8, 16), (3, 2, 16), (2, 16, 2)])
def test_tiny_and_narrow_clips_round_trip(tmp_path, frames, height, width):
    """Levels one latent wide, and slices too small to fill the lag between them, leave some
    wavefront steps empty: the coder skips them (the decoder's frames equal the encoder's)."""
    from codec_lab.codec.decoder import decode_file
    from codec_lab.codec.encoder import encode_clip
    from codec_lab.codec.presets import PRESETS
    from tests.conftest import synthetic_clip

    clip = synthetic_clip(frames=frames, height=height, width=width)
    path = tmp_path / "tiny.clv"
    result = encode_clip(clip, path, lmbda=1e-3, preset=replace(PRESETS["fast"], iterations=3))  # 7 levels: 1x1 at the top
    decoded = decode_file(path)
    for plane in "yuv":
        assert np.array_equal(getattr(decoded.clip, plane), getattr(result.reconstruction, plane))
