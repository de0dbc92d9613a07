"""BD-rate as the lab computes it: checked against a hand-made curve and against refusals."""

from __future__ import annotations

import math

import pytest

from codec_lab.contracts import Quality, RDPoint
from codec_lab.report.rd import bd_rate_detail, bd_rate_table


def curve(codec: str, kbps: list[float], psnr: list[float]) -> list[RDPoint]:
    return [
        RDPoint(codec=codec, settings={"i": i}, frames=1, width=16, height=16, fps=25, payload_bytes=int(r * 5), file_bytes=int(r * 5),
                kbps=r, bpp=0.1, quality=Quality(frames=1, psnr_y=d, psnr_u=d, psnr_v=d, psnr_yuv=d, ssim=0.9),
                encode_seconds=0, decode_seconds=0, meets_target=False, path="x")
        for i, (r, d) in enumerate(zip(kbps, psnr))
    ]


ANCHOR = curve("x265", [100, 200, 400, 800, 1600], [30, 33, 36, 39, 42])


def test_a_curve_needing_half_the_bits_has_bd_rate_minus_50():
    half = curve("test", [50, 100, 200, 400, 800], [30, 33, 36, 39, 42])
    value, problem = bd_rate_detail(ANCHOR, half)
    assert problem is None and value == pytest.approx(-50.0, abs=0.5)
    double = curve("test", [200, 400, 800, 1600, 3200], [30, 33, 36, 39, 42])
    assert bd_rate_detail(ANCHOR, double)[0] == pytest.approx(100.0, abs=1.0)


def test_no_number_for_a_curve_that_is_not_monotone_short_or_barely_overlapping():
    dip = curve("test", [100, 200, 300, 400, 800], [31, 34, 33.5, 39, 42])
    value, problem = bd_rate_detail(ANCHOR, dip)
    assert value is None and "not monotone" in problem
    assert "3 points" in bd_rate_detail(ANCHOR, curve("t", [1, 2, 3], [30, 31, 32]))[1]
    far = curve("t", [10, 20, 40, 80], [41.9, 50, 55, 60])
    value, problem = bd_rate_detail(ANCHOR, far)
    assert value is None and "share only" in problem


def test_table_has_every_codec_against_every_anchor_with_reasons():
    points = ANCHOR + curve("av1", [60, 120, 240, 480, 960], [30, 33, 36, 39, 42]) + curve("nn", [10, 20], [30, 31])
    values, notes = bd_rate_table(points, ("x265", "av1"))
    assert math.isclose(values["av1"]["x265"], -40.0, abs_tol=1.0)
    assert values["x265"]["av1"] > 0 and values["nn"] == {"x265": None, "av1": None}
    assert "2 points" in notes["nn"]["x265"]
