"""Hierarchical B-frames (format version 10): frames between the anchors predicted from two references."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from codec_lab.codec import bitstream, motion, motion_search
from codec_lab.codec.cost import mac_breakdown
from codec_lab.codec.decoder import decode_bytes
from codec_lab.codec.encoder import encode_clip
from codec_lab.codec.model import bi_mean, decoded_value, pixel_levels, predicted_pixels
from codec_lab.codec.presets import PRESETS, with_prediction
from codec_lab.codec.stats import file_stats
from codec_lab.codec.sweep import SemanticLatentCodec
from codec_lab.codec.training import _ste_levels, _ste_prediction
from codec_lab.errors import BitstreamError, CodecLabError
from tests.conftest import synthetic_clip

torch.set_num_threads(1)
TEST = replace(PRESETS["test"], iterations=10, motion_blocks=(8,))


def test_the_frame_structure_of_foremans_30_frames():
    """Intra period 8: key frames 8, 16, 24 and the last frame, 29, are P-frames of the anchor before
    them; every other frame is a B-frame of a frame before it and one after it, the two nearest of
    the bisection of its anchors' interval, and no chain of predictions is longer than 7."""
    cfg = with_prediction(TEST, "motion", intra_period=8, bidirectional=True).config
    refs = {t: cfg.references(t, 30) for t in range(30)}
    assert refs[0] == () and refs[8] == (0,) and refs[16] == (8,) and refs[24] == (16,) and refs[29] == (24,)
    assert refs[4] == (0, 8) and refs[2] == (0, 4) and refs[1] == (0, 2) and refs[7] == (6, 8)
    assert refs[26] == (24, 29) and refs[28] == (27, 29)  # the tail, 24 .. 29, bisected as well
    b_frames = [t for t in range(30) if len(refs[t]) == 2]
    assert len(b_frames) == 25 and all(a < t < b for t in b_frames for a, b in [refs[t]])
    order = cfg.coding_order(30)
    assert sorted(order) == list(range(30)) and order[:4] == [0, 8, 4, 16]
    assert all(order.index(r) < order.index(t) for t in range(30) for r in refs[t])  # references are made first
    assert max(cfg.depths(30)) == 7
    assert len(cfg.predictions(30)) == 4 + 2 * 25  # a field a prediction


@pytest.mark.parametrize("frames, period", [(2, 8), (3, 8), (9, 8), (17, 4), (6, 1)])
def test_every_clip_length_has_a_structure(frames, period):
    """Short clips, a clip ending on a key frame, period 1 (every frame a key frame): each frame's
    references come before it in coding order; a B-frame's lie on both sides of it."""
    cfg = with_prediction(TEST, "motion", intra_period=period, bidirectional=True).config
    order = cfg.coding_order(frames)
    for t in range(1, frames):
        refs = cfg.references(t, frames)
        assert refs and all(order.index(r) < order.index(t) for r in refs)
        assert len(refs) == 1 or refs[0] < t < refs[1]


def test_b_frames_need_key_prediction():
    with pytest.raises(CodecLabError, match="B-frames need key prediction"):
        with_prediction(TEST, "motion", intra_period=8, key_prediction=False, bidirectional=True)
    with pytest.raises(ValueError, match="B-frames need key prediction"):
        replace(with_prediction(TEST, "motion").config, key_prediction=False, bidirectional=True)
    codec = SemanticLatentCodec(preset="test")
    assert codec._preset({"lmbda": 1e-3, "prediction": "motion", "bidirectional": True}).config.bidirectional
    assert not codec._preset({"lmbda": 1e-3, "prediction": "motion"}).config.bidirectional
    with pytest.raises(CodecLabError, match="bidirectional must be true or false"):
        codec._preset({"lmbda": 1e-3, "prediction": "motion", "bidirectional": "yes"})


