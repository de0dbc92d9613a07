"""The metric definitions, checked against independent computations (FFmpeg's psnr filter, a hand SSIM)."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from codec_lab.contracts import Targets
from codec_lab.metrics import PSNR_CAP_DB, bitrate_kbps, bits_per_pixel, evaluate, ms_ssim_window, psnr, tops_per_frame
from codec_lab.video.frames import Clip
from codec_lab.video.planes import planes_to_frame
from tests.conftest import synthetic_clip


def ffmpeg_psnr(ref: Clip, dist: Clip, index: int) -> dict[str, float]:
    """Per-plane PSNR of one frame from FFmpeg's own psnr filter."""
    graph = av.filter.Graph()
    kwargs = dict(width=ref.width, height=ref.height, format="yuv420p", time_base=Fraction(1, 25))
    main, other = graph.add_buffer(**kwargs), graph.add_buffer(**kwargs)
    node, sink = graph.add("psnr"), graph.add("buffersink")
    main.link_to(node, 0, 0)
    other.link_to(node, 0, 1)
    node.link_to(sink)
    graph.configure()
    for source, clip in ((main, dist), (other, ref)):
        frame = planes_to_frame(clip.y[index], clip.u[index], clip.v[index])
        frame.pts, frame.time_base = 0, Fraction(1, 25)
        source.push(frame)
    meta = sink.pull().metadata
    return {plane: float(meta[f"lavfi.psnr.psnr.{plane}"]) for plane in "yuv"}


def hand_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. SSIM with a 7x7 uniform window and sample covariance, borders cropped."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    n = 49
    mean = lambda x: uniform_filter(x, 7)  # noqa: E731
    ma, mb = mean(a), mean(b)
    va = (mean(a * a) - ma * ma) * n / (n - 1)
    vb = (mean(b * b) - mb * mb) * n / (n - 1)
    cov = (mean(a * b) - ma * mb) * n / (n - 1)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return float(s[3:-3, 3:-3].mean())


def noisy(clip: Clip, sigma: float, seed: int = 0) -> Clip:
    rng = np.random.default_rng(seed)
    planes = [np.clip(p + rng.normal(0, sigma, p.shape), 0, 255).astype(np.uint8) for p in clip.planes()]
    return Clip(*planes, clip.fps)


def test_psnr_matches_ffmpeg_psnr_filter_per_plane_and_the_yuv_weighting():
    ref = synthetic_clip(frames=3, width=64, height=48)
    dist = noisy(ref, sigma=4.0)
    quality = evaluate(ref, dist)
    per_frame = [ffmpeg_psnr(ref, dist, i) for i in range(3)]
    assert quality.psnr_y == pytest.approx(np.mean([f["y"] for f in per_frame]), abs=1e-4)
    assert quality.psnr_u == pytest.approx(np.mean([f["u"] for f in per_frame]), abs=1e-4)
    yuv = np.mean([(6 * f["y"] + f["u"] + f["v"]) / 8 for f in per_frame])
    assert quality.psnr_yuv == pytest.approx(yuv, abs=1e-4)


def test_psnr_of_known_errors():
    y = np.full((1, 16, 16), 100, np.uint8)
    c = np.full((1, 8, 8), 128, np.uint8)
    ref = Clip(y, c, c, Fraction(25))
    dist = Clip(y + 1, c + 2, c + 4, Fraction(25))  # MSE 1, 4, 16
    q = evaluate(ref, dist, with_ms_ssim=False)
    expected = [10 * math.log10(255**2 / m) for m in (1, 4, 16)]
    assert (q.psnr_y, q.psnr_u, q.psnr_v) == pytest.approx(expected)
    assert q.psnr_yuv == pytest.approx((6 * expected[0] + expected[1] + expected[2]) / 8)


def test_identical_frames_give_the_documented_cap():
    clip = synthetic_clip(frames=2)
    q = evaluate(clip, clip)
    assert q.psnr_y == q.psnr_yuv == PSNR_CAP_DB == 100.0
    assert q.ssim == pytest.approx(1.0)
    assert q.ms_ssim is None or q.ms_ssim == pytest.approx(1.0)
    assert psnr(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)) == 100.0


def test_ssim_matches_a_hand_computation():
    ref = synthetic_clip(frames=2, width=80, height=64)
    dist = noisy(ref, sigma=6.0, seed=3)
    q = evaluate(ref, dist, with_ms_ssim=False)
    assert q.ssim == pytest.approx(np.mean([hand_ssim(ref.y[i], dist.y[i]) for i in range(2)]), abs=1e-6)
    assert 0.5 < q.ssim < 0.99


def test_ms_ssim_window_and_small_frames():
    assert ms_ssim_window(1080, 1920) == 11
    assert ms_ssim_window(144, 176) == 9
    assert ms_ssim_window(32, 32) is None
    ref = synthetic_clip(frames=2, width=200, height=176)
    worse, better = evaluate(ref, noisy(ref, 12.0)).ms_ssim, evaluate(ref, noisy(ref, 3.0)).ms_ssim
    assert worse < better < 1.0
    assert evaluate(synthetic_clip(frames=1, width=32, height=32), synthetic_clip(frames=1, width=32, height=32)).ms_ssim is None


def test_rate_and_cost_formulas():
    assert bitrate_kbps(1000, frames=25, fps=25) == pytest.approx(8.0)
    assert bits_per_pixel(1000, frames=2, width=100, height=40) == pytest.approx(1.0)
    assert tops_per_frame(1000, 1920, 1080) == pytest.approx(2 * 1000 * 1920 * 1080 / 1e12)


def test_size_mismatch_is_an_error():
    from codec_lab.errors import CodecLabError

    with pytest.raises(CodecLabError, match="sizes differ"):
        evaluate(synthetic_clip(width=64), synthetic_clip(width=62))


def test_targets():
    t = Targets()
    assert t.met_by(999, 35.0, 0.95, 1.0)
    assert not t.met_by(1001, 40, 0.99)
    assert not t.met_by(500, 34.9, 0.99)
    assert not t.met_by(500, 40, 0.94)
    assert not t.met_by(500, 40, 0.99, tops_per_frame=1.5)
