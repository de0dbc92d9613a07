"""Payloads, job names, S3 URIs, settings and the ingest rules: pure functions, no AWS."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec_lab.aws.lab import rejection_reason
from codec_lab.aws.payloads import JOB_NAME, ExperimentTask, RunState, UploadRef, sagemaker_job_name
from codec_lab.aws.s3uri import S3Uri
from codec_lab.aws.settings import LabSettings, SettingsError


def upload(key="uploads/clip.mp4", size=1000, version="v1", etag="e1"):
    return UploadRef(bucket="b-bucket", key=key, version_id=version, etag=etag, size=size)


@settings(suppress_health_check=[HealthCheck.too_slow])  # long random texts: slow to draw on a loaded machine, not a failure
@given(st.lists(st.text(min_size=1, max_size=80), min_size=1, max_size=6))
def test_job_names_always_fit_sagemakers_rule(parts):
    name = sagemaker_job_name(*parts)
    assert JOB_NAME.match(name) and len(name) <= 63 and "_" not in name


def test_long_job_names_stay_unique():
    a = sagemaker_job_name("cl", "x" * 80, "a")
    b = sagemaker_job_name("cl", "x" * 80, "b")
    assert a != b and len(a) <= 63 and len(b) <= 63


def test_video_id_and_execution_name_come_from_the_idempotency_key():
    first, again, new_version = upload(), upload(), upload(version="v2")
    assert first.video_id == again.video_id and first.execution_name == again.execution_name
    assert first.video_id != new_version.video_id
    assert upload(version=None).identity.endswith("#e1")  # no version: the ETag stands in
    state = RunState.start(first)
    assert state.run_id == f"video-{first.video_id}" and len(state.run_id) <= 80
    assert state.video_uri == "s3://b-bucket/uploads/clip.mp4" and state.video_name == "clip.mp4"
    assert state.analysis_uri == f"s3://b-bucket/runs/{first.video_id}/analysis/"
    assert JOB_NAME.match(state.analyze_job_name)


def test_experiment_task_uris_and_job_name():
    task = ExperimentTask.build(bucket="b-bucket", video_id="0123456789abcdef0123", run_id="video-x", round=2, index=3,
                                plan_id="vid:r2:p3_x", strategy="av1", video_uri="s3://b-bucket/uploads/a.mp4", video_name="a.mp4")
    assert JOB_NAME.match(task.job_name) and task.job_name.startswith("cl-0123456789ab-") and task.job_name.endswith("-r2-03")
    assert task.plan_uri == "s3://b-bucket/runs/0123456789abcdef0123/plans/vid:r2:p3_x/"
    assert task.checkpoint_uri.startswith("s3://b-bucket/tmp/checkpoints/")
    assert len(task.model_dump_json()) < 1024  # 32 of them stay far below Step Functions' 256 KB


@pytest.mark.parametrize("key,size,reason", [
    ("uploads/a.mp4", 0, "empty"),
    ("uploads/a.mp4", 3 * 1024**3, "over the limit"),
    ("uploads/a.txt", 10, "suffix"),
    ("uploads/../etc/a.mp4", 10, ".."),
    ("uploads/a\x07.mp4", 10, "control"),
    ("runs/a.mp4", 10, "not under uploads/"),
])
def test_implausible_uploads_are_rejected_with_a_reason(key, size, reason):
    assert reason in rejection_reason(upload(key=key, size=size), max_bytes=2 * 1024**3)


@pytest.mark.parametrize("key", ["uploads/a.mp4", "uploads/A.MP4", "uploads/x/y.Mov", "uploads/clip.y4m", "uploads/a..b.mkv"])
def test_plausible_uploads_pass(key):
    assert rejection_reason(upload(key=key), max_bytes=2 * 1024**3) is None


def test_s3_uri_round_trip():
    uri = S3Uri.parse("s3://bucket/runs/v/")
    assert str(uri.join("analysis", "profile.json")) == "s3://bucket/runs/v/analysis/profile.json"
    with pytest.raises(ValueError):
        S3Uri.parse("http://bucket/key")


def test_settings_defaults_context_strings_and_errors():
    s = LabSettings.from_mapping({"rounds": "5", "useSpot": "true", "experimentsPerRound": "2"})
    assert s.rounds == 5 and s.use_spot is True and s.max_concurrent_jobs == 2
    assert LabSettings().training_instance_type == "ml.g4dn.xlarge"
    assert LabSettings().foundation_model_id == "anthropic.claude-sonnet-4-20250514-v1:0"
    with pytest.raises(SettingsError, match="unknown setting"):
        LabSettings.from_mapping({"roundz": 3})
    with pytest.raises(SettingsError, match="bedrockRegion"):
        LabSettings.from_mapping({"bedrockRegion": "mars"})
    with pytest.raises(SettingsError, match="maxUploadBytes"):
        LabSettings.from_mapping({"maxUploadBytes": 0})
