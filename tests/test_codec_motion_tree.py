"""Quadtree motion fields (format version 7): the tree's coding order, its section, its search, hostile sections."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec_lab.codec import bitstream, entropy, motion
from codec_lab.codec.decoder import decode_bytes, decode_file
from codec_lab.codec.encoder import encode_clip
from codec_lab.codec.motion_search import (
    choose_motion,
    estimate_motion,
    quadtree_fields,
)
from codec_lab.codec.presets import PRESETS, with_prediction
from codec_lab.errors import BitstreamError
from codec_lab.video.frames import Clip
from tests.conftest import motion_as_tree, synthetic_clip

torch.set_num_threads(1)
TEST = replace(PRESETS["test"], iterations=10)


def tree_field(rng: np.random.Generator, blocks: tuple[int, int], depth: int, p_split: float = 0.4) -> np.ndarray:
    """A field of smallest blocks that is a random quadtree: each block split with probability p_split."""
    by, bx = blocks
    field = np.zeros((by, bx, 2), np.int64)

    def fill(i: int, j: int, size: int) -> None:
        if size > 1 and rng.random() < p_split:
            for ci, cj, csize in motion.children((i, j, size), by, bx):
                fill(ci, cj, csize)
        else:
            field[i:i + size, j:j + size] = rng.integers(-20, 21, 2)

    span = 1 << depth
    for i in range(0, by, span):
        for j in range(0, bx, span):
            fill(i, j, span)
    return field


def test_the_tree_walk_codes_flags_by_depth_and_leaves_in_z_order():
    """3x4 smallest blocks under 2x2 roots: the first root split, the others whole; the roots of the
    last row are cut by the frame edge (their second row of children does not exist)."""
    field = np.zeros((3, 4, 2), np.int64)
    field[0, 1] = (2, 0)
    flags, leaves = motion.tree((3, 4), 1, motion.canonical_split(field))
    assert [f.tolist() for f in flags] == [[1, 0, 0, 0]]
    assert leaves == [(0, 0, 1), (0, 1, 1), (1, 0, 1), (1, 1, 1), (0, 2, 2), (2, 0, 2), (2, 2, 2)]


def test_a_leaf_of_one_block_in_raster_order_has_h264s_predictor():
    """With no tree (every block a leaf, raster order) the leaf predictor is the uniform field's."""
    rng = np.random.default_rng(1)
    field = rng.integers(-9, 10, (6, 7, 2))
    rows = [[tuple(v) for v in row] for row in field.tolist()]
    known = np.zeros((6, 7), bool)
    for i in range(6):
        for j in range(7):
            assert motion.leaf_predictor(rows, known, i, j, 1) == motion._predictor(rows, i, j, 7)
            known[i, j] = True


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("blocks", [(1, 1), (4, 4), (9, 11), (13, 5)])
def test_quadtree_fields_round_trip_through_the_motion_section(depth, blocks):
    rng = np.random.default_rng(depth * 100 + blocks[0])
    fields = [tree_field(rng, blocks, depth) for _ in range(3)]
    section = motion.encode_fields(fields, depth)
    bits: list[float] = []
    back = motion.decode_fields(section, 3, blocks, bits, depth)
    assert all(np.array_equal(a, b) for a, b in zip(fields, back))
    # the section's size is its ideal bits (the coder rounds up to a 32-bit word); the stats' per-frame bits add up to them
    assert abs(sum(bits) - motion.field_bits(fields, depth)) < 1e-6
    assert 0 <= 8 * len(section) - motion.field_bits(fields, depth) <= 32 + 8


def test_a_tree_codes_a_field_of_whole_roots_in_fewer_bytes():
    """Each 16x16 root moving its own way, a few split: as a tree, a vector (and a flag) a whole root;
    block by block, the median predictor misses at every root's edge. (A still field costs next to
    nothing either way.)"""
    field = tree_field(np.random.default_rng(0), (36, 44), 2, p_split=0.1)  # QCIF in 4x4 blocks
    tree = motion.encode_fields([field], 2)
    assert np.array_equal(motion.decode_fields(tree, 1, (36, 44), depth=2)[0], field)
    assert len(tree) < len(motion.encode_fields([field], 0)) / 4


