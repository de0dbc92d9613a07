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
MIN_OVERLAP_FRACTION = 0.25  # of the narrower curve's PSNR span


def rd_curve(points: Iterable[RDPoint]) -> tuple[list[float], list[float]]:
    """(kbps, PSNR-YUV) sorted by rate."""
    ordered = sorted(points, key=lambda p: (p.kbps, p.quality.psnr_yuv))
    return [p.kbps for p in ordered], [p.quality.psnr_yuv for p in ordered]


def curve_problem(rates: Sequence[float], dists: Sequence[float]) -> str | None:
    if len(rates) < MIN_POINTS_FOR_BD:
        return f"{len(rates)} points (BD-rate needs {MIN_POINTS_FOR_BD})"
    for i in range(1, len(rates)):
        if rates[i] <= rates[i - 1] or dists[i] <= dists[i - 1]:
            return (f"not monotone: {dists[i]:.2f} dB at {rates[i]:.1f} kbps is no better than "
                    f"{dists[i - 1]:.2f} dB at {rates[i - 1]:.1f} kbps")
    return None


def bd_rate_detail(anchor: Sequence[RDPoint], test: Sequence[RDPoint]) -> tuple[float | None, str | None]:
    """(BD-rate % of `test` against `anchor`, None) or (None, why it cannot be computed).

    Nothing is dropped to make a curve fit: a curve that is not monotone, too short, or
    that overlaps the anchor's quality range by less than a quarter of its span gets no number.
    """
    import bjontegaard

    rate_a, dist_a = rd_curve(anchor)
    rate_t, dist_t = rd_curve(test)
    for name, rates, dists in (("anchor", rate_a, dist_a), ("test", rate_t, dist_t)):
        problem = curve_problem(rates, dists)
        if problem:
            return None, f"{name} curve: {problem}"
    overlap = min(max(dist_a), max(dist_t)) - max(min(dist_a), min(dist_t))
    span = min(max(dist_a) - min(dist_a), max(dist_t) - min(dist_t))
    if overlap < MIN_OVERLAP_FRACTION * span:
        return None, f"the curves share only {max(overlap, 0):.2f} dB of PSNR-YUV (need {MIN_OVERLAP_FRACTION:.0%} of {span:.2f} dB)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = bjontegaard.bd_rate(rate_a, dist_a, rate_t, dist_t, method="akima", require_matching_points=False, min_overlap=0.0)
    except (ValueError, ZeroDivisionError, AssertionError) as exc:
        return None, f"bjontegaard: {exc}"
    return float(value), None


def bd_rate(anchor: Sequence[RDPoint], test: Sequence[RDPoint]) -> float | None:
    return bd_rate_detail(anchor, test)[0]


def bd_rate_table(points: Sequence[RDPoint], anchors: Sequence[str]) -> tuple[dict[str, dict[str, float | None]], dict[str, dict[str, str]]]:
    """({test codec: {anchor: BD-rate %}}, {test codec: {anchor: why not}}) for every codec against every anchor present."""
    by_codec: dict[str, list[RDPoint]] = {}
    for point in points:
        by_codec.setdefault(point.codec, []).append(point)
    values: dict[str, dict[str, float | None]] = {}
    problems: dict[str, dict[str, str]] = {}
    for codec, mine in by_codec.items():
        values[codec] = {}
        for anchor in anchors:
            if anchor in by_codec and anchor != codec:
                values[codec][anchor], problem = bd_rate_detail(by_codec[anchor], mine)
                if problem:
                    problems.setdefault(codec, {})[anchor] = problem
    return values, problems


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
