"""Overlapped block motion compensation (format version 8): the window, its exactness, its use end to end."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codec_lab.codec import bitstream, motion, motion_search
from codec_lab.codec.decoder import decode_bytes
from codec_lab.codec.encoder import encode_clip
from codec_lab.codec.model import CodecConfig, decoded_value, pixel_levels, predicted_pixels
from codec_lab.codec.motion_search import (
    _OverlappedPrediction,
    choose_motion,
    estimate_field,
    refine_overlapped,
)
from codec_lab.codec.presets import PRESETS, with_prediction
from codec_lab.codec.training import LatentModel, _ste_levels, _ste_prediction
from codec_lab.errors import BitstreamError
from tests.conftest import motion_as_tree, synthetic_clip

torch.set_num_threads(1)
TEST = replace(PRESETS["test"], iterations=10)


def _sum(ref: np.ndarray, y: int, x: int, vec, precision: int) -> int:
    """The unrounded bilinear sum (x precision**2) of one sample moved by vec, edges repeated."""
    h, w = ref.shape
    py, px = precision * y + int(vec[0]), precision * x + int(vec[1])
    iy, ix = py // precision, px // precision
    fy, fx = py - iy * precision, px - ix * precision
    at = lambda r, c: int(ref[min(max(r, 0), h - 1), min(max(c, 0), w - 1)])  # noqa: E731
    return ((precision - fy) * (precision - fx) * at(iy, ix) + (precision - fy) * fx * at(iy, ix + 1)
            + fy * (precision - fx) * at(iy + 1, ix) + fy * fx * at(iy + 1, ix + 1))


def _overlapped(ref: np.ndarray, field: np.ndarray, block: int, depth: int, subsample: int) -> np.ndarray:
    """The overlapped prediction written out sample by sample from `motion.tree`'s leaves (not
    leaf_layout): own vector plus the nearer vertical and horizontal neighbour past the whole block,
    each |2u + 1 - L| / 2L."""
    h, w = ref.shape
    by, bx = field.shape[:2]
    _, leaves = motion.tree((by, bx), depth, motion.canonical_split(field))
    leaf_of = {}
    for i, j, s in leaves:
        for a in range(i, min(i + s, by)):
            for b in range(j, min(j + s, bx)):
                leaf_of[a, b] = (i, j, s)
    precision, pb = motion.MV_FRAC * subsample, block // subsample
    out = np.empty((h, w), np.int64)
    for y in range(h):
        for x in range(w):
            i, j, s = leaf_of[y // pb, x // pb]
            span, u, v = s * pb, y - i * pb, x - j * pb
            ny = min(max(i - 1 if 2 * u < span else i + s, 0), by - 1)
            nx = min(max(j - 1 if 2 * v < span else j + s, 0), bx - 1)
            wy = abs(2 * u + 1 - span) / (2 * span)
            wx = abs(2 * v + 1 - span) / (2 * span)
            total = ((1 - wy - wx) * _sum(ref, y, x, field[y // pb, x // pb], precision)
                     + wy * _sum(ref, y, x, field[ny, x // pb], precision) + wx * _sum(ref, y, x, field[y // pb, nx], precision))
            out[y, x] = int(np.floor(total / precision**2 + 0.5))  # the weights are dyadic: exact in floats
    return out


def _tree_field(rng, by: int, bx: int, depth: int) -> np.ndarray:
    """A field of whole blocks of every size down to one cell."""
    field = np.broadcast_to(rng.integers(-6, 7, 2), (by, bx, 2)).copy()
    for _ in range(6):
        s = 1 << int(rng.integers(0, depth + 1))
        i, j = int(rng.integers(0, by)) // s * s, int(rng.integers(0, bx)) // s * s
        field[i:i + s, j:j + s] = rng.integers(-9, 10, 2)
    return field


@pytest.mark.parametrize("block, depth, subsample", [(4, 0, 1), (8, 0, 2), (4, 2, 1), (4, 2, 2), (8, 1, 1)])
def test_overlapped_taps_match_a_sample_by_sample_reference(block, depth, subsample):
    rng = np.random.default_rng(block + depth + subsample)
    h, w = 36 // subsample, 44 // subsample  # blocks cut by the frame's edge on both axes
    by, bx = motion.grid(36, 44, block)
    field = _tree_field(rng, by, bx, depth)
    ref = rng.integers(0, 256, (h, w))
    taps = motion.plane_taps(torch.from_numpy(field), block, h, w, subsample, overlap=True, depth=depth)
    assert taps.index.shape[0] == 12 and (taps.weight >= 0).all() and (taps.weight.sum(0) == taps.norm).all()
    got = motion.compensate(torch.from_numpy(ref).double(), taps).numpy()
    assert np.array_equal(got, _overlapped(ref, field, block, depth, subsample))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 3), st.integers(0, 2**32 - 1))
def test_leaf_layout_is_the_trees_leaves(by, bx, depth, seed):
    field = _tree_field(np.random.default_rng(seed), by, bx, depth)
    top, left, size = motion.leaf_layout(field, depth)
    _, leaves = motion.tree((by, bx), depth, motion.canonical_split(field))
    for i, j, s in leaves:
        cells = (slice(i, i + s), slice(j, j + s))
        assert (top[cells] == i).all() and (left[cells] == j).all() and (size[cells] == s).all()


def test_where_neighbouring_vectors_agree_nothing_changes():
    """One vector everywhere: overlapped = plain. On a tree, plain inside whole blocks' cores."""
    rng = np.random.default_rng(0)
    ref = torch.from_numpy(rng.integers(0, 256, (32, 32))).double()
    field = torch.from_numpy(np.broadcast_to(np.array([3, -5]), (4, 4, 2)).copy())
    plain = motion.compensate(ref, motion.plane_taps(field, 8, 32, 32, 1))
    assert torch.equal(motion.compensate(ref, motion.plane_taps(field, 8, 32, 32, 1, overlap=True)), plain)
    tree = np.zeros((8, 8, 2), np.int64)
    tree[:4, 4:] = (4, 2)  # a whole 16x16 block (cells of 4) beside three still ones
    over = motion.compensate(ref, motion.plane_taps(torch.from_numpy(tree), 4, 32, 32, 1, overlap=True, depth=2))
    flat = motion.compensate(ref, motion.plane_taps(torch.from_numpy(tree), 4, 32, 32, 1))
    assert torch.equal(over[24:, :], flat[24:, :])  # the still blocks below reach up only their top half (8 rows)
    assert not torch.equal(over[16:24, 16:], flat[16:24, 16:])
    assert not torch.equal(over[:16, 12:20], flat[:16, 12:20])  # across its left edge: blended


