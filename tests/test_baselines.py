"""The classical anchors through PyAV: real files, decodable, rates that follow the settings."""

from __future__ import annotations

import pytest

from codec_lab.bench import measure
from codec_lab.codecs import get_codec, parse_codec_list
from codec_lab.contracts import Targets
from codec_lab.errors import CodecLabError
from codec_lab.metrics import bitrate_kbps
from tests.conftest import synthetic_clip


@pytest.mark.parametrize("name", ["x264", "x265", "av1"])
def test_crf_sweep_points_are_real_files_whose_rate_falls_with_quality(tmp_path, name):
    clip = synthetic_clip(frames=4, width=64, height=48)
    codec = get_codec(name)
    settings = codec.sweep(clip)
    fine, coarse = (measure(codec, clip, s, tmp_path, Targets(), with_ms_ssim=False) for s in (settings[0], settings[-1]))
    for point in (fine, coarse):
        assert point.frames == 4
        assert 0 < point.payload_bytes < point.file_bytes  # container overhead reported apart
        assert point.kbps == pytest.approx(bitrate_kbps(point.payload_bytes, 4, 25.0))
    assert fine.payload_bytes > coarse.payload_bytes
    assert fine.quality.psnr_yuv > coarse.quality.psnr_yuv
    assert fine.quality.psnr_yuv > 35


def test_odd_sizes_are_padded_for_the_encoder_and_measured_at_the_source_size(tmp_path):
    clip = synthetic_clip(frames=3, width=35, height=27)
    point = measure(get_codec("x264"), clip, {"crf": 18, "preset": "medium"}, tmp_path, Targets(), with_ms_ssim=False)
    assert (point.width, point.height) == (35, 27)
    assert point.quality.psnr_yuv > 35


def test_target_bitrate_mode_two_pass_lands_near_the_target(tmp_path):
    clip = synthetic_clip(frames=12, width=128, height=96)
    codec = get_codec("x264")
    point = measure(codec, clip, {"kbps": 400, "preset": "medium"}, tmp_path, Targets(), with_ms_ssim=False)
    assert 0.6 * 400 < point.kbps < 1.3 * 400


def test_crf_outside_the_encoder_range_is_refused(tmp_path, tiny_clip):
    with pytest.raises(CodecLabError, match="crf 70 is outside 1..63"):
        get_codec("av1").encode(tiny_clip, {"crf": 70}, tmp_path / "x")


def test_codec_names():
    assert parse_codec_list("x264, HEVC,svt-av1") == ["x264", "x265", "av1"]
    with pytest.raises(CodecLabError, match="unknown codec 'vp9'"):
        parse_codec_list("x264,vp9")
    assert get_codec("x265").beyond({"crf": 51}, "lower") is None
    assert get_codec("av1").beyond({"crf": 60}, "lower") == {"crf": 63}  # clamped to the encoder's range
    assert get_codec("x265").beyond({"crf": 20}, "higher") == {"crf": 15}


@pytest.mark.parametrize("name", ["x264", "x265", "av1"])
def test_payload_is_the_coded_samples_in_the_file_plus_the_decoder_configuration(tmp_path, name):
    """Bitrate is honest: the bytes a demuxer hands the decoder, plus the parameter sets (SPS/PPS/VPS) that
    H.264/HEVC keep in the MP4 header (counted as the encoder wrote them, a few bytes under the avcC/hvcC box)."""
    import av

    clip = synthetic_clip(frames=5, width=64, height=48)
    codec = get_codec(name)
    encoded = codec.encode(clip, {"crf": 30}, tmp_path / name)
    with av.open(str(encoded.path)) as container:
        stream = container.streams.video[0]
        samples = sum(packet.size for packet in container.demux(stream) if packet.size)
        config = len(stream.codec_context.extradata or b"") if codec.config_in_extradata else 0
    if codec.config_in_extradata:
        assert samples + 0.5 * config < encoded.payload_bytes <= samples + config
    else:
        assert encoded.payload_bytes == samples


@pytest.mark.parametrize("name, marker", [("x264", b"x264 - core"), ("x265", b"x265 (build")])
def test_encoder_settings_text_is_not_in_the_bitstream(tmp_path, name, marker):
    """x264/x265 write their command line into the stream (~0.7-2.3 KB): not video, so not counted, not kept."""
    clip = synthetic_clip(frames=3, width=64, height=48)
    encoded = get_codec(name).encode(clip, {"crf": 40}, tmp_path / name)
    data = encoded.path.read_bytes()
    assert marker not in data
    assert encoded.payload_bytes < 1000  # three small frames; the settings text alone was larger
    assert get_codec(name).decode(encoded.path).num_frames == 3


def test_a_decoder_that_adds_or_loses_frames_is_an_error_not_a_metric(tmp_path):
    from pathlib import Path

    from codec_lab.bench import matched_to_source

    clip = synthetic_clip(frames=3, width=35, height=27)
    longer = synthetic_clip(frames=4, width=36, height=28)
    with pytest.raises(CodecLabError, match="decoded 4 frames, the source has 3"):
        matched_to_source(longer, clip, Path("x.mp4"))
    assert matched_to_source(longer.head(3), clip, Path("x.mp4")).width == 35


@pytest.mark.parametrize("name", ["x264", "x265"])
def test_keyint_sets_the_intra_period(tmp_path, name):
    import av

    codec = get_codec(name)
    clip = synthetic_clip(frames=7)
    keys = {}
    for keyint in (3, 250):
        encoded = codec.encode(clip, {"crf": 30, "preset": "ultrafast", "keyint": keyint}, tmp_path / f"k{keyint}")
        with av.open(str(encoded.path)) as container:
            keys[keyint] = [i for i, frame in enumerate(container.decode(video=0)) if frame.key_frame]  # display order
    assert keys[3] == [0, 3, 6]
    assert keys[250] == [0]
    with pytest.raises(CodecLabError, match="keyint"):
        get_codec("av1").encode(clip, {"crf": 40, "keyint": 3}, tmp_path / "av1")
    with pytest.raises(CodecLabError, match="keyint"):
        codec.encode(clip, {"kbps": 200, "keyint": 3}, tmp_path / "kbps")
