"""Block motion of `semantic_latent` inter frames: compensation, estimation, the motion section, hostile files."""

from __future__ import annotations

import struct
from dataclasses import replace

import numpy as np
import pytest
import torch

from codec_lab.codec import bitstream, entropy, motion, motion_search
from codec_lab.codec.decoder import decode_bytes
from codec_lab.codec.encoder import encode_clip
from codec_lab.codec.model import (
    decoded_value,
    dequantize,
    level_shapes,
    pixel_levels,
    predicted_pixels,
    previous_slice,
    reconstruct,
    synth_param_shapes,
)
from codec_lab.codec.motion_search import (
    FAR_SEARCH_RANGE,
    SEARCH_RANGE,
    choose_motion,
    estimate_field,
    estimate_motion,
)
from codec_lab.codec.presets import PRESETS, with_prediction
from codec_lab.codec.training import _ste_levels, _ste_prediction
from codec_lab.errors import BitstreamError
from tests.conftest import synthetic_clip

torch.set_num_threads(1)
TEST = replace(PRESETS["test"], iterations=10)


def _field(by: int, bx: int, vector: tuple[int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(vector, np.int64), (by, bx, 2)).copy()


def _bilinear(ref: np.ndarray, y: int, x: int, vy: int, vx: int, precision: int) -> int:
    """One predicted sample, written out independently of motion.py: the 4 neighbours, edges repeated."""
    h, w = ref.shape
    py, px = precision * y + vy, precision * x + vx
    iy, ix = py // precision, px // precision
    fy, fx = py - iy * precision, px - ix * precision
    at = lambda r, c: int(ref[min(max(r, 0), h - 1), min(max(c, 0), w - 1)])  # noqa: E731
    total = ((precision - fy) * (precision - fx) * at(iy, ix) + (precision - fy) * fx * at(iy, ix + 1)
             + fy * (precision - fx) * at(iy + 1, ix) + fy * fx * at(iy + 1, ix + 1))
    return (total + precision * precision // 2) // (precision * precision)


def test_zero_motion_is_a_copy_and_whole_pixel_motion_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (16, 24)).astype(np.float64)
    zero_y, zero_uv = motion.frame_taps(_field(2, 3, (0, 0)), 8, 16, 24)
    assert np.array_equal(motion.compensate(torch.from_numpy(ref), zero_y).numpy(), ref)
    taps, _ = motion.frame_taps(_field(2, 3, (2 * 3, -2 * 2)), 8, 16, 24)  # 3 rows down, 2 columns left
    got = motion.compensate(torch.from_numpy(ref), taps).numpy()
    assert np.array_equal(got[:13, 2:], ref[3:, :22])
    assert np.array_equal(got[13:, 2:], np.repeat(ref[15:16, :22], 3, axis=0))  # rows past the edge repeat the last one


@pytest.mark.parametrize("vector", [(1, 0), (0, -1), (3, 5), (-7, 2), (-41, 33)])
def test_fractional_motion_matches_an_independent_bilinear(vector):
    rng = np.random.default_rng(1)
    ref_y = rng.integers(0, 256, (16, 16))
    ref_uv = rng.integers(0, 256, (2, 8, 8))
    field = np.zeros((2, 2, 2), np.int64)
    field[1, 0] = vector  # one block moves, the others stay
    taps_y, taps_uv = motion.frame_taps(field, 8, 16, 16)
    got_y = motion.compensate(torch.from_numpy(ref_y.astype(np.float64)), taps_y).numpy()
    got_uv = motion.compensate(torch.from_numpy(ref_uv.astype(np.float64)), taps_uv).numpy()
    for y in range(16):
        for x in range(16):
            vy, vx = field[y // 8, x // 8]
            assert got_y[y, x] == _bilinear(ref_y, y, x, vy, vx, 2)
    for c in range(2):
        for y in range(8):
            for x in range(8):
                vy, vx = field[y // 4, x // 4]  # chroma: the luma vector, in quarter chroma pixels
                assert got_uv[c, y, x] == _bilinear(ref_uv[c], y, x, vy, vx, 4)


def test_estimation_finds_a_known_pan():
    ref = np.random.default_rng(4).integers(0, 256, (48, 64)).astype(np.uint8)  # texture everywhere: one true answer
    cur = np.pad(ref, 8, mode="edge")[8 + 2 : 8 + 2 + 48, 8 - 3 : 8 - 3 + 64]  # content moved 2 up, 3 right
    field = estimate_field(ref, cur, 8)
    assert (field[1:-1, 1:-1] == (4, -6)).all()  # in half pixels
    half = motion.compensate(torch.from_numpy(ref.astype(np.float64)), motion.frame_taps(_field(6, 8, (3, 0)), 8, 48, 64)[0]).numpy()
    assert (estimate_field(ref, half.astype(np.uint8), 8)[1:-1, 1:-1] == (3, 0)).all()  # a half-pixel move is found as such


@pytest.mark.parametrize("by, bx", [(1, 5), (5, 1), (3, 4), (9, 13)])
def test_wavefront_choice_is_the_raster_order_choice(by, bx):
    """motion_search._choose picks a whole wavefront at once (motion.median_predictors); each block
    must get what choosing block by block in raster order, with the decoder's own predictor, gives
    (ties included)."""
    from codec_lab.codec import motion_search

    rng = np.random.default_rng(by * 100 + bx)
    sad = rng.integers(0, 60, (25, by, bx)).astype(np.float32)  # small SADs: the vector bits decide often
    candidates = rng.integers(-4, 5, (25, by, bx, 2))
    expected = np.zeros((by, bx, 2), np.int64)
    for i in range(by):
        for j in range(bx):
            rows = [[tuple(v) for v in row] for row in expected.tolist()]
            predictor = np.array(motion._predictor(rows, i, j, bx))
            cost = sad[:, i, j] + 16.0 * motion_search._vector_bits(candidates[:, i, j] - predictor)
            expected[i, j] = candidates[int(np.argmin(cost)), i, j]
    assert np.array_equal(motion_search._choose(sad, candidates, 16.0), expected)


@pytest.mark.parametrize("block", [8, 16])
def test_a_large_frame_is_searched_coarse_to_fine_and_farther(block):
    """Frames over COARSE_PIXELS are searched on frames 4x smaller first (~2x faster at 1760x1440,
    prediction within 0.4 dB of the full search on Foreman CIF scaled up), over twice the range."""
    from codec_lab.codec import motion_search

    h, w = 560, 800
    assert h * w > motion_search.COARSE_PIXELS
    rng = np.random.default_rng(5)
    coarse = np.repeat(np.repeat(rng.integers(0, 200, (h // 8, w // 8)), 8, 0), 8, 1)  # detail at every scale, as in
    ref = (coarse + rng.integers(0, 56, (h, w))).astype(np.uint8)  # pictures (plain noise averages away when shrunk)
    dy, dx = 11, -23  # beyond the full search's +-16
    cur = np.pad(ref, 32, mode="edge")[32 + dy : 32 + dy + h, 32 + dx : 32 + dx + w]
    field = estimate_field(ref, cur, block)
    margin = 32 // block + 1  # blocks whose source lies inside the frame
    found = (field[margin:-margin, margin:-margin] == (2 * dy, 2 * dx)).all(-1)
    assert found.mean() > 0.99  # (a handful of blocks settle half a pixel off: ties of a repetitive texture)


def test_a_scene_cut_in_a_large_frame_gives_a_codable_field():
    """Two unrelated pictures: the coarse-to-fine search's vectors roam its whole range, and their
    differences from the median predictor must still fit the motion section (at most entropy.RMAX)."""
    rng = np.random.default_rng(6)
    ref, cur = (np.repeat(np.repeat(rng.integers(0, 256, (72, 100)), 8, 0), 8, 1).astype(np.uint8) for _ in range(2))
    for block in (8, 16):
        field = estimate_field(ref, cur, block)
        assert np.abs(motion.differences(field)).max() <= entropy.RMAX
        assert motion.field_bits([field]) > 0
        assert len(motion.encode_fields([field])) > 0


def test_block_size_follows_the_rate_trade_off():
    """Every 8x8 block moves its own way: 8x8 vectors predict it exactly but cost 4 times the vectors."""
    rng = np.random.default_rng(5)
    ref = rng.integers(0, 256, (48, 64)).astype(np.uint8)
    moves = rng.integers(-3, 4, (6, 8, 2))
    padded = np.pad(ref, 3, mode="edge")
    cur = np.empty_like(ref)
    for i in range(6):
        for j in range(8):
            dy, dx = moves[i, j]
            cur[8 * i : 8 * i + 8, 8 * j : 8 * j + 8] = padded[3 + dy + 8 * i : 3 + dy + 8 * i + 8, 3 + dx + 8 * j : 3 + dx + 8 * j + 8]
    y = np.stack([ref, cur])
    small, fields = choose_motion(y, (8, 16), 1e-6, [1])  # bits nearly free: the field that predicts best
    assert small == (8, 0) and np.array_equal(fields[0], 2 * moves)
    large, _ = choose_motion(y, (8, 16), 100.0, [1])  # bits dear: the field with fewer vectors
    assert large == (16, 0)


def test_each_frame_gets_the_smoothness_that_suits_it():
    """Two predicted frames, each moved its own way, and two candidate sets of fields (two
    smoothness values), each exact for one frame and still for the other: the choice takes each
    frame's exact field, which costs less than either set."""
    rng = np.random.default_rng(6)
    ref = rng.integers(0, 256, (32, 32)).astype(np.uint8)
    exact = [np.full((4, 4, 2), v, np.int64) for v in ((2, 4), (-4, 2))]  # half pixels: whole-pixel moves
    y = np.stack([ref] + [motion_search._compensated(ref, f, 8).astype(np.uint8) for f in exact])
    still = np.zeros((4, 4, 2), np.int64)
    per_smoothness = [[exact[0], still], [still, exact[1]]]
    chosen, total = motion_search.per_frame_smoothness(y, per_smoothness, 8, 1e-3, [1, 2], references=[0, 0])
    assert all(np.array_equal(c, e) for c, e in zip(chosen, exact))
    cost = [motion_search.prediction_cost(y, fields, 8, 1e-3, [1, 2], references=[0, 0]) for fields in (chosen, *per_smoothness)]
    assert total == pytest.approx(cost[0], rel=1e-12) and cost[0] < min(cost[1:])


def test_fields_round_trip_through_the_motion_section():
    rng = np.random.default_rng(2)
    smooth = _field(5, 7, (6, -4))
    smooth[2, 3] = (7, -4)
    rough = rng.integers(-40, 41, (5, 7, 2))
    section = motion.encode_fields([smooth, rough, np.zeros((5, 7, 2), np.int64)])
    back = motion.decode_fields(section, 3, (5, 7))
    assert all(np.array_equal(a, b) for a, b in zip(back, [smooth, rough, np.zeros((5, 7, 2))]))
    assert len(motion.encode_fields([smooth])) < len(motion.encode_fields([rough])) / 4  # a smooth field codes in few bits


def test_the_training_prediction_is_the_decoders():
    """Training's straight-through prediction has exactly the values the decoder computes."""
    cfg = with_prediction(TEST, "motion").config
    torch.manual_seed(3)
    rng = np.random.default_rng(3)
    prev_y, prev_uv = torch.rand(1, 16, 16, dtype=torch.float32), torch.rand(1, 2, 8, 8, dtype=torch.float32)
    field = torch.from_numpy(rng.integers(-9, 10, (2, 2, 2)))
    pred_y, pred_uv = _ste_prediction(_ste_levels(prev_y, prev_uv, motion.frame_taps(field, cfg.motion_block, 16, 16, dtype=torch.float32)))
    pixels = lambda v: pixel_levels(v).double()  # noqa: E731 (the 8-bit references both sides hold: float64 rounding of a float32 tie differed)
    ref_y, ref_uv = predicted_pixels(cfg, pixels(prev_y), pixels(prev_uv), field)
    assert torch.equal(pred_y.double(), decoded_value(ref_y / 255.0))
    assert torch.equal(pred_uv.double(), decoded_value(ref_uv / 255.0))


def test_an_inter_frame_with_no_correction_is_the_moved_previous_frame():
    cfg = replace(with_prediction(TEST, "motion").config, motion_block=8)
    shapes = level_shapes(cfg, 2, 16, 16)
    gen = torch.Generator().manual_seed(0)
    levels = [torch.randint(-3, 4, s, generator=gen).to(torch.float64) for s in shapes]
    synth = dequantize([torch.randint(-200, 200, s, generator=gen) for s in synth_param_shapes(cfg)], 8)
    zero = dequantize([torch.zeros(s, dtype=torch.int64) for s in synth_param_shapes(cfg, inter=True)], 8)
    field = _field(2, 2, (4, -4))  # frame 1 shows frame 0 moved 2 rows up and 2 columns right
    y, u, v = reconstruct(cfg, levels, synth, 2, 16, 16, zero, [field])
    assert np.array_equal(y[1][:14, 2:], y[0][2:, :14])
    assert np.array_equal(u[1][:7, 1:], u[0][1:, :7]) and np.array_equal(v[1][:7, 1:], v[0][1:, :7])  # chroma: half that


@pytest.mark.parametrize(
    "period, strides, expected",
    [
        (0, (1,), [None, 0, 1, 2, 3, 4]),  # frame 0 intra, then a chain: as before version 4
        (4, (1,), [None, 0, 1, 2, 0, 4]),  # intra frame 4 sees intra frame 0, not predicted frame 3
        (4, (2,), [None, 0, 0]),  # a slice per 2 frames: slice 2 (frame 4) is intra, slice 1 (frame 2) is not
        (-4, (1,), [None, 0, 1, 2, 3, 4]),  # key prediction (period 4): only frame 0 intra, key frame 4 sees frame 3
    ],
)
def test_the_arm_sees_the_previous_slice_of_the_same_kind(period, strides, expected):
    keyed = period < 0  # a negative period here: that period with key prediction
    cfg = with_prediction(TEST, "motion", intra_period=abs(period), key_prediction=keyed).config
    cfg = replace(cfg, n_levels=1, temporal_strides=strides)
    assert [previous_slice(cfg, 0, n) for n in range(len(expected))] == expected
    all_intra = replace(cfg, inter_synth=(), motion_block=0, intra_period=0, key_prediction=False)
    assert [previous_slice(all_intra, 0, n) for n in range(4)] == [None, 0, 1, 2]


@pytest.mark.parametrize(
    "period, key_prediction, predicted, changed_by_1, changed_by_0",
    [
        (0, False, [1, 2, 3], [1, 2, 3], [0, 1, 2, 3]),  # one chain
        (2, False, [1, 3], [1], [0, 1]),  # frame 2 is intra: the chain restarts there
        (2, True, [1, 2, 3], [1], [0, 1, 2, 3]),  # frame 2 is predicted from frame 0, not from frame 1
    ],
)
def test_which_frames_a_frame_reaches(period, key_prediction, predicted, changed_by_1, changed_by_0):
    """What changing one frame's latents changes in the decoded clip: the frames predicted from it, directly
    or down a chain. With an intra period of 2, frame 2 is decoded from its own latents; with key
    prediction it is predicted from key frame 0, and frame 3 from it."""
    cfg = replace(with_prediction(TEST, "motion", intra_period=period, key_prediction=key_prediction).config, motion_block=8)
    assert cfg.inter_frames(4) == predicted
    assert [cfg.references(t, 4) for t in predicted] == [(t - 2,) if key_prediction and t == 2 else (t - 1,) for t in predicted]
    shapes = level_shapes(cfg, 4, 16, 16)
    gen = torch.Generator().manual_seed(0)
    levels = [torch.randint(-3, 4, s, generator=gen).to(torch.float64) for s in shapes]
    synth = dequantize([torch.randint(-200, 200, s, generator=gen) for s in synth_param_shapes(cfg)], 8)
    inter = dequantize([torch.randint(-200, 200, s, generator=gen) for s in synth_param_shapes(cfg, inter=True)], 8)
    fields = [_field(2, 2, (0, 0))] * len(predicted)
    before = reconstruct(cfg, levels, synth, 4, 16, 16, inter, fields)
    for frame, expected in ((1, changed_by_1), (0, changed_by_0)):
        moved = [level.clone() for level in levels]
        for level in moved:
            level[frame] += 2
        after = reconstruct(cfg, moved, synth, 4, 16, 16, inter, fields)
        assert [t for t in range(4) if not np.array_equal(before[0][t], after[0][t])] == expected


def test_a_key_frame_is_searched_on_the_key_frame_before_and_farther():
    """Key prediction: frame 2's field is searched on frame 0, within FAR_SEARCH_RANGE (a 20-pixel
    pan over two frames is found; the neighbouring frames' range, 16, could not reach it)."""
    assert SEARCH_RANGE < 20 <= FAR_SEARCH_RANGE
    base = np.random.default_rng(5).integers(0, 256, (64, 96)).astype(np.uint8)
    y = np.stack([np.pad(base, 20, mode="edge")[20 : 20 + 64, 20 - s : 20 - s + 96] for s in (0, 10, 20)])  # 10 px right a frame
    near, far = estimate_motion(y, 16, [1, 2], references=[0, 0])[0]
    assert (near[1:-1, 1:-2] == (0, -20)).all() and (far[1:-1, 1:-2] == (0, -40)).all()  # half pixels


# --------------------------------------------------------------------------- hostile motion sections


@pytest.fixture(scope="module")
def motion_file(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("mv") / "motion.clv"
    encode_clip(synthetic_clip(frames=3, height=32, width=32), path, lmbda=1e-3, preset=with_prediction(TEST, "motion"))
    return path.read_bytes()


def _with_motion(data: bytes, section: bytes, **header) -> bytes:
    parsed = bitstream.parse_file(data)
    return bitstream.write_file(replace(parsed.header, **header), parsed.weights, parsed.latents, section)


def test_a_key_prediction_file_round_trips(tmp_path, monkeypatch):
    """The encoder writes the flag, searches the key frame on its key frame, and its reconstruction is what
    the decoder makes of the file (5 frames, key frames 0, 2, 4: 0 intra, 2 from 0, 4 from 2)."""
    from codec_lab.codec import motion_search
    from codec_lab.codec.stats import file_stats

    searched = []
    search = motion_search.estimate_motion
    monkeypatch.setattr(motion_search, "estimate_motion", lambda *a, **k: searched.append(a[2:4]) or search(*a, **k))
    path = tmp_path / "key.clv"
    result = encode_clip(synthetic_clip(frames=5, height=32, width=32), path, lmbda=1e-3,
                         preset=with_prediction(TEST, "motion", intra_period=2, key_prediction=True))
    assert searched and all(s == ([1, 2, 3, 4], [0, 0, 2, 2]) for s in searched)  # frames, their references
    header = bitstream.parse_file(path.read_bytes()).header
    assert header.key_prediction and header.intra_period == 2
    decoded = decode_bytes(path.read_bytes()).clip
    assert all(np.array_equal(getattr(decoded, p), getattr(result.reconstruction, p)) for p in "yuv")
    frames = file_stats(path).frames
    assert [(f.kind, f.reference) for f in frames] == [("I", None), ("P", "0"), ("P", "0"), ("P", "2"), ("P", "2")]


def test_motion_file_header_and_section(motion_file):
    parsed = bitstream.parse_file(motion_file)
    assert parsed.header.motion_block in (8, 16) and parsed.motion
    assert len(decode_bytes(motion_file).clip.y) == 3


@pytest.mark.parametrize(
    "section, header, message",
    [
        (b"", {}, "does not fit a header with motion block"),  # motion header, no section
        (b"\x00", {}, "fewer than the 4 table ids"),
        (bytes([0, 0, 0, 200]) + b"\x00" * 8, {}, "scale id 200"),
        (bytes(4), {}, "damaged"),  # ids and no coded vectors at all
        (b"\x00" * 6, {}, "not a multiple of 4"),
        (None, {"motion_block": 12}, "motion block size 12"),
        (None, {"motion_block": 8, "inter_synth": ()}, "motion vectors without an inter synthesis"),
        (None, {"intra_period": 1, "key_prediction": False}, "0 predicted frames"),  # every frame intra, yet motion
    ],
)
def test_hostile_motion_sections(motion_file, section, header, message):
    parsed = bitstream.parse_file(motion_file)
    data = _with_motion(motion_file, parsed.motion if section is None else section, **header)
    with pytest.raises(BitstreamError, match=message):
        decode_bytes(data)


def test_vectors_beyond_the_limit_are_refused(motion_file):
    """A section whose differences add up past +-MV_MAX (each difference alone is codable)."""
    parsed = bitstream.parse_file(motion_file)
    by, bx = motion.grid(32, 32, parsed.header.motion_block)
    coder = entropy.LatentEncoder()
    ids = bytes([entropy.NS - 1] * 4)
    for _ in range(2):  # every difference +RMAX: the running vector passes MV_MAX at once on the second block
        coder.code(np.full(2 * by * bx, entropy.NS - 1), np.full(2 * by * bx, 2 * entropy.RMAX))
    with pytest.raises(BitstreamError, match="beyond"):
        decode_bytes(_with_motion(motion_file, ids + coder.finish()))


def test_a_file_without_motion_has_an_empty_motion_section(tmp_path):
    path = tmp_path / "p.clv"
    encode_clip(synthetic_clip(frames=2, height=32, width=32), path, lmbda=1e-3, preset=with_prediction(TEST, "previous"))
    data = path.read_bytes()
    header_len = struct.unpack(">H", data[5:7])[0]
    weights_len = struct.unpack(">I", data[7 + header_len : 11 + header_len])[0]
    offset = 11 + header_len + weights_len
    assert struct.unpack(">I", data[offset : offset + 4])[0] == 0


# --------------------------------------------------------------------------- training of inter frames


@pytest.mark.parametrize("period, intra, idle", [(0, [0], [1, 2, 3]), (2, [0, 2], [1, 3])])
def test_the_warmup_rate_counts_only_the_intra_frames(period, intra, idle):
    """While the intra frames train alone, the idle inter latents must not be charged (the ARM would learn
    they are all zero)."""
    from codec_lab.codec.training import LatentModel

    cfg = with_prediction(TEST, "motion", intra_period=period, key_prediction=False).config
    shapes = level_shapes(cfg, 4, 16, 16)
    assert [t for t in range(4) if cfg.is_intra(t)] == intra
    model = LatentModel(cfg, shapes, dict.fromkeys(cfg.inter_frames(4), np.zeros((2, 2, 2), np.int64)))
    gen = torch.Generator().manual_seed(0)
    qs = [torch.randint(-3, 4, s, generator=gen).float() for s in shapes]
    changed = [q.clone() for q in qs]
    for q in changed:
        q[idle] += 5
    with torch.no_grad():
        assert model.rate_bits(changed, intra) == model.rate_bits(qs, intra)
        assert model.rate_bits(changed) != model.rate_bits(qs)


def test_an_untrained_inter_synthesis_takes_a_latent_step_as_a_fine_correction():
    """One latent step must start as a small fraction of an 8-bit level (about one level at torch's default
    initialisation: the inter latents then stayed at zero, see model.INTER_LATENT_GAIN)."""
    from codec_lab.codec.model import Synthesis, synth_inputs

    cfg = with_prediction(PRESETS["fast"], "motion").config
    torch.manual_seed(0)
    net = Synthesis(cfg, inter=True)
    x = torch.full((1, synth_inputs(cfg, inter=True), 8, 8), 0.5)
    x[:, : cfg.n_levels] = 0.0
    stepped = x.clone()
    stepped[:, : cfg.n_levels] = 1.0
    with torch.no_grad():
        change = (net(stepped) - net(x)).abs().max().item() * 255
    assert 0 < change < 0.25


def test_a_block_size_the_format_cannot_hold_is_refused_when_configured():
    with pytest.raises(ValueError, match="motion block 12"):
        replace(with_prediction(TEST, "motion").config, motion_block=12)
    with pytest.raises(ValueError, match="motion block 12"):
        with_prediction(replace(TEST, motion_blocks=(12,)), "motion")


def test_compensation_gradient_is_the_same_bits_on_every_run():
    # Autograd's own backward of the tap indexing adds with atomics from several CPU threads, so
    # training with motion wrote a different file each run; this caught it within 20 runs.
    taps, _ = motion.frame_taps(np.ones((18, 22, 2), np.int64), 8, 144, 176, dtype=torch.float32)  # half-pel: 4 taps collide
    upstream = torch.rand(144, 176, generator=torch.Generator().manual_seed(0))

    def gradient(dtype=torch.float32):
        ref = torch.rand(144, 176, generator=torch.Generator().manual_seed(1), dtype=dtype).requires_grad_()
        taps_d = motion.Taps(taps.index, taps.weight.to(dtype), taps.norm, taps.shape)
        (motion.weighted_sum(ref, taps_d) * upstream.to(dtype)).sum().backward()
        return ref.grad

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        grads = [gradient() for _ in range(20)]
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(grads[0], g) for g in grads[1:])
    assert torch.allclose(grads[0].double(), gradient(torch.float64), rtol=1e-5, atol=1e-4)


def test_smoothness_follows_the_rate_trade_off():
    """A one-pixel pan of a smooth picture under noise: the SAD barely tells vectors apart, so a low
    smoothness lets the noise pick them. With bits dear the smoother field (fewer motion bytes) is chosen, with bits nearly free the
    one that predicts best, at the same block size: choose_motion weighs each of SMOOTHNESS."""
    from codec_lab.codec.motion_search import SMOOTHNESS, prediction_cost

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:96]
    smooth = 128 + 40 * np.sin(xx / 7.0) * np.cos(yy / 9.0)
    y = np.stack([smooth + rng.normal(0, 4, smooth.shape), np.roll(smooth, 1, 1) + rng.normal(0, 4, smooth.shape)])
    y = np.clip(y, 0, 255).astype(np.uint8)
    per_lam = estimate_motion(y, 16, [1], lams=SMOOTHNESS)
    bits = [motion.field_bits(fields) for fields in per_lam]
    assert bits[-1] < bits[0]  # the smoother field is cheaper ...
    costs = [prediction_cost(y, fields, 16, 1e-6, [1]) for fields in per_lam]
    assert costs[0] < costs[-1]  # ... and predicts worse
    _, cheap = choose_motion(y, (16,), 1.0, [1])
    _, exact = choose_motion(y, (16,), 1e-6, [1])
    assert motion.field_bits(cheap) == bits[-1] and motion.field_bits(exact) == bits[0]


def test_key_prediction_asked_for_where_it_cannot_apply():
    """Asked for explicitly without an intra period or inter frames: a clear error. A preset's own
    key_prediction applies only where it can (intra and single chains stay as they were)."""
    from codec_lab.errors import CodecLabError

    for prediction, period in (("intra", 8), ("motion", 0)):
        with pytest.raises(CodecLabError, match="key prediction needs"):
            with_prediction(TEST, prediction, period, key_prediction=True)
    keyed = replace(TEST, key_prediction=True)
    assert not with_prediction(keyed, "intra").config.key_prediction
    assert not with_prediction(keyed, "motion", 0).config.key_prediction
    assert with_prediction(keyed, "motion", 4).config.key_prediction
    for preset in PRESETS.values():  # the shipped default where it applies (docs/codec.md, sessions 8-9)
        assert preset.key_prediction and preset.intra_first and with_prediction(preset, "motion").config.key_prediction
