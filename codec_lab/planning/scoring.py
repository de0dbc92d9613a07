"""One scalar per result, shared by the local planner (its objective) and the store (its index).

Feasible results (all targets met) score >= about 0 and rank by bits saved; infeasible ones
score below -1 and rank by how far they miss. Higher is better.

    feasible:   log2(max_kbps / kbps) + 0.1 * min(psnr_yuv - min_psnr, 10) - 0.1 * tops / max_tops
    infeasible: -1 - (log2 excess rate + dB short + 100 * SSIM short + log2 excess decoder cost)
    failed:     FAILED_SCORE
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from codec_lab.contracts import Budget, ExperimentMetrics, ExperimentRecord, Targets

FAILED_SCORE = -50.0


def score(metrics: ExperimentMetrics, targets: Targets) -> float:
    kbps = max(metrics.kbps, 1e-3)
    psnr, ssim, tops = metrics.quality.psnr_yuv, metrics.quality.ssim, metrics.tops_per_frame
    if targets.met_by(kbps, psnr, ssim, tops):
        value = math.log2(targets.max_kbps / kbps) + 0.1 * min(psnr - targets.min_psnr_yuv, 10.0)
        if tops is not None:
            value -= 0.1 * tops / targets.max_tops_per_frame
        return round(value, 6)
    miss = max(0.0, math.log2(kbps / targets.max_kbps))
    miss += max(0.0, targets.min_psnr_yuv - psnr)
    miss += 100.0 * max(0.0, targets.min_ssim - ssim)
    if tops is not None and tops > 0:
        miss += max(0.0, math.log2(tops / targets.max_tops_per_frame))
    return round(-1.0 - miss, 6)


def anchors_id(video_id: str) -> str:
    """The id under which a clip's classical anchor sweep is handed to planners."""
    return f"{video_id}.anchors"


def measured_on_clip(record_video_id: str, video_id: str) -> bool:
    """This clip's own experiments and its anchor points: settings measured here need no new experiment."""
    return record_video_id in (video_id, anchors_id(video_id))


def record_score(record: ExperimentRecord, targets: Targets) -> float | None:
    """Score of a stored experiment under `targets`; None while it has no result."""
    if record.result is None:
        return None
    if record.result.status == "failed" or record.result.metrics is None:
        return FAILED_SCORE
    return score(record.result.metrics, targets)


def rounds_done(history: Sequence[ExperimentRecord], video_id: str) -> int:
    return max((r.plan.round for r in history if r.video_id == video_id), default=0)


def budget_left(total: Budget, history: Sequence[ExperimentRecord], video_id: str) -> Budget:
    """What is left of `total` after this video's experiments (planned ones count: they may be running)."""
    mine = [r for r in history if r.video_id == video_id]
    spent_gpu = 0.0
    for r in mine:
        measured = r.result.timings.get("gpu") if r.result else None
        spent_gpu += measured if measured is not None else r.plan.est_gpu_seconds
    return Budget(
        experiments=max(0, total.experiments - len(mine)),
        gpu_seconds=max(0.0, total.gpu_seconds - spent_gpu),
        rounds=max(0, total.rounds - rounds_done(history, video_id)),
    )
