"""BD-rate and RD plots over `RDPoint`s: the one place curves are compared.

BD-rate uses the `bjontegaard` package (Akima interpolation) on kbps against
PSNR-YUV. A negative value means the test codec needs that percentage fewer
bits than the anchor for the same quality over the overlapping quality range.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from codec_lab.contracts import RDPoint, Targets

MIN_POINTS_FOR_BD = 4


def rd_curve(points: Iterable[RDPoint]) -> tuple[list[float], list[float]]:
    """(kbps, PSNR-YUV) sorted by rate, one point per distinct rate, monotone in quality."""
    ordered = sorted(points, key=lambda p: p.kbps)
    rates, dists = [], []
    for point in ordered:
        if rates and (point.kbps <= rates[-1] or point.quality.psnr_yuv <= dists[-1]):
            continue  # a point that is not better than a cheaper one is off the convex-ish hull
        rates.append(point.kbps)
        dists.append(point.quality.psnr_yuv)
    return rates, dists


def bd_rate(anchor: Sequence[RDPoint], test: Sequence[RDPoint]) -> float | None:
    """BD-rate in percent of `test` against `anchor`, or None when the curves cannot be compared."""
    import bjontegaard

    rate_a, dist_a = rd_curve(anchor)
    rate_t, dist_t = rd_curve(test)
    if len(rate_a) < MIN_POINTS_FOR_BD or len(rate_t) < MIN_POINTS_FOR_BD:
        return None
    overlap = min(max(dist_a), max(dist_t)) - max(min(dist_a), min(dist_t))
    if overlap <= 0:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = bjontegaard.bd_rate(
                rate_a, dist_a, rate_t, dist_t, method="akima", require_matching_points=False, min_overlap=0.0
            )
    except (ValueError, ZeroDivisionError, AssertionError):
        return None
    return float(value)


def bd_rate_table(points: Sequence[RDPoint], anchors: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """{test codec: {anchor codec: BD-rate %}} for every codec present against every anchor present."""
    by_codec: dict[str, list[RDPoint]] = {}
    for point in points:
        by_codec.setdefault(point.codec, []).append(point)
    return {
        codec: {anchor: bd_rate(by_codec[anchor], mine) for anchor in anchors if anchor in by_codec and anchor != codec}
        for codec, mine in by_codec.items()
    }


def plot_rd(points: Sequence[RDPoint], path: Path, targets: Targets, title: str) -> Path:
    """PSNR-YUV against kbps, one curve per codec, the target region marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    codecs = sorted({p.codec for p in points})
    for codec in codecs:
        mine = sorted((p for p in points if p.codec == codec), key=lambda p: p.kbps)
        ax.plot([p.kbps for p in mine], [p.quality.psnr_yuv for p in mine], marker="o", label=codec)
    ax.axvline(targets.max_kbps, color="grey", linestyle="--", linewidth=1)
    ax.axhline(targets.min_psnr_yuv, color="grey", linestyle="--", linewidth=1)
    ax.fill_between(
        [0, targets.max_kbps], targets.min_psnr_yuv, max([p.quality.psnr_yuv for p in points] + [targets.min_psnr_yuv + 1]) + 1,
        color="tab:green", alpha=0.08, label=f"target: <= {targets.max_kbps:g} kbps, >= {targets.min_psnr_yuv:g} dB",
    )
    ax.set_xscale("log")
    ax.set_xlabel("bitrate (kbps, from payload bytes)")
    ax.set_ylabel("PSNR-YUV (dB, (6Y+U+V)/8)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
