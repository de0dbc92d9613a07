"""Sharp interpolation (format version 9): quarter-pixel vectors, 6-tap luma phase planes."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codec_lab.codec import bitstream, motion, motion_search
from codec_lab.codec.decoder import decode_bytes
from codec_lab.codec.encoder import encode_clip
from codec_lab.codec.model import CodecConfig, config_from_header
from codec_lab.codec.motion_search import (
    _OverlappedPrediction,
    estimate_field,
    refine_overlapped,
    whole_limit,
)
from codec_lab.codec.presets import PRESETS, with_prediction
from codec_lab.codec.training import _compensate_frames, _stack_taps
from codec_lab.errors import BitstreamError
from tests.conftest import synthetic_clip

torch.set_num_threads(1)
SHARP = replace(PRESETS["test"], iterations=10, motion_blocks=(8,), motion_overlap=True, motion_sharp=True)


def _sharp_sample(ref: np.ndarray, y4: int, x4: int) -> int:
    """The reference at quarter position (y4, x4) written out: the 6x6 outer product of the phases'
    kernels over edge-clamped samples, rounded and clipped to 8 bits."""
    h, w = ref.shape
    iy, fy = divmod(y4, 4)
    ix, fx = divmod(x4, 4)
    ky, kx = motion.SHARP_KERNELS[fy], motion.SHARP_KERNELS[fx]
    total = sum(ky[a] * kx[b] * int(ref[min(max(iy - 2 + a, 0), h - 1), min(max(ix - 2 + b, 0), w - 1)])
                for a in range(6) for b in range(6))
    return min(max((total + 2048) // 4096, 0), 255)


def test_the_kernels_sum_to_64_and_the_half_phase_is_h264s():
    assert all(sum(k) == 64 for k in motion.SHARP_KERNELS)
    assert motion.SHARP_KERNELS[2] == tuple(2 * t for t in (1, -5, 20, 20, -5, 1))
    assert motion.SHARP_KERNELS[1] == tuple(reversed(motion.SHARP_KERNELS[3]))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_plain_sharp_prediction_reads_the_filtered_reference(h, w, seed):
    """Every vector, far past the edges included, reads exactly the written-out filter."""
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, (h, w))
    field = rng.integers(-48, 49, (h, w, 2))  # one vector a sample: 1x1 blocks
    pred = motion.compensate(torch.from_numpy(ref).double(), motion.plane_taps(torch.from_numpy(field), 1, h, w, 1, sharp=True))
    expected = [[_sharp_sample(ref, 4 * y + field[y, x, 0], 4 * x + field[y, x, 1]) for x in range(w)] for y in range(h)]
    assert np.array_equal(pred.numpy(), np.array(expected))


def test_whole_pixel_sharp_vectors_predict_as_bilinear_ones_do():
    """At whole pixels both filters copy: overlapped sharp fields (4x the units) give the bilinear
    ones' frames, so the overlap weights are applied alike on phase samples; quarter vectors differ."""
    rng = np.random.default_rng(1)
    ref = torch.from_numpy(rng.integers(0, 256, (40, 56))).double()
    field = np.zeros((5, 7, 2), np.int64)
    field[1:4, 2:5] = rng.integers(-3, 4, (3, 3, 2))
    for depth in (0, 1):
        half = motion.predict(ref, 2 * field, 8, 1, overlap=True, depth=depth)
        quarter = motion.predict(ref, 4 * field, 8, 1, overlap=True, depth=depth, sharp=True)
        assert torch.equal(half, quarter)
    assert not torch.equal(motion.predict(ref, 4 * field + 1, 8, 1, sharp=True), motion.predict(ref, 2 * field + 1, 8, 1))


