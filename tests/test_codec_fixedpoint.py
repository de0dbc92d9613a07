"""The decoder's arithmetic is exact fixed point: it matches an integer reference and does not depend on batching."""

from __future__ import annotations

import numpy as np
import torch

from codec_lab.codec import entropy
from codec_lab.codec.model import (
    ACT_CLAMP,
    ACT_FRAC,
    ARM_IN,
    CodecConfig,
    arm_fixed,
    dequantize,
    synthesis_fixed,
    table_index,
    up2x,
)

torch.set_num_threads(1)


def _int_reference_arm(features: np.ndarray, ints: list[np.ndarray], shift: int) -> np.ndarray:
    """ARM in Python integers only: activations as integers scaled by 2**ACT_FRAC."""
    x = [[int(v) for v in row] for row in features]  # features are integers: scale 2**0
    frac_in = 0
    n_layers = len(ints) // 2
    clamp = int(ACT_CLAMP) << ACT_FRAC
    for layer in range(n_layers):
        w, b = ints[2 * layer], ints[2 * layer + 1]
        out = []
        for row in x:
            acc_rows = []
            for j in range(w.shape[0]):
                acc = sum(int(w[j, i]) * row[i] for i in range(w.shape[1])) + (int(b[j]) << frac_in)
                k = frac_in + shift - ACT_FRAC  # acc has scale 2**-(frac_in + shift)
                v = (acc + (1 << (k - 1))) >> k if k > 0 else acc << -k
                v = max(-clamp, min(clamp, v))
                if layer + 1 < n_layers:
                    v = max(v, 0)
                acc_rows.append(v)
            out.append(acc_rows)
        x, frac_in = out, ACT_FRAC
    return np.array(x, dtype=np.float64) / float(1 << ACT_FRAC)


def test_arm_fixed_equals_integer_reference():
    rng = np.random.default_rng(0)
    cfg = CodecConfig(arm_hidden=12, arm_layers=2)
    dims = [ARM_IN, 12, 12, 2]
    shift = 9
    ints = []
    for a, b in zip(dims[:-1], dims[1:]):
        ints += [rng.integers(-600, 600, size=(b, a)), rng.integers(-600, 600, size=(b,))]
    feats = rng.integers(-63, 64, size=(64, ARM_IN)).astype(np.float64)
    mu, s = arm_fixed(torch.from_numpy(feats), dequantize([torch.from_numpy(t) for t in ints], shift))
    ref = _int_reference_arm(feats, ints, shift)
    assert np.array_equal(mu.numpy(), ref[:, 0]) and np.array_equal(s.numpy(), ref[:, 1])
    assert cfg.arm_layers == 2


def test_arm_is_independent_of_batching():
    rng = np.random.default_rng(1)
    ints = [torch.from_numpy(rng.integers(-300, 300, size=s)) for s in [(12, ARM_IN), (12,), (12, 12), (12,), (2, 12), (2,)]]
    params = dequantize(ints, 8)
    feats = torch.from_numpy(rng.integers(-63, 64, size=(257, ARM_IN)).astype(np.float64))
    mu, s = arm_fixed(feats, params)
    for lo, hi in [(0, 1), (3, 70), (100, 257)]:
        mu2, s2 = arm_fixed(feats[lo:hi].flip(0).contiguous(), params)
        assert torch.equal(mu2.flip(0), mu[lo:hi]) and torch.equal(s2.flip(0), s[lo:hi])


def test_synthesis_is_exact_under_reordering():
    """Splitting frames or permuting channels changes float summation order; exact arithmetic does not care."""
    rng = np.random.default_rng(2)
    cfg = CodecConfig()
    shapes = []
    c_in = cfg.n_levels
    for spec in cfg.synth:
        shapes += [(spec.out, c_in, spec.kernel, spec.kernel), (spec.out,)]
        c_in = spec.out
    params = dequantize([torch.from_numpy(rng.integers(-2000, 2000, size=s)) for s in shapes], 10)
    lat = torch.from_numpy(rng.integers(-20, 21, size=(2, cfg.n_levels, 8, 10)).astype(np.float64))
    x = up2x(up2x(lat))  # dyadic fractions, as the real upsampled latents
    out = synthesis_fixed(cfg, x, params)
    for t in range(2):
        assert torch.equal(synthesis_fixed(cfg, x[t : t + 1], params), out[t : t + 1])
    perm = torch.randperm(cfg.n_levels, generator=torch.Generator().manual_seed(0))
    permuted = [params[0][:, perm]] + params[1:]
    assert torch.equal(synthesis_fixed(cfg, x[:, perm], permuted), out)
    # every value is on the fixed-point grid
    assert torch.equal(torch.round(out * 2**ACT_FRAC), out * 2**ACT_FRAC)


def test_table_index_is_exact_and_in_range():
    mu = torch.tensor([-100.0, -0.5, 0.0, 0.03125, 62.999755859375, 100.0], dtype=torch.float64)
    s = torch.tensor([-99.0, -5.0, 0.0, 0.125, 5.0, 99.0], dtype=torch.float64)
    whole, tid = table_index(mu, s)
    assert whole.tolist() == [-63, -1, 0, 0, 62, 63]
    assert int(tid.min()) >= 0 and int(tid.max()) < entropy.N_TABLES
    assert tid[3] // entropy.NS == 0 and tid[2] % entropy.NS == 20  # log2 scale 0 -> index 20


def test_frequency_tables_are_valid_and_deterministic():
    tables = entropy.frequency_tables()
    assert tables.shape == (entropy.N_TABLES, entropy.K)
    assert np.all(tables >= 1) and np.all(tables.sum(axis=1) == entropy.TOTAL)
    # each table keeps mass off its most likely symbol (bounds the symbols a section can hold)
    assert np.all(tables.max(axis=1) <= entropy.TOTAL - entropy.RESERVE // 2)
    # built from IEEE basic operations only: a known checksum pins the exact integers on every machine
    assert int((tables * np.arange(1, entropy.K + 1)).sum() % 1_000_000_007) == CHECKSUM


def test_det_exp_is_accurate():
    x = -np.linspace(0, 50, 1001)
    assert np.max(np.abs(entropy.det_exp(x) - np.exp(x)) / np.exp(x)) < 1e-12


def test_round_trip_of_symbols_through_the_range_coder():
    rng = np.random.default_rng(3)
    tid = rng.integers(0, entropy.N_TABLES, size=500)
    sym = np.clip(entropy.RMAX + rng.laplace(0, 3, size=500).round().astype(np.int64), 0, entropy.K - 1)
    enc = entropy.LatentEncoder()
    enc.code(tid[:200], sym[:200])
    enc.code(tid[200:], sym[200:])
    dec = entropy.LatentDecoder(enc.finish())
    assert np.array_equal(dec.code(tid[:200]), sym[:200]) and np.array_equal(dec.code(tid[200:]), sym[200:])


CHECKSUM = 232591926  # pinned: a change here means files written before no longer decode


def test_the_prediction_of_an_8_bit_value_is_exact():
    """Inter frames see k/255 on the 2**-12 grid: one IEEE division, equal to the integer formula for every k."""
    from codec_lab.codec.model import decoded_value

    k = torch.arange(256, dtype=torch.int64)
    exact = torch.div(k * 8192 + 255, 510, rounding_mode="floor").to(torch.float64) / 4096
    assert torch.equal(decoded_value(k.to(torch.float64) / 255.0), exact)
    assert torch.equal(decoded_value(k.to(torch.float32) / 255.0).double(), exact)  # training's float32 chain agrees