def _object_over_still_background(size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """Two luma frames: a textured background that stays, and an 8x8 textured object that moves by (2, 3)."""
    rng = np.random.default_rng(3)
    h, w = size
    ref = rng.integers(40, 216, size).astype(np.uint8)
    cur = ref.copy()
    obj = rng.integers(0, 256, (8, 8)).astype(np.uint8)
    ref[16:24, 24:32] = obj
    cur[18:26, 27:35] = obj
    return np.stack([ref, cur])


def test_the_search_splits_only_where_the_motion_differs():
    y = _object_over_still_background()
    (tree,) = quadtree_fields(y, 16, 2, [1], {}, smoothness=(16.0,))[0]
    (flat,) = estimate_motion(y, 4, [1], lams=(16.0,))[0]
    moved = np.argwhere((tree != 0).any(-1))
    assert len(moved) and moved.min(0).tolist() >= [3, 5] and moved.max(0).tolist() <= [7, 9]  # around the object's 4x4 cells

    def sad(field):
        pred = motion.compensate(torch.from_numpy(y[0].astype(np.float64)), motion.plane_taps(torch.from_numpy(field), 4, 48, 64, 1))
        return float(np.abs(pred.numpy() - y[1]).sum())

    (eights,) = estimate_motion(y, 8, [1], lams=(16.0,))[0]
    assert sad(tree) <= sad(flat) * 1.1  # it predicts about as well as a vector per 4x4 block ...
    assert motion.field_bits([tree], 2) < motion.field_bits([flat], 0)  # ... for fewer bits
    pred8 = motion.compensate(torch.from_numpy(y[0].astype(np.float64)), motion.plane_taps(torch.from_numpy(eights), 8, 48, 64, 1))
    assert sad(tree) < 0.7 * float(np.abs(pred8.numpy() - y[1]).sum())  # and far better than 8x8 blocks


def test_blocks_whose_finer_levels_agree_are_not_tried_split(monkeypatch):
    """quadtree_field skips a split wherever every finer level holds the block's own vector (it would
    predict the same for more bits): the trees are those of trying every split."""
    from codec_lab.codec import motion_search

    rng = np.random.default_rng(4)
    y = np.stack([rng.integers(0, 256, (40, 56))] * 2).astype(np.uint8)
    for top, left, (dy, dx) in ((8, 8, (1, 2)), (20, 30, (-2, 1)), (2, 40, (0, -3))):  # three patches moving their own ways
        y[1, top:top + 9, left:left + 7] = np.roll(y[0], (dy, dx), (0, 1))[top:top + 9, left:left + 7]
    pruned = quadtree_fields(y, 16, 2, [1], {})
    monkeypatch.setattr(motion_search, "_same_below", lambda levels: [np.zeros(level.shape[:2], bool) for level in levels])
    tried = quadtree_fields(y, 16, 2, [1], {})
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(pruned, tried))
    assert any(len(np.unique(field[0].reshape(-1, 2), axis=0)) > 2 for field in pruned)  # trees with splits, not all whole


def test_choose_motion_takes_a_tree_where_it_pays():
    y = _object_over_still_background()
    assert choose_motion(y, (16,), 2e-3, [1])[0] == (16, 0)  # without split_depth: uniform fields only
    (block, depth), fields = choose_motion(y, (16,), 2e-3, [1], split_depth=2)
    assert (block, depth) == (4, 2) and fields[0].shape == (12, 16, 2)


def test_large_frames_are_not_tried_as_trees(monkeypatch):
    from codec_lab.codec import motion_search

    y = _object_over_still_background()
    monkeypatch.setattr(motion_search, "COARSE_PIXELS", y[0].size - 1)
    searched = {}
    assert choose_motion(y, (16,), 2e-3, [1], searched, split_depth=2)[0] == (16, 0)
    assert set(searched) == {16}  # neither the 4x4 level nor a tree was searched


def test_the_real_presets_take_overlapped_sharp_trees_and_b_frames():
    def motion_settings(p):
        return p.motion_depth, p.motion_overlap, p.motion_sharp, p.bidirectional

    assert all(motion_settings(PRESETS[name]) == (2, True, True, True) for name in ("fast", "medium", "full"))
    assert motion_settings(PRESETS["test"]) == (0, False, False, False)
    assert with_prediction(PRESETS["fast"], "motion").config.bidirectional  # B-frames where key prediction applies
    assert not with_prediction(PRESETS["fast"], "motion", key_prediction=False).config.bidirectional
    assert not with_prediction(PRESETS["fast"], "intra").config.bidirectional
    assert not with_prediction(PRESETS["fast"], "previous").config.bidirectional  # measured with motion only


