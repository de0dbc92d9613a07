"""A B-frame's second motion field coded on its first, mirrored (format version 11, `motion.MODES`)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch

from codec_lab.codec import bitstream, entropy, motion, motion_search
from codec_lab.codec.encoder import encode_clip
from codec_lab.codec.model import bi_mean, config_from_header
from codec_lab.codec.presets import PRESETS, with_prediction
from codec_lab.codec.stats import file_stats
from codec_lab.errors import BitstreamError
from codec_lab.video import read_clip
from codec_lab.video.frames import Clip

torch.set_num_threads(1)
B_PAIR = [(1, 0), (1, 2)]  # frame 1 from 0 and from 2: one B-frame's two predictions


def _random_field(shape: tuple[int, int], reach: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-reach, reach + 1, (*shape, 2)).astype(np.int64)


def test_mirrored_carries_a_field_as_linear_motion_would():
    field = np.array([[[4, -3], [1, 0]]], np.int64)
    assert np.array_equal(motion.mirrored(field, 1, 0, 2), -field)  # equally far: the opposite vector
    # frame 26 between 24 and 29 (Foreman's tail): 3 frames ahead against 2 behind, x (-3/2) rounded half up
    assert motion.mirrored(field, 26, 24, 29).tolist() == [[[-6, 5], [-1, 0]]]
    assert np.abs(motion.mirrored(np.full((1, 1, 2), motion.MV_MAX), 2, 1, 5)).max() == motion.MV_MAX  # clipped


@pytest.mark.parametrize("depth", [0, 2])
def test_a_mirrored_second_field_codes_on_the_first_and_decodes_exactly(depth):
    """A P field, then a B-frame whose second field is its first's opposite but for a few vectors:
    coded on the mirrored first (mode 1) it costs a fraction of its bits on its neighbours alone,
    and the section decodes to the same fields, with the ideal bits the coder spends."""
    blocks = (8, 12)
    first = np.repeat(np.repeat(_random_field((2, 3), 20, 1), 4, 0), 4, 1)  # 4x4-cell leaves for depth 2
    if depth:  # the first field's leaves split further where the second's are not: the base varies inside a leaf
        first[0:2, 0:2] += 1
    second = np.repeat(np.repeat(-_random_field((2, 3), 20, 1), 4, 0), 4, 1)
    second[4:8, 8:12] += (3, -2)
    p_field = _random_field(blocks, 6, 2)
    fields = [p_field, first, second]
    predictions = [(3, 2)] + B_PAIR
    section = motion.encode_fields(fields, depth, predictions)
    bits: list[float] = []
    back = motion.decode_fields(section, 3, blocks, bits, depth, predictions)
    assert all(np.array_equal(a, b) for a, b in zip(back, fields))
    assert section[2 * (2 + depth)] // entropy.NS == 1  # the second field's first id byte holds its mode
    assert section[0] // entropy.NS == section[2 + depth] // entropy.NS == 0
    on_first = motion.field_bits(fields, depth, predictions)
    alone = motion.field_bits(fields, depth)
    assert abs(sum(bits) - on_first) < 1e-6 and 0 <= 8 * len(section) - on_first <= 32 + 8
    assert alone - on_first > 0.5 * (motion.field_bits([second], depth) - 8 * (2 + depth))
    assert len(motion.encode_fields(fields, depth)) > len(section)


def test_a_field_that_codes_cheaper_alone_stays_mode_0():
    """The mirrored first is only a candidate: a smooth second field unrelated to a rough first
    keeps its neighbours' prediction, and its bytes are those of a version 10 section."""
    first, second = _random_field((6, 6), 30, 3), np.zeros((6, 6, 2), np.int64)
    section = motion.encode_fields([first, second], 0, B_PAIR)
    assert section == motion.encode_fields([first, second], 0)
    assert motion.cheaper_base(second, motion.mirrored(first, 1, 0, 2)) is None


def test_a_field_whose_differences_only_its_base_keeps_codable_codes_on_it():
    """Vectors +-126 apart in neighbouring blocks: differences beyond the tables' +-126 on their
    neighbours alone (a clear ValueError for a P-frame's field), within them on the mirrored first."""
    first = np.array([[[42, 0], [-42, 0]]], np.int64)
    second = motion.mirrored(first, 1, 0, 3)  # 2 frames ahead against 1 behind: x (-2)
    assert second.tolist() == [[[-84, 0], [84, 0]]]
    wide = np.array([[[-63, 0], [63, 0]]], np.int64) * 2
    with pytest.raises(ValueError, match="differences must stay within"):
        motion.encode_fields([wide])
    predictions = [(1, 0), (1, 3)]
    section = motion.encode_fields([first, wide], 0, predictions)
    assert all(np.array_equal(a, b) for a, b in zip(motion.decode_fields(section, 2, (1, 2), predictions=predictions), [first, wide]))


