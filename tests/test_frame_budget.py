"""benchmarks/frame_budget.py: x264 found at a given size or quality, and its frames accounted for."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from frame_budget import nearest_crf, summary, x264_frames  # noqa: E402

from codec_lab.metrics import evaluate  # noqa: E402
from tests.conftest import synthetic_clip  # noqa: E402


def test_x264_is_found_at_the_size_or_quality_asked_and_its_frames_add_up(tmp_path):
    clip = synthetic_clip(frames=8, width=96, height=64)
    (tmp_path / "size").mkdir()
    (tmp_path / "psnr").mkdir()
    from codec_lab.codecs import get_codec

    reference = get_codec("x264").encode(clip, {"crf": 30, "preset": "medium"}, tmp_path / "crf30")
    crf, encoded, _ = nearest_crf(clip, "size", reference.payload_bytes, tmp_path / "size")
    assert crf == 30 and encoded.payload_bytes == reference.payload_bytes
    quality = evaluate(clip, get_codec("x264").decode(reference.path), with_ms_ssim=False).psnr_yuv
    crf, _, decoded = nearest_crf(clip, "psnr", quality, tmp_path / "psnr")
    assert crf == 30 and evaluate(clip, decoded, with_ms_ssim=False).psnr_yuv == quality

    frames = x264_frames(encoded.path)
    assert len(frames) == 8 and frames[0][0] == "I" and {kind for kind, _ in frames} <= {"I", "P", "B"}
    assert 0 < encoded.payload_bytes - sum(size for _, size in frames) < 64  # the rest: SPS and PPS


def test_summary_counts_frames_bytes_and_mean_quality_per_type():
    rows = [("I", 100, 30.0), ("B", 10, 31.0), ("P", 40, 32.0), ("B", 20, 33.0)]
    assert summary(rows) == {"I": (1, 100, 30.0), "P": (1, 40, 32.0), "B": (2, 30, 32.0)}