def test_an_encoded_tree_file_decodes_to_the_encoders_reconstruction(tmp_path):
    """The encoder picks a tree on the moving object, writes format 7 with its depth, and a separate decode
    (and the stats' motion bits) read it back."""
    from codec_lab.codec.stats import file_stats

    y = np.concatenate([_object_over_still_background()] * 2)[:3]
    y[2] = np.roll(y[1], 1, 1)
    uv = np.full((3, 24, 32), 128, np.uint8)
    clip = Clip(y, uv, uv.copy(), synthetic_clip(frames=1).fps)
    preset = with_prediction(replace(TEST, motion_blocks=(16,), motion_depth=2), "motion")
    result = encode_clip(clip, tmp_path / "tree.clv", lmbda=2e-3, preset=preset)
    data = result.path.read_bytes()
    header = bitstream.parse_file(data).header
    assert (header.motion_block, header.motion_depth) == (4, 2) == (result.config.motion_block, result.config.motion_depth)
    decoded = decode_file(result.path).clip
    assert all(np.array_equal(getattr(decoded, p), getattr(result.reconstruction, p)) for p in "yuv")
    stats = file_stats(result.path)
    assert sum(f.motion_bytes for f in stats.frames) == pytest.approx(len(bitstream.parse_file(data).motion), abs=8)


def test_uniform_fields_recoded_as_trees_give_the_same_frames(tmp_path):
    path = tmp_path / "m.clv"
    encode_clip(synthetic_clip(frames=3, height=32, width=32), path, lmbda=1e-3,
                preset=with_prediction(replace(TEST, motion_blocks=(16,)), "motion"))
    tree = motion_as_tree(path.read_bytes(), 2)
    assert bitstream.parse_file(tree).header.motion_depth == 2
    a, b = decode_bytes(path.read_bytes()).clip, decode_bytes(tree).clip
    assert all(np.array_equal(getattr(a, p), getattr(b, p)) for p in "yuv")


# --------------------------------------------------------------------------- hostile


@pytest.fixture(scope="module")
def tree_file(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("tree") / "m.clv"
    encode_clip(synthetic_clip(frames=3, height=32, width=32), path, lmbda=1e-3,
                preset=with_prediction(replace(TEST, motion_blocks=(16,)), "motion"))
    return motion_as_tree(path.read_bytes(), 2)


def _with(data: bytes, section: bytes | None = None, **header) -> bytes:
    parsed = bitstream.parse_file(data)
    return bitstream.write_file(replace(parsed.header, **header), parsed.weights, parsed.latents,
                                parsed.motion if section is None else section)


@pytest.mark.parametrize("step", [0, entropy.FLAG_STEPS])
def test_a_flag_step_outside_the_tables_is_refused(tree_file, step):
    section = bytearray(bitstream.parse_file(tree_file).motion)
    section[2] = step  # frame 1: two scale ids, then the step of depth 0
    with pytest.raises(BitstreamError, match="split flag step"):
        decode_bytes(_with(tree_file, bytes(section)))


@pytest.mark.parametrize("header, message", [
    ({"motion_depth": 5}, "motion split depth 5 does not fit motion block 4"),  # roots of 128: past MAX_MOTION_ROOT
    ({"motion_depth": 1, "motion_block": 0}, "motion split depth 1 does not fit motion block 0"),
])
def test_a_split_depth_the_header_cannot_hold_is_refused(tree_file, header, message):
    with pytest.raises(BitstreamError, match=message):
        decode_bytes(_with(tree_file, **header))


def test_a_tree_section_cut_short_is_refused_or_decodes(tree_file):
    """Short of its ids: refused, saying so. Past them, a cut range-coder stream (resealed, so the CRC
    does not catch it first) may still decode to some fields: every cut is either that or a BitstreamError."""
    section = bitstream.parse_file(tree_file).motion
    with pytest.raises(BitstreamError, match="fewer than the 8 table ids"):
        decode_bytes(_with(tree_file, section[:5]))
    for cut in range(6, len(section)):
        try:
            decode_bytes(_with(tree_file, section[:cut]))
        except BitstreamError as exc:
            assert "damaged" in str(exc) or "fewer" in str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=64), st.integers(1, 3))
def test_arbitrary_tree_sections_decode_or_are_refused(tail, depth):
    """Any bytes after the ids: fields within the limits, or a BitstreamError; never another exception."""
    ids = bytes([entropy.NS // 2, entropy.NS // 2] + [entropy.FLAG_STEPS // 2] * depth) * 2
    try:
        fields = motion.decode_fields(ids + tail[: len(tail) - len(tail) % 4], 2, (9, 11), depth=depth)
    except BitstreamError:
        return
    assert all(f.shape == (9, 11, 2) and np.abs(f).max(initial=0) <= motion.MV_MAX for f in fields)