@pytest.mark.parametrize("sharp", [False, True])
def test_the_training_b_prediction_is_the_decoders(sharp):
    """The mean of two straight-through compensations, rounded, has exactly the decoder's values."""
    cfg = replace(with_prediction(TEST, "motion", bidirectional=True).config, motion_overlap=sharp, motion_sharp=sharp)
    torch.manual_seed(4)
    rng = np.random.default_rng(4)
    pixels = lambda v: pixel_levels(v).double()  # noqa: E731 (the 8-bit references both sides hold: float64 rounding of a float32 tie differed)
    planes, levels = [], []
    for _ in range(2):
        prev_y, prev_uv = torch.rand(1, 16, 16), torch.rand(1, 2, 8, 8)
        field = rng.integers(-9, 10, (2, 2, 2))
        taps = motion.frame_taps(field, cfg.motion_block, 16, 16, dtype=torch.float32, overlap=sharp, sharp=sharp)
        levels.append(_ste_levels(prev_y, prev_uv, taps))
        planes.append(predicted_pixels(cfg, pixels(prev_y), pixels(prev_uv), field))
    pred_y, pred_uv = _ste_prediction(levels[0], levels[1])
    assert torch.equal(pred_y.double(), decoded_value(bi_mean(planes[0][0], planes[1][0]) / 255.0))
    assert torch.equal(pred_uv.double(), decoded_value(bi_mean(planes[0][1], planes[1][1]) / 255.0))
    assert not torch.equal(pred_y.double(), decoded_value(planes[0][0] / 255.0))


def test_the_mean_rounds_half_up_and_is_a_copy_of_equal_predictions():
    a = torch.tensor([0.0, 1.0, 254.0, 255.0, 7.0])
    b = torch.tensor([1.0, 1.0, 255.0, 255.0, 10.0])
    assert bi_mean(a, b).tolist() == [1.0, 1.0, 255.0, 255.0, 9.0]
    assert torch.equal(bi_mean(a, a), a)


def test_the_motion_choice_weighs_a_b_frame_by_its_mean_prediction():
    """A frame halfway between two others (their mean) is predicted exactly by the mean of the two
    unmoved frames: a B-frame listed twice costs only its fields' bits; either half alone costs more."""
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 32, 32)).astype(np.float64)
    y = np.stack([a, np.floor((a + b + 1) / 2), b]).astype(np.uint8)
    zero = np.zeros((4, 4, 2), np.int64)
    both = motion_search.prediction_cost(y, [zero, zero], 8, 1e-3, [1, 1], references=[0, 2])
    bits = motion_search.prediction_cost(y, [zero], 8, 1e-3, [0], references=[0])  # frame 0 from itself: no error
    assert both == pytest.approx(2 * bits)
    for r in (0, 2):
        assert motion_search.prediction_cost(y, [zero], 8, 1e-3, [1], references=[r]) > both


def _strong_and_faint():
    """Two 48x48 textures, one faint, each moved by its own uniform field, and the mean of the two."""
    rng = np.random.default_rng(1)
    strong = rng.integers(0, 256, (48, 48)).astype(np.uint8)
    faint = rng.integers(112, 144, (48, 48)).astype(np.uint8)
    moved = [np.full((6, 6, 2), v, np.int64) for v in ((4, -6), (-2, 4))]  # half pixels: whole-pixel moves
    preds = [motion_search._compensated(ref, field, 8) for ref, field in zip((strong, faint), moved)]
    return strong, faint, bi_mean(torch.from_numpy(preds[0]), torch.from_numpy(preds[1])).numpy(), moved


def test_a_b_frames_two_fields_are_searched_for_their_mean():
    """A frame that is the mean of two textures, each moved its own way, the second faint: searched
    alone, the faint one's vectors are lost under the strong one; searched against what the mean
    needs from it (bi_target), both come out exact and the mean predicts the frame exactly."""
    strong, faint, cur, moved = _strong_and_faint()
    alone = [motion_search.estimate_field(ref, cur, 8) for ref in (strong, faint)]
    joint = motion_search.refine_bidirectional(strong, faint, cur, *alone, 8, motion_search.LAMBDA_SAD, (16, 16))

    def error(fields):
        p = [motion_search._compensated(ref, field, 8) for ref, field in zip((strong, faint), fields)]
        return np.abs(bi_mean(torch.from_numpy(p[0]), torch.from_numpy(p[1])).numpy() - cur).sum()

    assert not np.array_equal(alone[1], moved[1]) and error(alone) > 0
    assert all(np.array_equal(f, m) for f, m in zip(joint, moved)) and error(joint) == 0