def test_overlap_removes_block_edges_and_predicts_a_zoom_better():
    """A smooth image zoomed by 10%: block vectors cannot follow it, and the plain prediction steps at
    each block edge. Overlapped, the same vectors predict it better and with smaller steps."""
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    scene = lambda s: 128 + 60 * np.sin((yy - 32) * s / 3.0) * np.cos((xx - 32) * s / 4.0)  # noqa: E731
    ref, cur = np.round(scene(1.0)), np.round(scene(1.1))
    field = estimate_field(ref.astype(np.uint8), cur.astype(np.uint8), 8)
    preds = [motion.compensate(torch.from_numpy(ref), motion.plane_taps(torch.from_numpy(field), 8, 64, 64, 1, overlap=o)).numpy()
             for o in (False, True)]
    mse = [float(np.mean((p - cur) ** 2)) for p in preds]
    assert mse[1] < 0.85 * mse[0]  # 12.9 -> 9.6
    edges = np.arange(8, 64, 8)
    steps = [float(np.abs(np.diff(p - cur, axis=1)[:, edges - 1]).mean()) for p in preds]  # error jumps across block edges
    assert steps[1] < 0.5 * steps[0]  # 3.8 -> 0.9 levels


def test_the_training_prediction_is_the_decoders_overlapped():
    cfg = replace(with_prediction(TEST, "motion").config, motion_block=4, motion_depth=1, motion_overlap=True)
    torch.manual_seed(3)
    rng = np.random.default_rng(3)
    prev_y, prev_uv = torch.rand(1, 16, 16, dtype=torch.float32), torch.rand(1, 2, 8, 8, dtype=torch.float32)
    field = torch.from_numpy(_tree_field(rng, 4, 4, 1))
    taps = motion.frame_taps(field, 4, 16, 16, dtype=torch.float32, overlap=True, depth=1)
    pred_y, pred_uv = _ste_prediction(_ste_levels(prev_y, prev_uv, taps))
    pixels = lambda v: pixel_levels(v).double()  # noqa: E731 (the 8-bit references both sides hold: float64 rounding of a float32 tie differed)
    ref_y, ref_uv = predicted_pixels(cfg, pixels(prev_y), pixels(prev_uv), field)
    assert torch.equal(pred_y.double(), decoded_value(ref_y / 255.0))
    assert torch.equal(pred_uv.double(), decoded_value(ref_uv / 255.0))


