"""One planning round, as both the local runner and the Plan Lambda do it. No torch here.

The planner sees this video's history, the best results on similar clips and the Analyze
step's SVT-AV1 anchor sweep (as records of a sibling id `<video>.anchors`, so they inform
round 1 without using the experiment budget). Only plans that are new to the store are
returned: a plan id already stored was tried, and is never run again.
"""

from __future__ import annotations

from codec_lab.contracts import (
    BenchResults,
    Budget,
    ExperimentMetrics,
    ExperimentPlan,
    ExperimentRecord,
    ExperimentResult,
    SceneProfile,
    Targets,
    VideoInfo,
)
from codec_lab.planning.scoring import anchors_id, budget_left, score


def anchor_records(anchors: BenchResults | None, profile: SceneProfile, targets: Targets) -> list[ExperimentRecord]:
    """The anchors' SVT-AV1 points as finished `av1` experiments of `<video>.anchors`."""
    records = []
    for point in anchors.points if anchors else []:
        if point.codec != "av1" or "crf" not in point.settings:
            continue
        params = {"crf": int(point.settings["crf"]), "preset": int(point.settings.get("preset", 6))}
        plan = ExperimentPlan(plan_id=f"anchor-av1-crf{params['crf']}-p{params['preset']}", video_id=anchors_id(profile.video_id),
                              round=1, planner="anchor sweep", strategy="av1", parameters=params,
                              rationale="classical anchor sweep of the Analyze step")
        metrics = ExperimentMetrics(quality=point.quality, kbps=point.kbps, payload_bytes=point.payload_bytes,
                                    meets_target=targets.met_by(point.kbps, point.quality.psnr_yuv, point.quality.ssim))
        result = ExperimentResult(plan_id=plan.plan_id, video_id=plan.video_id, status="succeeded", metrics=metrics,
                                  artifacts={"bitstream": point.path}, timings={"encode": point.encode_seconds})
        records.append(ExperimentRecord(video_id=plan.video_id, plan=plan, result=result, scene_class=profile.scene_class,
                                        score=score(metrics, targets)))
    return records


def plan_round(planner, store, info: VideoInfo, profile: SceneProfile, targets: Targets, budget: Budget, n: int,
               anchors: BenchResults | None = None) -> list[ExperimentPlan]:
    """Ask the planner for up to `n` plans, store them, return the ones new to the store."""
    video_id = profile.video_id
    history = store.history_for(video_id)
    left = budget_left(budget, history, video_id)
    plans = planner.propose(info, profile, history + anchor_records(anchors, profile, targets), targets, left, n)
    mine = [p for p in plans if p.video_id == video_id]
    stored = store.put_plans(mine)
    return [p for p, new in zip(mine, stored) if new]