def test_chroma_stays_bilinear_in_eighths():
    rng = np.random.default_rng(2)
    field = rng.integers(-20, 21, (3, 4, 2))
    sharp = motion.plane_taps(torch.from_numpy(field), 8, 12, 16, 2, sharp=True)
    assert not sharp.phases and sharp.norm == 64 and sharp.index.shape[0] == 4
    # a quarter-pel vector v moves chroma by v/8: the bilinear chroma of a half-pel file holding 2v at twice the precision
    eighths = motion._bilinear(torch.from_numpy(field)[torch.arange(12)[:, None] // 4, torch.arange(16)[None, :] // 4], 8,
                               torch.arange(12)[:, None], torch.arange(16)[None, :], 12, 16)
    assert torch.equal(sharp.index, eighths[0].reshape(4, -1)) and torch.equal(sharp.weight, eighths[1].reshape(4, -1).double())


def test_training_prediction_equals_the_decoders_with_stacked_frames():
    """float32 phase planes with straight-through gradients, two frames' taps stacked as training
    batches them: the float64 decoder's values, frame by frame, and a gradient reaches the references."""
    rng = np.random.default_rng(3)
    h, w = 24, 32
    refs = torch.from_numpy(rng.integers(0, 256, (2, h, w))).float().requires_grad_()
    fields = [rng.integers(-30, 31, (3, 4, 2)) for _ in range(2)]
    taps = [motion.plane_taps(torch.from_numpy(f), 8, h, w, 1, torch.float32, overlap=True, sharp=True) for f in fields]
    out = _compensate_frames(refs, _stack_taps(taps))
    for b, field in enumerate(fields):
        decoder = motion.predict(refs[b].detach().double(), field, 8, 1, overlap=True, sharp=True)
        assert torch.equal(out[b].detach().double(), decoder)
    out.sum().backward()
    assert refs.grad.abs().sum() > 0


def test_the_search_predictor_equals_the_decoder():
    rng = np.random.default_rng(4)
    ref = rng.integers(0, 256, (40, 48))
    field = rng.integers(-4 * whole_limit(True), 4 * whole_limit(True) + 1, (5, 6, 2))
    fast = _OverlappedPrediction(ref, 8, sharp=True)(field)
    assert np.array_equal(fast, motion.predict(torch.from_numpy(ref).double(), field, 8, 1, overlap=True, sharp=True).numpy())


def _quarter_shifted(shift: int, frames: int = 2) -> np.ndarray:
    """A smooth random picture 48x64 moving by `shift` quarter pixels to the right a frame."""
    rng = np.random.default_rng(5)
    fine = torch.from_numpy(rng.uniform(0, 255, (1, 1, 24, 40)))
    big = torch.nn.functional.interpolate(fine, scale_factor=8, mode="bicubic", align_corners=False)[0, 0].numpy()  # 192x320
    moved = [big[::4, 32 - t * shift:32 - t * shift + 256:4] for t in range(frames)]
    return np.clip(np.rint(np.stack(moved)), 0, 255).astype(np.uint8)


def test_the_search_finds_quarter_pixel_motion_and_predicts_it_better():
    y = _quarter_shifted(1)
    cur, ref = y[1].astype(np.int64), y[0]
    sharp = estimate_field(ref, cur, 16, sharp=True)
    half = estimate_field(ref, cur, 16)
    inner = sharp[1:-1, 1:-1]
    assert (inner[..., 0] == 0).all() and (inner[..., 1] == -1).all()  # a quarter pixel to the left, in quarter pixels

    def err(field, sharp_):
        pred = motion.predict(torch.from_numpy(ref.astype(np.float64)), field, 16, 1, sharp=sharp_).numpy()
        return np.mean((pred - cur)[16:-16, 16:-16] ** 2)

    assert err(sharp, True) < 0.5 * err(half, False)
    refined = refine_overlapped(ref, cur, sharp, 16, 16.0, sharp=True)
    assert np.array_equal(refined[1:-1, 1:-1], inner)  # already the best: the refinement keeps it


def test_sharp_vectors_stay_codable():
    """Quarter pixels halve the reach: whole vectors within +-15 pixels, so a difference stays codable."""
    assert whole_limit(True) == 15 and whole_limit(False) == motion_search.WHOLE_LIMIT == 31
    rng = np.random.default_rng(6)
    ref = rng.integers(0, 256, (48, 64)).astype(np.uint8)
    cur = np.roll(ref, (-25, 30), (0, 1))  # further than the search may go
    field = estimate_field(ref, cur, 8, search=28, sharp=True)
    assert np.abs(field).max() <= 4 * 15 + 3
    assert motion.decode_fields(motion.encode_fields([field]), 1, field.shape[:2])[0].tolist() == field.tolist()


@pytest.fixture(scope="module")
def sharp_file(tmp_path_factory):
    """Three frames moving 3/4 pixel a frame: vectors the 6-tap phases serve."""
    clip = replace(synthetic_clip(frames=3, height=48, width=64), y=_quarter_shifted(3, 3))
    path = tmp_path_factory.mktemp("sharp") / "s.clv"
    result = encode_clip(clip, path, lmbda=1e-3, preset=with_prediction(SHARP, "motion"))
    return result, path


def test_a_sharp_file_decodes_to_the_encoders_frames_in_another_process(sharp_file, tmp_path):
    """The CLI's decode (a separate process) gives the encoder's reconstruction; the flag matters:
    the same file read as half-pixel bilinear gives other frames."""
    from codec_lab.video import read_clip

    result, path = sharp_file
    data = path.read_bytes()
    parsed = bitstream.parse_file(data)
    assert parsed.header.motion_sharp and result.config.motion_sharp and parsed.version == bitstream.VERSION
    cfg = config_from_header(parsed.header)
    fields = motion.decode_fields(parsed.motion, len(cfg.inter_frames(3)), motion.grid(48, 64, cfg.motion_block))
    assert any((f % 4 != 0).any() for f in fields)  # fractional: the phases are used, not only whole-pixel copies
    out = tmp_path / "r.y4m"
    subprocess.run([sys.executable, "-m", "codec_lab.cli", "decode", str(path), "-o", str(out)], check=True, capture_output=True)
    decoded = read_clip(out)
    assert all(np.array_equal(getattr(decoded, p), getattr(result.reconstruction, p)) for p in "yuv")
    blunt = bitstream.write_file(replace(parsed.header, motion_sharp=False), parsed.weights, parsed.latents, parsed.motion)
    other = decode_bytes(blunt).clip
    assert not np.array_equal(other.y[1:], decoded.y[1:])


def test_a_version_8_motion_file_decodes_as_before(tmp_path):
    """Version 8 lacks the sharp flag: its motion files decode to the frames they always did."""
    path = tmp_path / "m.clv"
    encode_clip(synthetic_clip(frames=3, height=48, width=64), path, lmbda=1e-3,
                preset=with_prediction(replace(SHARP, motion_sharp=False), "motion"))
    parsed = bitstream.parse_file(path.read_bytes())
    body = bitstream.pack_header(parsed.header)[:-2]  # the sharp and bidirectional flags are the header's last two bytes
    old = bitstream.MAGIC + struct.pack(">BH", 8, len(body)) + body
    for section in (parsed.weights, parsed.motion, parsed.latents):
        old += struct.pack(">I", len(section)) + section
    old += struct.pack(">I", zlib.crc32(old) & 0xFFFFFFFF)
    assert bitstream.parse_file(old).version == 8 and parsed.header.motion_overlap
    a, b = decode_bytes(old).clip, decode_bytes(path.read_bytes()).clip
    assert all(np.array_equal(getattr(a, p), getattr(b, p)) for p in "yuv")


@pytest.mark.parametrize("header, message", [
    ({"motion_sharp": 2}, "sharp interpolation flag 2"),
    ({"motion_sharp": 1, "motion_block": 0, "motion_overlap": 0}, "sharp interpolation without a motion block"),
])
def test_a_bad_sharp_flag_is_refused(sharp_file, header, message):
    data = sharp_file[1].read_bytes()
    parsed = bitstream.parse_file(data)
    with pytest.raises(BitstreamError, match=message):
        decode_bytes(bitstream.write_file(replace(parsed.header, **header), parsed.weights, parsed.latents, parsed.motion))


def test_sharp_without_motion_is_refused_when_configured():
    with pytest.raises(ValueError, match="sharp interpolation needs a motion block"):
        CodecConfig(motion_sharp=True)
