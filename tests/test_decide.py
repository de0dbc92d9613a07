"""The Decide step as a pure function (the Decide Lambda calls the same one)."""

from __future__ import annotations

from codec_lab.contracts import Budget, ExperimentPlan, ExperimentRecord, Targets
from codec_lab.decide import decide
from codec_lab.planning.samples import failed_result, sample_result


def record(i: int, round_: int, kbps: float | None, psnr: float = 36.0) -> ExperimentRecord:
    plan = ExperimentPlan(plan_id=f"p{i}", video_id="v", round=round_, planner="t", strategy="av1",
                          parameters={"crf": 30 + i}, rationale="test")
    result = failed_result(plan, "boom") if kbps is None else sample_result(plan, kbps, psnr)
    return ExperimentRecord(video_id="v", plan=plan, result=result)


def test_continue_while_budget_left_and_target_missed():
    d = decide("v", [record(0, 1, 2000)], Targets(), Budget(experiments=4, rounds=3))
    assert not d.stop and d.best_plan_id == "p0" and d.budget_left.rounds == 2


def test_stop_when_the_target_is_met():
    d = decide("v", [record(0, 1, 2000), record(1, 1, 800, psnr=36)], Targets(), Budget(experiments=4, rounds=3))
    assert d.stop and d.target_met and d.best_plan_id == "p1" and "target met" in d.reason


def test_stop_when_rounds_or_experiments_run_out():
    assert "rounds done" in decide("v", [record(0, 2, 2000)], Targets(), Budget(experiments=9, rounds=2)).reason
    d = decide("v", [record(0, 1, 2000), record(1, 1, None)], Targets(), Budget(experiments=2, rounds=5))
    assert d.stop and "experiment budget spent" in d.reason and not d.target_met


def test_stop_when_the_planner_had_nothing():
    d = decide("v", [], Targets(), Budget(), planned_nothing=True)
    assert d.stop and "no valid experiment" in d.reason and d.best_plan_id is None


def test_targets_are_judged_now_not_by_the_flag_stored_with_the_result():
    met_then = record(0, 1, 800, psnr=36)
    assert met_then.result.metrics.meets_target
    d = decide("v", [met_then], Targets(max_kbps=100), Budget(experiments=4, rounds=3))
    assert not d.stop and not d.target_met