def test_the_model_trains_on_overlapped_taps():
    cfg = replace(with_prediction(TEST, "motion").config, motion_block=4, motion_depth=1, motion_overlap=True)
    field = _tree_field(np.random.default_rng(4), 4, 4, 1)
    model = LatentModel(cfg, [(2, 16, 16)], {1: field})
    for got, want in zip(model.motion_taps(1, 0), motion.frame_taps(field, 4, 16, 16, dtype=torch.float32, overlap=True, depth=1)):
        assert got.norm == want.norm and torch.equal(got.index, want.index) and torch.equal(got.weight, want.weight)


def test_the_decoder_predicts_in_bands_with_the_same_values(monkeypatch):
    """Bounded memory whatever size a file claims: bands of rows give what one set of taps gives."""
    rng = np.random.default_rng(6)
    field = _tree_field(rng, 10, 12, 2)
    ref = torch.from_numpy(rng.integers(0, 256, (2, 20, 24))).double()  # two chroma planes of a 40x48 frame
    whole = motion.compensate(ref, motion.plane_taps(torch.from_numpy(field), 4, 20, 24, 2, overlap=True, depth=2))
    monkeypatch.setattr(motion, "BAND_SAMPLES", 3 * 24 + 5)  # bands of 3 rows, the last of 2
    assert torch.equal(motion.predict(ref, field, 4, 2, overlap=True, depth=2), whole)


@pytest.mark.parametrize("h, w, block", [(144, 176, 8), (37, 45, 4), (30, 50, 16)])
def test_the_refinements_prediction_is_the_decoders(h, w, block):
    rng = np.random.default_rng(h)
    by, bx = motion.grid(h, w, block)
    field = rng.integers(-63, 64, (by, bx, 2))  # the largest vectors the search leaves
    ref = rng.integers(0, 256, (h, w))
    want = motion.compensate(torch.from_numpy(ref).double(), motion.plane_taps(torch.from_numpy(field), block, h, w, 1, overlap=True))
    assert np.array_equal(_OverlappedPrediction(ref, block)(field), want.numpy())


def _zoom(scale: float = 1.1):
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    scene = lambda s: 128 + 60 * np.sin((yy - 32) * s / 3.0) * np.cos((xx - 32) * s / 4.0)  # noqa: E731
    return np.round(scene(1.0)).astype(np.uint8), np.round(scene(scale)).astype(np.uint8)


def test_refinement_lowers_the_overlapped_error_and_keeps_a_right_field():
    ref, cur = _zoom()
    field = estimate_field(ref, cur, 8)
    refined = refine_overlapped(ref, cur, field, 8, 16.0)
    sad = lambda f: np.abs(_OverlappedPrediction(ref, 8)(f) - cur.astype(np.int64)).sum()  # noqa: E731
    assert sad(refined) < 0.9 * sad(field) and not np.array_equal(refined, field)
    assert np.abs(refined - field).max() <= motion_search.OVERLAP_ROUNDS  # a half pixel a round at most
    pan = np.roll(ref, (2, -3), (0, 1))  # one vector everywhere: already right
    still = estimate_field(ref, pan, 8)
    assert np.array_equal(refine_overlapped(ref, pan, still, 8, 16.0)[1:-1, 1:-1], still[1:-1, 1:-1])


def test_large_frames_keep_their_searched_fields(monkeypatch):
    y = np.stack(_zoom())
    fields = [[estimate_field(y[0], y[1], 8)]]
    assert not np.array_equal(motion_search.overlapped_motion(y, 8, [1], fields, lams=(16.0,))[0][0], fields[0][0])
    monkeypatch.setattr(motion_search, "COARSE_PIXELS", 64 * 64 - 1)
    assert motion_search.overlapped_motion(y, 8, [1], fields, lams=(16.0,)) is fields


def test_choose_motion_weighs_the_fields_overlapped(monkeypatch):
    seen = []
    cost = motion_search.prediction_cost
    monkeypatch.setattr(motion_search, "prediction_cost", lambda *a: seen.append(a[7]) or cost(*a))  # overlap
    y = synthetic_clip(frames=3, height=32, width=32).y
    searched = {}
    (block, depth), fields = choose_motion(y, (8,), 1e-3, [1, 2], searched, overlap=True, smoothness=(16.0,))
    assert seen and all(seen)
    refined = searched[("overlapped", 8)][0]
    assert (block, depth) == (8, 0) and len(fields) == len(refined) and all(f is r for f, r in zip(fields, refined))  # the refined fields


