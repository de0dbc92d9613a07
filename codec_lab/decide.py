"""The Decide step: plan another round, or stop (targets met, budget spent, rounds done). No torch here."""

from __future__ import annotations

from collections.abc import Sequence

from codec_lab.contracts import Budget, Decision, ExperimentMetrics, ExperimentRecord, Targets
from codec_lab.planning.scoring import budget_left, record_score


def meets(metrics: ExperimentMetrics, targets: Targets) -> bool:
    """Judged now, against these targets (the flag stored with a result used the targets of its day)."""
    return targets.met_by(metrics.kbps, metrics.quality.psnr_yuv, metrics.quality.ssim, metrics.tops_per_frame)


def best_record(records: Sequence[ExperimentRecord], targets: Targets) -> ExperimentRecord | None:
    scored = [(record_score(r, targets), r) for r in records if r.result is not None and r.result.status == "succeeded"]
    return max(scored, key=lambda pair: pair[0])[1] if scored else None


def decide(video_id: str, records: Sequence[ExperimentRecord], targets: Targets, budget: Budget, *, planned_nothing: bool = False) -> Decision:
    """Stop when an experiment meets every target, or when the budget (rounds, experiments, seconds) is spent."""
    mine = [r for r in records if r.video_id == video_id]
    left = budget_left(budget, mine, video_id)
    best = best_record(mine, targets)
    met = best is not None and meets(best.result.metrics, targets)
    if met:
        m = best.result.metrics
        reason = f"target met by {best.plan.strategy} {dict(best.plan.parameters)}: {m.kbps:.0f} kbps, {m.quality.psnr_yuv:.2f} dB"
    elif planned_nothing:
        reason = "the planner proposed no valid experiment (see the audit trail)"
    elif left.rounds == 0:
        reason = f"all {budget.rounds} rounds done"
    elif left.experiments == 0:
        reason = f"experiment budget spent ({budget.experiments})"
    elif left.gpu_seconds <= 0:
        reason = f"compute budget spent ({budget.gpu_seconds:.0f} s)"
    else:
        return Decision(stop=False, reason="plan another round", best_plan_id=best.plan.plan_id if best else None, budget_left=left)
    return Decision(stop=True, reason=reason, best_plan_id=best.plan.plan_id if best else None, target_met=met, budget_left=left)
