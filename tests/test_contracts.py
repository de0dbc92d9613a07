"""Contracts: JSON round trips, unknown fields rejected with the field named, version gate."""

import json

import pytest
from pydantic import ValidationError

from codec_lab.contracts import (
    CONTRACT_VERSION,
    AuditRecord,
    Budget,
    ExperimentMetrics,
    ExperimentPlan,
    ExperimentRecord,
    ExperimentResult,
    ParamSpec,
    SceneProfile,
    Targets,
    VideoRecord,
)
from codec_lab.planning.samples import failed_result, sample_metrics, sample_profile, sample_result, sample_video
from codec_lab.planning.space import default_search_space


def _plan(**kw):
    base = dict(strategy="av1", parameters={"crf": 40, "preset": 8}, rationale="anchor", plan_id="r01-00-abc",
                video_id="v1", round=1, planner="local:optuna-tpe")
    return ExperimentPlan(**{**base, **kw})


def test_seed_targets_are_the_defaults():
    t = Targets()
    assert (t.max_kbps, t.min_psnr_yuv, t.min_ssim, t.max_tops_per_frame) == (1000.0, 35.0, 0.95, 1.33)
    assert Targets(max_kbps=500).max_kbps == 500


@pytest.mark.parametrize("model,payload", [
    (ExperimentPlan, lambda: _plan().model_dump(mode="json")),
    (ExperimentResult, lambda: sample_result(_plan(), 300, 37).model_dump(mode="json")),
    (SceneProfile, lambda: sample_profile().model_dump(mode="json")),
    (Budget, lambda: Budget().model_dump(mode="json")),
    (VideoRecord, lambda: VideoRecord(video_id="v1", source_uri="s3://b/uploads/x.mp4", info=sample_video(),
                                      profile=sample_profile()).model_dump(mode="json")),
])
def test_json_round_trip_and_unknown_field_is_named(model, payload):
    data = payload()
    again = model.model_validate_json(json.dumps(data))
    assert again.model_dump(mode="json") == data
    with pytest.raises(ValidationError) as err:
        model.model_validate({**data, "surprise": 1})
    assert "surprise" in str(err.value)


def test_invalid_field_is_named_in_the_error():
    data = _plan().model_dump(mode="json")
    data["strategy"] = "text_to_video"
    with pytest.raises(ValidationError) as err:
        ExperimentPlan.model_validate(data)
    assert err.value.errors()[0]["loc"] == ("strategy",)


def test_newer_contract_version_is_refused():
    data = _plan().model_dump(mode="json")
    data["version"] = CONTRACT_VERSION + 1
    with pytest.raises(ValidationError) as err:
        ExperimentPlan.model_validate(data)
    assert err.value.errors()[0]["loc"] == ("version",)


def test_result_status_must_match_its_content():
    with pytest.raises(ValidationError, match="needs metrics"):
        ExperimentResult(plan_id="p", video_id="v", status="succeeded")
    with pytest.raises(ValidationError, match="needs an error"):
        ExperimentResult(plan_id="p", video_id="v", status="failed")
    assert failed_result(_plan(), "CUDA out of memory").error == "CUDA out of memory"


def test_metrics_reject_non_finite_numbers_and_carry_target_verdict():
    assert sample_metrics(300, 36.0).meets_target is True
    assert sample_metrics(1300, 36.0).meets_target is False
    assert sample_metrics(300, 36.0, tops=2.0).meets_target is False
    data = sample_metrics(300, 36.0).model_dump()
    with pytest.raises(ValidationError, match="kbps"):
        ExperimentMetrics.model_validate({**data, "kbps": float("inf")})


def test_parameter_values_keep_their_json_type():
    plan = ExperimentPlan.model_validate_json(json.dumps({**_plan().model_dump(mode="json"),
                                                          "parameters": {"crf": 40, "lmbda": 0.5, "flag": True, "p": "fast"}}))
    assert plan.parameters == {"crf": 40, "lmbda": 0.5, "flag": True, "p": "fast"}
    assert [type(v) for v in plan.parameters.values()] == [int, float, bool, str]


def test_search_space_marks_the_runnable_strategies():
    space = default_search_space()
    assert [s.name for s in space.strategies] == ["semantic_latent", "i_frame_interpolation", "hybrid_semantic", "av1"]
    assert [s.name for s in space.runnable()] == ["semantic_latent", "av1"]
    lmbda = space.strategy("semantic_latent").param("lmbda")
    assert (lmbda.low, lmbda.high, lmbda.log) == (1e-4, 1e-1, True)
    crf = space.strategy("av1").param("crf")
    assert (crf.low, crf.high) == (20, 63)
    assert [s.name for s in space.only(["av1"]).runnable()] == ["av1"]
    assert SearchSpaceRoundTrip(space)


def SearchSpaceRoundTrip(space):  # noqa: N802 - helper
    from codec_lab.contracts import SearchSpace

    return SearchSpace.model_validate_json(space.model_dump_json()) == space


def test_param_spec_checks_its_bounds():
    with pytest.raises(ValidationError, match="low <= high"):
        ParamSpec(name="crf", kind="int", low=63, high=20, default=30)
    with pytest.raises(ValidationError, match="choices"):
        ParamSpec(name="preset", kind="categorical", default="fast")


def test_record_status_follows_the_result():
    plan = _plan()
    assert ExperimentRecord(video_id="v1", plan=plan).status == "planned"
    assert not ExperimentRecord(video_id="v1", plan=plan).finished
    assert ExperimentRecord(video_id="v1", plan=plan, result=failed_result(plan, "boom")).status == "failed"


def test_audit_record_round_trip():
    rec = AuditRecord(audit_id="a1", video_id="v1", round=1, attempt=1, planner="bedrock:x",
                      request={"messages": []}, response={"output": {}})
    assert AuditRecord.model_validate_json(rec.model_dump_json()) == rec
