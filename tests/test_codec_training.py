"""Training of `semantic_latent` (encoder side): what the optimiser does to latents and networks."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from codec_lab.codec import training
from codec_lab.codec.model import level_shapes
from codec_lab.codec.presets import PRESETS, with_prediction
from codec_lab.codec.training import (
    INTRA_WARMUP,
    LatentModel,
    TrainStep,
    _targets,
    noise_position,
    train,
)
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


def test_a_time_cap_anneals_on_the_clock():
    assert noise_position(450, 900, None, None, 0.1) == 0.5  # no cap: iterations
    assert noise_position(10, 900, 45.0, 100.0, 0.1) == pytest.approx(0.5)  # half the noise phase's 90 s gone
    assert noise_position(800, 900, 1.0, 100.0, 0.1) == pytest.approx(800 / 900)  # whichever is further
    assert noise_position(10, 900, 500.0, 100.0, 0.1) == 1.0


def test_a_time_capped_run_leaves_the_intra_warm_up(monkeypatch):
    """A run stopped by --max-seconds long before its preset's iteration count (the GPU sweep:
    ~1,000 of 12,000) still trains its predicted frames: the warm-up ends on the clock."""
    preset = replace(with_prediction(PRESETS["test"], "previous"), iterations=100_000)
    clip = synthetic_clip(frames=3, height=16, width=16)
    torch.manual_seed(0)
    model = LatentModel(preset.config, level_shapes(preset.config, 3, 16, 16))
    shown: list[int] = []
    render = model.render
    monkeypatch.setattr(model, "render", lambda qs, frames: shown.append(len(frames)) or render(qs, frames))
    clock = iter(range(10**6))  # one second per clock read
    monkeypatch.setattr(training.time, "monotonic", lambda: float(next(clock)))
    y, uv = _targets(clip, torch.device("cpu"))
    iterations, *_ = train(model, y, uv, 1e-3, preset, max_seconds=100.0, amp=False, progress=None)
    assert iterations < 100
    warm_up = shown.index(3)
    assert shown[:warm_up] == [1] * warm_up and warm_up > 0  # frame 0 alone first
    assert set(shown[warm_up:]) == {3}
    assert warm_up < len(shown) * (INTRA_WARMUP + 0.1)


@pytest.mark.parametrize("key_prediction, bidirectional", [(False, False), (True, False), (True, True)])
def test_the_chains_trained_in_waves_are_the_frame_by_frame_chains(key_prediction, bidirectional):
    """render batches the frames k predictions from their intra frame; the result is each chain
    computed one frame after another. Key frames 0, 3, 6: intra, chains 0-1-2, 3-4-5 and 6; with
    key prediction only 0 is intra, and 3 is predicted from 0, 6 from 3 (a tree of depth 3); with
    B-frames 1 from 0 and 3 (in a wave with P-frame 6), 2 from B-frame 1 and 3, 4 from 3 and 6, 5
    from B-frame 4 and 6, each by the mean of two straight-through predictions."""
    import numpy as np

    from codec_lab.codec.model import (
        add_correction,
        bi_mean,
        decoded_value,
        prediction_planes,
        to_420,
        upsample_levels,
    )
    from codec_lab.codec.training import _ste_levels, _ste_prediction

    preset = with_prediction(PRESETS["test"], "motion", intra_period=3)
    cfg = replace(preset.config, motion_block=8, key_prediction=key_prediction, bidirectional=bidirectional)
    frames, h, w = 7, 16, 24
    rng = np.random.default_rng(0)
    fields = {t: tuple(rng.integers(-6, 7, (2, 3, 2)) for _ in cfg.references(t, frames)) for t in cfg.inter_frames(frames)}
    torch.manual_seed(0)
    model = LatentModel(cfg, level_shapes(cfg, frames, h, w), fields, frames=frames)
    with torch.no_grad():
        for lat in model.latents:
            lat.normal_()
    qs = model.quantized(False)
    y, uv = model.render(qs, list(range(frames)))

    x = upsample_levels(cfg, qs, list(range(frames)))
    ref_y, ref_uv = [None] * frames, [None] * frames
    for t in cfg.coding_order(frames):
        if cfg.is_intra(t):
            yt, uvt = to_420(model.synth(x[t : t + 1]))
        else:
            refs = cfg.references(t, frames)
            if not bidirectional:
                assert refs == ((t - 1,) if not key_prediction or t % 3 else (t - 3,))
            levels = [_ste_levels(ref_y[r], ref_uv[r], model.motion_taps(t, r)) for r in refs]
            if bidirectional and t % 3:
                assert refs == ((t - 1, t + 2) if t % 3 == 1 else (t - 1, t + 1))
                mean = [bi_mean(a, b) for a, b in zip(*levels)]
                pred_y, pred_uv = _ste_prediction(levels[0], levels[1])
                assert all(torch.equal(got, decoded_value(want / 255.0)) for got, want in zip((pred_y, pred_uv), mean))
            else:
                pred_y, pred_uv = _ste_prediction(levels[0])
            yt, uvt = add_correction(model.inter(torch.cat([x[t : t + 1], prediction_planes(pred_y, pred_uv)], dim=1)), pred_y, pred_uv)
        ref_y[t], ref_uv[t] = yt, uvt
    assert torch.allclose(y, torch.cat(ref_y), atol=1e-6) and torch.allclose(uv, torch.cat(ref_uv), atol=1e-6)
    waves = model._waves(tuple(range(frames)), torch.device("cpu")).waves
    assert waves == ([[0, 3, 6], [1, 4], [2, 5]] if not key_prediction else
                     [[0], [3], [1, 6], [2, 4], [5]] if bidirectional else [[0], [1, 3], [2, 4, 6], [5]])
    y[5].sum().backward(retain_graph=True)  # frame 5 comes from 4 (or 3 and 6), from frame 3, ...: the gradient goes up the chain
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.synth.parameters())
    model.zero_grad(set_to_none=True)
    y[6].sum().backward(retain_graph=True)  # intra, or predicted from 3 (and so from 0)
    assert key_prediction == any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.inter.parameters())
    if bidirectional:  # frame 2's loss reaches frame 3's latents through its later reference, not frame 6's
        model.zero_grad(set_to_none=True)
        y[2].sum().backward()
        grad = model._levels(model.latent_flat.grad)[0]
        assert grad[3].abs().sum() > 0 and grad[1].abs().sum() > 0 and grad[6].abs().sum() == 0


def test_channels_last_renders_the_same_frames():
    preset = with_prediction(PRESETS["test"], "previous", intra_period=2)
    torch.manual_seed(0)
    model = LatentModel(preset.config, level_shapes(preset.config, 3, 16, 24))
    with torch.no_grad():
        for lat in model.latents:
            lat.normal_()
    qs = model.quantized(False)
    y, uv = model.render(qs, [0, 1, 2])
    y_cl, uv_cl = model.use_channels_last().render(qs, [0, 1, 2])
    assert model.synth.layers[-1].weight.is_contiguous(memory_format=torch.channels_last)  # a 3x3 layer: not trivially so
    assert torch.allclose(y, y_cl, atol=1e-6) and torch.allclose(uv, uv_cl, atol=1e-6)


def test_a_graphable_step_trains_as_the_plain_one():
    """What a CUDA graph captures (CudaGraphSteps; run on the GPU machine) is a TrainStep built
    `graphable`: learning rates and temperature in tensors, gradients zeroed in place, Adam
    capturable. On the CPU, without a graph, it must train as the plain step does through warm-up,
    noise and straight-through steps, up to float32 rounding (capturable Adam's bias correction),
    and leave the inter network alone while only the intra frames are shown."""
    preset = with_prediction(PRESETS["test"], "previous", 2)
    clip = synthetic_clip(frames=3, height=32, width=32)
    params, inter_after_warmup = [], []
    for graphable in (False, True):
        torch.manual_seed(0)
        model = LatentModel(preset.config, level_shapes(preset.config, 3, 32, 32))
        inter_start = [p.detach().clone() for p in model.inter.parameters()]
        y, uv = _targets(clip, torch.device("cpu"))
        step = TrainStep(model, y, uv, 1e-3, preset, graphable=graphable)
        for i in range(8):
            step.schedule(1e-2 * (1 - i / 10), 0.3 - 0.02 * i)
            step(noise=i < 6, warmup=i < 3)
            if i == 2:
                inter_after_warmup.append(all(torch.equal(p, q) for p, q in zip(model.inter.parameters(), inter_start)))
        params.append([p.detach().clone() for p in model.parameters()])
    assert inter_after_warmup == [True, True]
    moved = max(float((b - a).abs().max()) for a, b in zip(params[0], params[1]))
    assert moved < 1e-6
    assert any(float(p.abs().max()) > 1e-3 for p in params[1])  # it trained


def test_one_diverging_training_does_not_stop_its_companions(tmp_path, monkeypatch):
    """train_together keeps going when one model diverges (its error is kept, not raised), and
    encode_clip_points writes the others' files before it reports the diverged point."""
    from codec_lab.codec import encoder
    from codec_lab.codec.training import Training, train_together
    from codec_lab.errors import CodecLabError

    preset = replace(PRESETS["test"], iterations=20)
    clip = synthetic_clip(frames=2, height=16, width=16)
    y, uv = _targets(clip, torch.device("cpu"))
    runs = [Training(LatentModel(preset.config, level_shapes(preset.config, 2, 16, 16)), y, uv, lmbda, preset)
            for lmbda in (1e-3, float("nan"))]
    good, bad = train_together(runs)
    assert good.error is None and good.iterations == 20
    assert isinstance(bad.error, CodecLabError) and "diverged" in str(bad.error) and bad.iterations < 20

    real = encoder.Training
    monkeypatch.setattr(encoder, "Training", lambda model, y, uv, lmbda, *a, **k: real(model, y, uv, float("nan") if lmbda > 1e-2 else lmbda, *a, **k))
    with pytest.raises(CodecLabError, match="lmbda 0.03: training diverged"):
        encoder.encode_clip_points(clip, [(tmp_path / "a.clv", 1e-3), (tmp_path / "b.clv", 3e-2)], preset=preset)
    assert (tmp_path / "a.clv").stat().st_size > 0 and not (tmp_path / "b.clv").exists()


def test_intra_first_trains_the_intra_frame_alone_then_keeps_it(monkeypatch, tmp_path):
    """Preset.intra_first with intra_frozen: frame 0 trains first as an all-intra model at lambda / 4, for
    intra_iteration_factor x the iterations and that share of a time cap; the video model
    then starts from its synthesis, ARM and rounded latents, keeps frame 0's latents and the synthesis
    as they are, trains the rest (and the ARM), and the file decodes to the encoder's reconstruction."""
    import numpy as np

    from codec_lab.codec import encoder
    from codec_lab.codec.decoder import decode_file

    stage_one, frozen = [], []
    real_training, real_freeze = encoder.Training, LatentModel.take_intra

    def training(model, y, uv, lmbda, preset, **k):
        if not preset.config.inter:  # the first stage's all-intra model
            stage_one.append((y.shape[0], lmbda, preset.iterations, k["max_seconds"]))
        return real_training(model, y, uv, lmbda, preset, **k)

    monkeypatch.setattr(encoder, "Training", training)

    def freeze(self, trained, freeze_latents=True):
        real_freeze(self, trained, freeze_latents)
        frozen.append((self, [lat.detach().clone() for lat in self.latents], [p.detach().clone() for p in self.synth.parameters()],
                       [p.detach().clone() for p in self.arm.parameters()]))

    monkeypatch.setattr(LatentModel, "take_intra", freeze)
    preset = replace(with_prediction(replace(PRESETS["test"], iterations=20), "motion", 2, True), intra_first=True, intra_iteration_factor=2,
                     intra_frozen=True)
    result = encoder.encode_clip(synthetic_clip(frames=3, height=16, width=16), tmp_path / "f.clv", lmbda=1e-3, preset=preset,
                                 max_seconds=1000)
    # frame 0 alone (2 is predicted from it), at lambda / 4, 40 iterations: 40 / (40 + 3 x 20) of the cap (less the motion search's)
    assert stage_one == [(1, pytest.approx(0.25e-3), 40, pytest.approx(400, rel=0.01))]
    model, latents, synth, arm = frozen[0]
    assert all(torch.equal(now[0], then[0]) and torch.equal(now[0], torch.round(now[0])) for now, then in zip(model.latents, latents))
    assert any(not torch.equal(now[1:], then[1:]) for now, then in zip(model.latents, latents))  # the P-frames trained
    assert all(torch.equal(p, q) for p, q in zip(model.synth.parameters(), synth))
    assert any(not torch.equal(p, q) for p, q in zip(model.arm.parameters(), arm))
    decoded = decode_file(result.path).clip
    assert all(np.array_equal(getattr(decoded, p), getattr(result.reconstruction, p)) for p in "yuv")


def test_intra_latents_not_frozen_train_on_from_the_first_stage(monkeypatch, tmp_path):
    """Preset.intra_frozen off (the default): the video model starts from the first stage's rounded intra latents
    (and its synthesis, which stays as it is) and trains them on with the rest, without the warm-up
    that an untrained intra frame gets; the file still decodes to the encoder's reconstruction."""
    import numpy as np

    from codec_lab.codec import encoder
    from codec_lab.codec.decoder import decode_file
    from codec_lab.codec.training import TrainStep

    taken, warmups = [], set()
    real_freeze, real_step = LatentModel.take_intra, TrainStep.__call__

    def freeze(self, trained, freeze_latents=True):
        real_freeze(self, trained, freeze_latents)
        if self.inter is not None:
            taken.append((self, [lat[0].detach().clone() for lat in self.latents], [p.detach().clone() for p in self.synth.parameters()]))

    def step(self, noise, warmup):
        if self.model.inter is not None:
            warmups.add(warmup)
        return real_step(self, noise, warmup)

    monkeypatch.setattr(LatentModel, "take_intra", freeze)
    monkeypatch.setattr(TrainStep, "__call__", step)
    preset = replace(with_prediction(replace(PRESETS["test"], iterations=20), "motion", 2, True), intra_first=True, intra_frozen=False)
    result = encoder.encode_clip(synthetic_clip(frames=3, height=16, width=16), tmp_path / "f.clv", lmbda=1e-3, preset=preset)
    (model, first, synth), = taken
    assert all(torch.equal(lat, torch.round(lat)) for lat in first)  # started from the first stage's rounded latents
    assert model.frozen is None and any(not torch.equal(now[0], then) for now, then in zip(model.latents, first))
    assert all(torch.equal(p, q) for p, q in zip(model.synth.parameters(), synth))
    assert warmups == {False}
    decoded = decode_file(result.path).clip
    assert all(np.array_equal(getattr(decoded, p), getattr(result.reconstruction, p)) for p in "yuv")


def test_psnr_distortion_has_the_value_of_mse_and_the_gradient_of_mean_psnr():
    """Preset.distortion "psnr": the loss's distortion keeps the clip's weighted MSE as its value (so a
    lambda means about what it did), and its gradient is that of the metric the BD-rate reads, the mean
    over frames of (6 PSNR-Y + PSNR-U + PSNR-V) / 8, up to a positive scale: a frame already good
    counts more per unit of MSE than a poor one."""
    from codec_lab.codec.training import YUV_WEIGHTS, _distortion

    gen = torch.Generator().manual_seed(0)
    y, uv = torch.rand(3, 8, 8, generator=gen), torch.rand(3, 2, 4, 4, generator=gen)
    noise = torch.tensor([0.02, 0.1, 0.3])  # frames of very different quality
    y_hat = (y + noise[:, None, None] * torch.randn(3, 8, 8, generator=gen)).requires_grad_()
    uv_hat = (uv + 0.05 * torch.randn(3, 2, 4, 4, generator=gen)).requires_grad_()
    mse = _distortion(y_hat, uv_hat, y, uv)
    psnr_kind = _distortion(y_hat, uv_hat, y, uv, kind="psnr")
    assert psnr_kind.item() == pytest.approx(mse.item(), rel=1e-6)
    (g_y, g_uv) = torch.autograd.grad(psnr_kind, (y_hat, uv_hat))
    frame_y = ((y_hat - y) ** 2).mean(dim=(1, 2))
    frame_uv = ((uv_hat - uv) ** 2).mean(dim=(2, 3))
    log_metric = (YUV_WEIGHTS[0] * frame_y.log() + YUV_WEIGHTS[1] * frame_uv[:, 0].log() + YUV_WEIGHTS[2] * frame_uv[:, 1].log()).mean()
    (m_y, m_uv) = torch.autograd.grad(log_metric, (y_hat, uv_hat))
    scale = mse.item()  # d(plain * log m) = plain * dm / m
    assert torch.allclose(g_y, scale * m_y, rtol=1e-4, atol=1e-9) and torch.allclose(g_uv, scale * m_uv, rtol=1e-4, atol=1e-9)
    # the plain MSE's gradient is not that: the poorest frame pulls hardest there
    (p_y,) = torch.autograd.grad(mse, y_hat)
    assert not torch.allclose(p_y, scale * m_y, rtol=1e-2)