def test_mode_1_is_damage_where_no_field_can_be_mirrored():
    """A mode a field cannot have (2; or 1 on a P-frame's field, on a B-frame's first, or in a file of
    version 10, whose decoder gets no predictions) is a clear BitstreamError."""
    first = _random_field((5, 7), 10, 4)
    section = motion.encode_fields([first, -first], 0, B_PAIR)
    assert section[2] // entropy.NS == 1
    with pytest.raises(BitstreamError, match="only a B-frame second field of a version 11 file"):
        motion.decode_fields(section, 2, (5, 7), predictions=motion.readable_predictions(B_PAIR, 10))
    with pytest.raises(BitstreamError, match="only a B-frame second field"):
        motion.decode_fields(section, 2, (5, 7), predictions=[(1, 0), (2, 1)])  # two P-frames
    damaged = bytearray(section)
    damaged[2] = damaged[2] % entropy.NS + 2 * entropy.NS
    with pytest.raises(BitstreamError, match="mode 2, which does not exist"):
        motion.decode_fields(bytes(damaged), 2, (5, 7), predictions=B_PAIR)
    damaged = bytearray(section)
    damaged[0] += entropy.NS
    with pytest.raises(BitstreamError, match="motion field 0 has prediction mode 1"):
        motion.decode_fields(bytes(damaged), 2, (5, 7), predictions=B_PAIR)


def test_the_search_counts_a_fields_bits_on_its_base():
    """Where every candidate predicts alike (equal SADs), the bits decide: counted on a base,
    the chosen field is the base itself (no difference to code); counted on the neighbours
    alone, a smooth field."""
    base = _random_field((4, 5), 3, 5)
    candidates = np.stack([np.full((4, 5, 2), (dy, dx)) for dy in range(-3, 4) for dx in range(-3, 4)])
    sad = np.zeros(candidates.shape[:3])
    assert np.array_equal(motion_search._choose(sad, candidates, 1.0, base), base)
    alone = motion_search._choose(sad, candidates, 1.0)
    assert len(np.unique(alone.reshape(-1, 2), axis=0)) == 1


def _linear_pair():
    """Frame 1, the mean of two textures each moved by per-block vectors, the second the first's
    opposite: motion that is linear in time but rough in space."""
    rng = np.random.default_rng(6)
    ref0, ref1 = (rng.integers(0, 256, (48, 48)).astype(np.uint8) for _ in range(2))
    first = 2 * _random_field((6, 6), 3, 7)  # half pixels: whole-pixel moves
    preds = [motion_search._compensated(ref, f, 8) for ref, f in ((ref0, first), (ref1, -first))]
    return ref0, ref1, bi_mean(torch.from_numpy(preds[0]), torch.from_numpy(preds[1])).numpy(), first


def test_the_motion_choice_codes_a_linear_b_frame_on_its_mirrored_first():
    """choose_motion on such a frame finds the pair (but for a block at the edge, as it did before
    version 11), the second the first's opposite, and codes the second on the first: in well
    under the bits of the same fields coded as version 10 does."""
    ref0, ref1, cur, first = _linear_pair()
    y = np.stack([ref0, cur.astype(np.uint8), ref1])
    (block, depth), fields = motion_search.choose_motion(y, (8,), 1e-3, [1, 1], references=[0, 2])
    assert (block, depth) == (8, 0) and np.array_equal(fields[1], -fields[0])
    assert (fields[0] != first).any(-1).sum() <= 1
    assert motion.field_bits(fields, 0, B_PAIR) < 0.75 * motion.field_bits(fields, 0)
    assert bitstream.VERSION >= motion.MIRROR_VERSION


def _sliding_tiles(frames: int = 5, size: int = 32, block: int = 8) -> Clip:
    """Tiles of a texture, each sliding its own way at a constant speed: motion linear in time, rough in space."""
    rng = np.random.default_rng(8)
    texture = rng.integers(16, 240, (size + 32, size + 32)).astype(np.uint8)
    speed = rng.integers(-1, 2, (size // block, size // block, 2))
    y = np.empty((frames, size, size), np.uint8)
    for t in range(frames):
        for i, j in np.ndindex(speed.shape[:2]):
            top, left = 16 + i * block + t * speed[i, j, 0], 16 + j * block + t * speed[i, j, 1]
            y[t, i * block:(i + 1) * block, j * block:(j + 1) * block] = texture[top:top + block, left:left + block]
    chroma = np.full((frames, size // 2, size // 2), 128, np.uint8)
    return Clip(y, chroma, chroma.copy(), Fraction(25))


def test_a_file_with_mirrored_fields_decodes_to_the_encoders_frames_in_another_process(tmp_path):
    """Encoded end to end (intra period 4: B-frames 1, 2, 3), every B-frame's second field codes on
    its first, and the CLI's decode, a separate process, gives the encoder's reconstruction."""
    path, out = tmp_path / "tiles.clv", tmp_path / "recon.y4m"
    preset = replace(PRESETS["test"], iterations=10, motion_blocks=(8,), motion_overlap=True, motion_sharp=True)
    result = encode_clip(_sliding_tiles(), path, lmbda=1e-3, preset=with_prediction(preset, "motion", intra_period=4, bidirectional=True))
    parsed = bitstream.parse_file(path.read_bytes())
    cfg = config_from_header(parsed.header)
    per_field = 2 + cfg.motion_depth
    modes = [parsed.motion[n * per_field] // entropy.NS for n in range(len(cfg.predictions(5)))]
    assert parsed.version == 11 and modes == [0, 1, 0, 1, 0, 1, 0]  # fields of frames 1 (0, 2), 2 (0, 4), 3 (2, 4), 4 (0)
    subprocess.run([sys.executable, "-m", "codec_lab.cli", "decode", str(path), "-o", str(out)], check=True, capture_output=True)
    decoded = read_clip(out)
    assert all(np.array_equal(getattr(decoded, p), getattr(result.reconstruction, p)) for p in "yuv")
    stats = file_stats(path)
    assert [f.index for f in stats.frames if f.mirrored] == [1, 2, 3] and "coded on its first, mirrored" in stats.lines()[-1]
