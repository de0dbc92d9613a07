"""Training of `semantic_latent` (encoder side): what the optimiser does to latents and networks."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from codec_lab.codec.encoder import LatentModel, _targets, train
from codec_lab.codec.model import level_shapes
from codec_lab.codec.presets import PRESETS
from tests.conftest import synthetic_clip


@pytest.mark.parametrize("factor", [1.0, 3.0])
def test_the_latents_learn_at_their_own_rate(factor):
    """Adam's first step moves every parameter with a gradient by exactly its learning rate: the
    latents by latent_lr_factor times the networks' rate."""
    preset = replace(PRESETS["test"], iterations=1, lr=1e-2, latent_lr_factor=factor)
    clip = synthetic_clip(frames=2, height=16, width=16)
    torch.manual_seed(0)
    model = LatentModel(preset.config, level_shapes(preset.config, 2, 16, 16))
    before = [p.detach().clone() for p in model.synth.parameters()]
    y, uv = _targets(clip, torch.device("cpu"))
    train(model, y, uv, 1e-3, preset, max_seconds=None, amp=False, progress=None)
    latent_step = max(float(lat.detach().abs().max()) for lat in model.latents)  # the latents start at zero
    network_step = max(float((p.detach() - b).abs().max()) for p, b in zip(model.synth.parameters(), before))
    assert latent_step == pytest.approx(1e-2 * factor, rel=1e-3)
    assert network_step == pytest.approx(1e-2, rel=1e-3)


def test_weight_steps_follow_the_rate_distortion_trade_off():
    """Finalizing picks each tensor's step: coarse enough to zero every weight when only bits count,
    the finest network step and no coarsening when only the weights' error counts."""
    from codec_lab.codec import bitstream
    from codec_lab.codec.encoder import _best_steps, _weight_bits

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    floats = [p.detach().clone() for p in net.parameters()]

    def error(_ints) -> float:  # how far the network's (quantized) weights are from the trained ones
        return sum(float(((p - f) ** 2).sum()) for p, f in zip(net.parameters(), floats))

    bits_only = _best_steps(net, (6, 8), lambda ints: _weight_bits(ints))
    assert bits_only.shift == 6 and all(c > 0 for c in bits_only.coarsen)
    assert all(not t.any() for t in bits_only.quantize(floats))
    error_only = _best_steps(net, (6, 8), error)
    assert error_only.shift == 8 and set(error_only.coarsen) == {0}
    assert all(torch.equal(p, f) for p, f in zip(net.parameters(), floats))  # the float weights are given back
    mixed = _best_steps(net, (6, 8), lambda ints: error(ints) + 1e-4 * _weight_bits(ints))
    ints = mixed.quantize(floats)  # the chosen steps round-trip the file format
    packed = bitstream.pack_weights([t.numpy() for t in ints], list(mixed.coarsen))
    back, coarsen = bitstream.unpack_weights(packed, [tuple(p.shape) for p in floats])
    assert tuple(coarsen) == mixed.coarsen and all((b == t.numpy()).all() for b, t in zip(back, ints))
