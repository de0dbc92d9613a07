"""The .clv parser against damaged, truncated and hostile files: a BitstreamError, never a crash or a hang."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec_lab.codec import bitstream
from codec_lab.codec.decoder import decode_bytes, decode_file
from codec_lab.codec.encoder import encode_clip
from codec_lab.codec.model import (
    arm_param_shapes,
    config_from_header,
    synth_param_shapes,
)
from codec_lab.codec.presets import PRESETS, with_prediction
from codec_lab.errors import BitstreamError
from tests.conftest import motion_as_tree, synthetic_clip

torch.set_num_threads(1)
SMALL_CAP = 8 * 64 * 64  # decode cap for mutated files: a mutation may claim a bigger clip, never a long decode


@pytest.fixture(scope="module", params=["intra", "previous", "motion", "motion tree", "motion overlap", "motion sharp", "motion B"])
def good_file(request, tmp_path_factory) -> bytes:
    """"motion tree": the motion file's fields coded as quadtrees (format version 7's split flags);
    "motion overlap": compensated overlapped (version 8); "motion sharp": overlapped, quarter-pixel
    vectors and 6-tap interpolation (version 9); "motion B": 3 frames, key frame 2 predicted from
    frame 0 and frame 1 a B-frame of both (version 10)."""
    bidirectional = request.param == "motion B"
    clip = synthetic_clip(frames=3 if bidirectional else 2, height=32, width=32)
    path = tmp_path_factory.mktemp("bs") / "good.clv"
    prediction = request.param.split()[0]
    preset = replace(PRESETS["test"], iterations=10, motion_blocks=(16,), motion_overlap=request.param in ("motion overlap", "motion sharp"),
                     motion_sharp=request.param == "motion sharp")
    preset = with_prediction(preset, prediction, intra_period=2 if bidirectional else None, bidirectional=bidirectional or None)
    encode_clip(clip, path, lmbda=1e-3, preset=preset)
    return motion_as_tree(path.read_bytes(), 2) if request.param == "motion tree" else path.read_bytes()


def reseal(data: bytes) -> bytes:
    """Recompute the CRC so a mutation reaches the parser instead of the checksum."""
    body = data[:-4] if len(data) >= 4 else data
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def decode_or_error(data: bytes) -> None:
    try:
        decoded = decode_bytes(data, max_pixels=SMALL_CAP)
    except BitstreamError as exc:
        assert str(exc)  # a message a user can read
        return
    assert decoded.clip.num_frames >= 1


def test_good_file_decodes(good_file):
    header = bitstream.parse_file(good_file).header
    assert decode_bytes(good_file).clip.num_frames == (3 if header.bidirectional else 2)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not a codec-lab"),
        (b"RIFF" + bytes(40), "not a codec-lab"),
        (bitstream.MAGIC, "newer|ends early|truncated"),
    ],
)
def test_wrong_magic_or_empty(data, message):
    with pytest.raises(BitstreamError, match=message):
        decode_bytes(data)


def test_future_version_is_named(good_file):
    data = bytearray(good_file)
    data[4] = bitstream.VERSION + 1
    with pytest.raises(BitstreamError, match="newer than this codec-lab"):
        decode_bytes(reseal(bytes(data)))


def test_any_damage_is_caught_by_the_crc(good_file):
    data = bytearray(good_file)
    data[len(data) // 2] ^= 0x10
    with pytest.raises(BitstreamError, match="CRC"):
        decode_bytes(bytes(data))


@pytest.mark.parametrize("cut", [1, 5, 7, 12, 30, -40, -5, -1])
def test_truncated_files(good_file, cut):
    with pytest.raises(BitstreamError):
        decode_bytes(good_file[:cut])


def _header_offset(data: bytes) -> int:
    return 7


def test_section_length_past_the_end(good_file):
    parsed = bitstream.parse_file(good_file)
    (hlen,) = struct.unpack(">H", good_file[5:7])
    at = 7 + hlen
    data = bytearray(good_file)
    data[at : at + 4] = struct.pack(">I", 0xFFFFFFF0)
    with pytest.raises(BitstreamError, match="ends early"):
        decode_bytes(reseal(bytes(data)))
    assert parsed.weights  # the good file has a weights section


def test_absurd_sizes_are_refused_before_allocating(good_file):
    parsed = bitstream.parse_file(good_file)
    huge = replace(parsed.header, width=8192, height=8192, frames=10000)
    data = bitstream.write_file(huge, parsed.weights, parsed.latents, parsed.motion)
    with pytest.raises(BitstreamError, match="cap"):
        decode_bytes(data)
    # within the pixel cap but far more latents than the section could hold
    big = replace(parsed.header, width=4000, height=4000, frames=10)
    data = bitstream.write_file(big, parsed.weights, parsed.latents, parsed.motion)
    with pytest.raises(BitstreamError, match="cannot hold"):
        decode_bytes(data)
    with pytest.raises(BitstreamError, match="frame size"):
        bitstream.parse_header(bitstream.pack_header(replace(parsed.header, width=0)))
    with pytest.raises(BitstreamError, match="intra period 65535 above"):
        bitstream.parse_header(bitstream.pack_header(replace(parsed.header, intra_period=0xFFFF)))


def test_hostile_network_shapes(good_file):
    parsed = bitstream.parse_file(good_file)
    for bad in (
        replace(parsed.header, synth=((3, 5, 0),)),  # kernel 5
        replace(parsed.header, synth=((4, 1, 1),)),  # does not end with 3 channels
        replace(parsed.header, synth=((3, 1, 2),)),  # residual that changes channels
        replace(parsed.header, levels=0, temporal_strides=()),
        replace(parsed.header, temporal_strides=(3,) * parsed.header.levels),
        replace(parsed.header, arm_layers=9),
        replace(parsed.header, synth_shift=40),
    ):
        with pytest.raises(BitstreamError):
            decode_bytes(bitstream.write_file(bad, parsed.weights, parsed.latents, parsed.motion))


def test_hostile_inter_networks(good_file):
    parsed = bitstream.parse_file(good_file)
    for bad, message in (
        (replace(parsed.header, inter_synth=((4, 1, 1),)), "end with 3 channels"),
        (replace(parsed.header, inter_synth=((3, 1, 2),)), "residual"),  # the input has levels + 3 channels
        (replace(parsed.header, inter_synth=((3, 7, 0),)), "bad inter synthesis layer"),
        (replace(parsed.header, inter_shift=40), "inter weight shift"),
    ):
        with pytest.raises(BitstreamError, match=message):
            decode_bytes(bitstream.write_file(bad, parsed.weights, parsed.latents, parsed.motion))


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 6, 7, 8, 9])
def test_older_versions_still_decode(tmp_path, version):
    """Version 1 (all-intra) lacks the inter fields, version 2 the motion field and section, version 3
    the intra period, version 4 the ARM context (its files all use the "phases" one), version 5 the
    key prediction flag, version 6 the motion split depth, version 7 the overlap flag, version 8 the
    sharp interpolation flag, version 9 the bidirectional flag: the same frames come out."""
    path = tmp_path / "intra.clv"
    preset = replace(PRESETS["test"], iterations=5)
    preset = replace(preset, config=replace(preset.config, arm_context="phases"))
    encode_clip(synthetic_clip(frames=2, height=32, width=32), path, lmbda=1e-3, preset=preset)
    good_file = path.read_bytes()
    parsed = bitstream.parse_file(good_file)
    assert not parsed.header.inter_synth and not parsed.header.motion_block and parsed.header.arm_context == "phases"
    # version 10 ends the header with: 0 inter layers (u8), the inter shift (u8), the motion block size (u8),
    # the intra period (u16), the ARM context (u8), the key prediction flag (u8), the motion split depth (u8),
    # the overlap flag (u8), the sharp flag (u8), the bidirectional flag (u8)
    body = bitstream.pack_header(parsed.header)[: {1: -11, 2: -9, 3: -8, 4: -6, 5: -5, 6: -4, 7: -3, 8: -2, 9: -1}[version]]
    old = bitstream.MAGIC + struct.pack(">BH", version, len(body)) + body
    weights = parsed.weights
    if version < 4:  # version 4's weights section gives each tensor a coarsening: before, every tensor had its network's step
        cfg = config_from_header(parsed.header)
        ints, coarsen = bitstream.unpack_weights(parsed.weights, synth_param_shapes(cfg) + arm_param_shapes(cfg))
        writer = bitstream.BitWriter()
        for t, c in zip(ints, coarsen):
            flat = t.reshape(-1) * 2**c
            k = min(range(16), key=lambda kk: bitstream.eg_bits(flat, kk))
            writer.write(k, 4)
            bitstream.write_eg(writer, flat, k)
        weights = writer.to_bytes()
    old += struct.pack(">I", len(weights)) + weights
    if version >= 3:
        old += struct.pack(">I", 0)  # the (empty) motion section
    old += struct.pack(">I", len(parsed.latents)) + parsed.latents
    old += struct.pack(">I", zlib.crc32(old) & 0xFFFFFFFF)
    assert bitstream.parse_file(old).header.arm_context == "phases"
    before, now = decode_bytes(old).clip, decode_bytes(good_file).clip
    assert all((getattr(before, p) == getattr(now, p)).all() for p in "yuv")


def test_wider_network_than_the_weights_section(good_file):
    parsed = bitstream.parse_file(good_file)
    wide = replace(parsed.header, synth=((64, 1, 1), (64, 3, 1), (3, 3, 0)))
    with pytest.raises(BitstreamError, match="weight"):  # section too short, or a code read past the real weights out of range
        decode_bytes(bitstream.write_file(wide, parsed.weights, parsed.latents, parsed.motion))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_byte_mutations(good_file, data):
    """Mutations with the CRC left alone: caught up front."""
    blob = bytearray(good_file)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255).filter(lambda b, i=i: b != blob[i]))
    with pytest.raises(BitstreamError):
        decode_bytes(bytes(blob), max_pixels=SMALL_CAP)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_resealed_mutations_reach_the_parser(good_file, data):
    """Mutations with a valid CRC (a hostile writer): a clean decode or a BitstreamError, nothing else."""
    blob = bytearray(good_file[:-4])
    kind = data.draw(st.sampled_from(["flip", "insert", "delete", "header"]))
    if kind == "header":
        i = data.draw(st.integers(0, min(len(blob) - 1, 40)))
        blob[i] = data.draw(st.integers(0, 255))
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 3))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "insert":
        i = data.draw(st.integers(0, len(blob)))
        blob[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    else:
        i = data.draw(st.integers(0, len(blob) - 1))
        del blob[i : i + data.draw(st.integers(1, 8))]
    decode_or_error(reseal(bytes(blob) + b"\0\0\0\0"))


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=0, max_size=200))
def test_arbitrary_bytes_after_the_magic(tail):
    decode_or_error(reseal(bitstream.MAGIC + bytes([bitstream.VERSION]) + tail + b"\0\0\0\0"))


def test_unknown_arm_context_is_refused(good_file):
    header_len = struct.unpack(">H", good_file[5:7])[0]
    assert bitstream.parse_file(good_file).header.arm_context == "raster"
    data = bytearray(good_file)
    data[7 + header_len - 6] = len(bitstream.ARM_CONTEXTS)  # the header's sixth byte from the end: the ARM context id
    with pytest.raises(BitstreamError, match="ARM context id"):
        decode_bytes(reseal(bytes(data)))


def test_a_bad_key_prediction_flag_is_refused(good_file):
    """The header's fifth byte from the end: 0 or 1, and 1 only with an inter synthesis and an intra
    period; 0 not with B-frames."""
    header_len = struct.unpack(">H", good_file[5:7])[0]
    header = bitstream.parse_file(good_file).header
    keyed = bool(header.inter_synth and header.intra_period)
    assert header.key_prediction == keyed  # the presets' default, wherever it applies
    for flag in (0, 1, 2):
        data = bytearray(good_file)
        data[7 + header_len - 5] = flag
        if flag == 2 or (flag == 1 and not keyed):
            with pytest.raises(BitstreamError, match=f"key prediction flag {flag}" if flag == 2 else "key prediction without"):
                decode_bytes(reseal(bytes(data)))
        elif flag == 0 and header.bidirectional:
            with pytest.raises(BitstreamError, match="B-frames without key prediction"):
                decode_bytes(reseal(bytes(data)))
        else:  # a legal flag (2 frames, no key frame after frame 0): it decodes
            decode_bytes(reseal(bytes(data)))


def test_a_bad_bidirectional_flag_is_refused(good_file):
    """The header's last byte: 0 or 1, and 1 only with key prediction."""
    header_len = struct.unpack(">H", good_file[5:7])[0]
    header = bitstream.parse_file(good_file).header
    for flag in (0, 1, 2):
        data = bytearray(good_file)
        data[7 + header_len - 1] = flag
        if flag == 2:
            with pytest.raises(BitstreamError, match="bidirectional flag 2 is not 0 or 1"):
                decode_bytes(reseal(bytes(data)))
        elif flag == 1 and not header.key_prediction:
            with pytest.raises(BitstreamError, match="B-frames without key prediction"):
                decode_bytes(reseal(bytes(data)))
        elif flag == int(header.bidirectional):
            decode_bytes(reseal(bytes(data)))
        else:  # another frame structure than the file's: a different count of motion fields, or of frames to predict
            decode_or_error(reseal(bytes(data)))


def test_a_version_4_file_written_by_the_old_encoder_decodes_to_the_same_frames():
    """tests/data/v4_motion.clv: written by commit b850828 (format version 4, phases context, motion,
    an intra frame every second frame; synthetic_clip(frames=3), preset test, lambda 1e-3). The hash is of
    the frames that commit's decoder produced: the phases decoder must not drift."""
    import hashlib
    from pathlib import Path

    import numpy as np

    path = Path(__file__).parent / "data" / "v4_motion.clv"
    assert bitstream.parse_file(path.read_bytes()).version == 4
    clip = decode_file(path).clip
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(getattr(clip, p)).tobytes() for p in "yuv")).hexdigest()
    assert digest == "b0102ccd10ecb8259dc8a6bfd278ff8e3089df8cf0bbd2297bf6b3cc601e7c0b"