def _pan_with_a_moving_object(frames: int = 3):
    """The test pan (48x64) with an 8x8 textured square crossing it faster: two motions to blend."""
    clip = synthetic_clip(frames=frames, height=48, width=64)
    square = np.random.default_rng(5).integers(0, 256, (8, 8)).astype(np.uint8)
    y = clip.y.copy()
    for t in range(frames):
        y[t, 12 + 3 * t:20 + 3 * t, 20 + 5 * t:28 + 5 * t] = square
    return replace(clip, y=y)


@pytest.fixture(scope="module")
def overlap_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("obmc") / "m.clv"
    preset = with_prediction(replace(TEST, motion_blocks=(16,), motion_overlap=True), "motion")
    result = encode_clip(_pan_with_a_moving_object(), path, lmbda=1e-3, preset=preset)
    return result, path.read_bytes()


def test_an_overlapped_file_decodes_to_the_encoders_frames(overlap_file, tmp_path):
    """In another process (the CLI's decode), and the flag matters: the same file read without it
    gives other frames."""
    import subprocess
    import sys

    from codec_lab.video import read_clip

    result, data = overlap_file
    parsed = bitstream.parse_file(data)
    assert parsed.header.motion_overlap and result.config.motion_overlap and parsed.version == bitstream.VERSION
    fields = motion.decode_fields(parsed.motion, 2, motion.grid(48, 64, parsed.header.motion_block))
    assert any(len(np.unique(f.reshape(-1, 2), axis=0)) > 1 for f in fields)  # vectors that differ: something to blend
    path, out = tmp_path / "m.clv", tmp_path / "recon.y4m"
    path.write_bytes(data)
    proc = subprocess.run([sys.executable, "-m", "codec_lab.cli", "decode", str(path), "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    decoded = read_clip(out)
    assert all(np.array_equal(getattr(decoded, p), getattr(result.reconstruction, p)) for p in "yuv")
    plain = decode_bytes(bitstream.write_file(replace(parsed.header, motion_overlap=False), parsed.weights, parsed.latents, parsed.motion)).clip
    assert not np.array_equal(plain.y[1:], decoded.y[1:])


def test_an_overlapped_uniform_field_recoded_as_trees_gives_the_same_frames(overlap_file):
    """The window spans each whole block: 16x16 blocks coded as 16x16 roots of 4x4 cells blend alike."""
    _, data = overlap_file
    tree = motion_as_tree(data, 2)
    assert bitstream.parse_file(tree).header.motion_overlap
    a, b = decode_bytes(data).clip, decode_bytes(tree).clip
    assert all(np.array_equal(getattr(a, p), getattr(b, p)) for p in "yuv")


def test_a_version_7_motion_file_decodes_as_before(tmp_path):
    """Version 7 lacks the overlap flag: its motion files decode to the frames they always did."""
    import struct
    import zlib

    path = tmp_path / "m.clv"
    encode_clip(_pan_with_a_moving_object(), path, lmbda=1e-3, preset=with_prediction(replace(TEST, motion_blocks=(16,)), "motion"))
    parsed = bitstream.parse_file(path.read_bytes())
    body = bitstream.pack_header(parsed.header)[:-3]  # the overlap, sharp and bidirectional flags are the header's last three bytes
    old = bitstream.MAGIC + struct.pack(">BH", 7, len(body)) + body
    for section in (parsed.weights, parsed.motion, parsed.latents):
        old += struct.pack(">I", len(section)) + section
    old += struct.pack(">I", zlib.crc32(old) & 0xFFFFFFFF)
    assert bitstream.parse_file(old).version == 7
    a, b = decode_bytes(old).clip, decode_bytes(path.read_bytes()).clip
    assert all(np.array_equal(getattr(a, p), getattr(b, p)) for p in "yuv")


@pytest.mark.parametrize("header, message", [
    ({"motion_overlap": 2}, "overlapped compensation flag 2"),
    ({"motion_overlap": 1, "motion_block": 0}, "overlapped compensation without a motion block"),
])
def test_a_bad_overlap_flag_is_refused(overlap_file, header, message):
    _, data = overlap_file
    parsed = bitstream.parse_file(data)
    with pytest.raises(BitstreamError, match=message):
        decode_bytes(bitstream.write_file(replace(parsed.header, **header), parsed.weights, parsed.latents, parsed.motion))


def test_overlap_without_motion_is_refused_when_configured():
    with pytest.raises(ValueError, match="overlapped compensation needs a motion block"):
        CodecConfig(motion_overlap=True)