@pytest.mark.parametrize("overlap", [False, True])
def test_the_motion_choice_gives_a_b_frame_the_fields_of_its_mean(overlap):
    """The same frame through choose_motion, uniform 8x8 fields and 8-to-4 quadtrees tried, plain or
    overlapped (whose refinement and the trees' splits score a B-frame's field by the mean too):
    the chosen fields predict it exactly."""
    strong, faint, cur, _ = _strong_and_faint()
    y = np.stack([strong, cur.astype(np.uint8), faint])
    (block, depth), fields = motion_search.choose_motion(y, (8,), 1e-3, [1, 1], references=[0, 2], split_depth=1, overlap=overlap)
    preds = [motion_search._compensated(y[r], f, block, overlap, depth) for r, f in zip((0, 2), fields)]
    assert np.array_equal(bi_mean(torch.from_numpy(preds[0]), torch.from_numpy(preds[1])).numpy(), cur)


def test_the_overlapped_refinement_keeps_the_fields_that_make_the_mean():
    """Refined for the overlapped prediction each on its own, the faint field would drift to what
    predicts the frame alone; refined for the mean with the other's prediction, the exact pair stays."""
    strong, faint, cur, moved = _strong_and_faint()
    y = np.stack([strong, cur.astype(np.uint8), faint])
    refined = motion_search.overlapped_motion(y, 8, [1, 1], [moved], references=[0, 2], lams=(motion_search.LAMBDA_SAD,))[0]
    assert all(np.array_equal(r, m) for r, m in zip(refined, moved))
    alone = motion_search.overlapped_motion(y, 8, [1], [[moved[1]]], references=[2], lams=(motion_search.LAMBDA_SAD,))[0][0]
    assert not np.array_equal(alone, moved[1])


def test_a_b_frame_costs_two_compensations():
    plain = with_prediction(PRESETS["fast"], "motion").config
    plain = replace(plain, motion_overlap=True, motion_sharp=True, bidirectional=False)
    bi = replace(plain, bidirectional=True)
    one, two = mac_breakdown(plain, 144, 176)["synthesis"], mac_breakdown(bi, 144, 176)["synthesis"]
    assert two - one == pytest.approx(3 * 38.0 + 1.5)  # three overlapped 6-tap reads (38 MACs each) more, and the mean


@pytest.fixture(scope="module")
def b_file(tmp_path_factory):
    """5 frames, intra period 4: frame 0 intra, 4 a P-frame of 0, 2 a B-frame of 0 and 4, 1 of 0 and
    2, 3 of 2 and 4; quarter-pixel, overlapped."""
    path = tmp_path_factory.mktemp("bframes") / "b.clv"
    preset = replace(TEST, motion_overlap=True, motion_sharp=True)
    result = encode_clip(synthetic_clip(frames=5, height=32, width=32), path, lmbda=1e-3,
                         preset=with_prediction(preset, "motion", intra_period=4, bidirectional=True))
    return result, path


def test_a_b_frame_file_decodes_to_the_encoders_frames_in_another_process(b_file, tmp_path):
    """The CLI's decode gives the encoder's reconstruction; `inspect` names each frame's kind and
    references; read as P-frames (the flag cleared) the same bytes are not the same clip."""
    from codec_lab.video import read_clip

    result, path = b_file
    data = path.read_bytes()
    parsed = bitstream.parse_file(data)
    assert parsed.version == bitstream.VERSION == 11 and parsed.header.bidirectional and result.config.bidirectional
    out = tmp_path / "recon.y4m"
    subprocess.run([sys.executable, "-m", "codec_lab.cli", "decode", str(path), "-o", str(out)], check=True, capture_output=True)
    decoded = read_clip(out)
    assert all(np.array_equal(getattr(decoded, p), getattr(result.reconstruction, p)) for p in "yuv")
    stats = file_stats(path)
    assert [(f.kind, f.reference) for f in stats.frames] == [("I", None), ("B", "0,2"), ("B", "0,4"), ("B", "2,4"), ("P", "0")]
    assert all(f.motion_bytes > 0 for f in stats.frames[1:])
    as_p = bitstream.write_file(replace(parsed.header, bidirectional=False), parsed.weights, parsed.latents, parsed.motion)
    try:  # 4 P-fields read from a section of 7 fields
        other = decode_bytes(as_p).clip
    except BitstreamError:
        return
    assert not np.array_equal(other.y[1:], decoded.y[1:])


def test_a_b_frame_file_is_the_same_bytes_twice(b_file, tmp_path):
    result, path = b_file
    again = tmp_path / "again.clv"
    preset = replace(TEST, motion_overlap=True, motion_sharp=True)
    encode_clip(synthetic_clip(frames=5, height=32, width=32), again, lmbda=1e-3,
                preset=with_prediction(preset, "motion", intra_period=4, bidirectional=True))
    assert again.read_bytes() == path.read_bytes()
