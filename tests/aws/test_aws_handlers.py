"""The Lambda handlers against moto (S3, DynamoDB, Step Functions): ingest, plan, record, decide, report."""

from __future__ import annotations

import importlib
import json

import pytest

from awslab_testing import BUCKET, IDEMPOTENCY, TABLE, av1_only_planner, model_tarball
from codec_lab.aws.payloads import RunState, UploadRef
from codec_lab.contracts import ExperimentPlan, ExperimentResult, SceneProfile, VideoInfo


def event(key="uploads/clip.mp4", size=123456, version="3HL4kqtJlcpXroDTDmJ", etag="abc123"):
    return {"version": "0", "id": "e-1", "detail-type": "Object Created", "source": "aws.s3", "account": "123456789012",
            "region": "us-east-1", "resources": [f"arn:aws:s3:::{BUCKET}"],
            "detail": {"version": "0", "bucket": {"name": BUCKET},
                       "object": {"key": key, "size": size, "etag": etag, "version-id": version, "sequencer": "1"},
                       "request-id": "r", "requester": "123456789012", "reason": "PutObject"}}


@pytest.fixture
def env(aws, monkeypatch):
    sm = aws["stepfunctions"].create_state_machine(
        name="pipeline", roleArn="arn:aws:iam::123456789012:role/sfn",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))
    values = {"TABLE_NAME": TABLE, "BUCKET_NAME": BUCKET, "IDEMPOTENCY_TABLE": IDEMPOTENCY,
              "STATE_MACHINE_ARN": sm["stateMachineArn"], "MAX_UPLOAD_BYTES": str(1024**3), "MAX_ROUNDS": "2",
              "EXPERIMENTS_PER_ROUND": "2", "BUDGET_GPU_SECONDS": "7200"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    from lambdas import _common

    _common.reset()
    yield {**values, "sm": sm["stateMachineArn"]}
    _common.reset()


def load(name):
    return importlib.reload(importlib.import_module(f"lambdas.{name}"))


def executions(aws, arn):
    return aws["stepfunctions"].list_executions(stateMachineArn=arn)["executions"]


def test_ingest_starts_one_execution_and_a_duplicate_starts_nothing(env, aws, store, context):
    ingest = load("ingest")
    first = ingest.handler(event(), context)
    assert first["accepted"] and first["started"]
    video_id = UploadRef(bucket=BUCKET, key="uploads/clip.mp4", version_id="3HL4kqtJlcpXroDTDmJ", size=1).video_id
    assert first["execution_name"] == f"video-{video_id}"
    assert store.get_video(video_id).status == "received"
    (execution,) = executions(aws, env["sm"])
    described = aws["stepfunctions"].describe_execution(executionArn=execution["executionArn"])
    state = RunState.model_validate_json(described["input"])
    assert state.video_uri == f"s3://{BUCKET}/uploads/clip.mp4" and state.video_id == video_id

    again = ingest.handler(event(), context)  # EventBridge delivers at least once
    assert again == first
    assert len(executions(aws, env["sm"])) == 1

    other_version = ingest.handler(event(version="v2"), context)
    assert other_version["started"] and len(executions(aws, env["sm"])) == 2


def test_ingest_rejects_with_a_recorded_reason(env, aws, store, context):
    ingest = load("ingest")
    out = ingest.handler(event(key="uploads/empty.mp4", size=0), context)
    assert not out["accepted"] and "empty" in out["reason"]
    video = store.get_video(out["video_id"])
    assert video.status == "failed" and "rejected: the object is empty" in video.note
    too_big = ingest.handler(event(key="uploads/big.MOV", size=2 * 1024**3), context)
    assert "over the limit" in too_big["reason"]
    assert executions(aws, env["sm"]) == []


def put_analysis(aws, state: RunState):
    info = VideoInfo(path="/x/clip.mp4", container="mp4", codec="h264", width=64, height=48, frames=6, fps=25.0,
                     fps_source="stream", pix_fmt="yuv420p", bit_depth=8, duration_s=0.24, size_bytes=123456)
    profile = SceneProfile(video_id=state.video_id, width=64, height=48, fps=25.0, frames=6, si_mean=10, si_max=12,
                           ti_mean=3, ti_max=4, motion_mean=0.5, scene_class="moderate")
    prefix = state.analysis_uri.removeprefix(f"s3://{BUCKET}/")
    aws["s3"].put_object(Bucket=BUCKET, Key=prefix + "video.json", Body=info.model_dump_json())
    aws["s3"].put_object(Bucket=BUCKET, Key=prefix + "profile.json", Body=profile.model_dump_json())


def start_state(store, env, context):
    ingest = load("ingest")
    out = ingest.handler(event(), context)
    up = UploadRef(bucket=BUCKET, key="uploads/clip.mp4", version_id="3HL4kqtJlcpXroDTDmJ", etag="abc123", size=123456)
    state = RunState.start(up)
    assert state.video_id == out["video_id"]
    return state


def test_plan_decide_record_report_round_trip(env, aws, store, context, monkeypatch):
    state = start_state(store, env, context)
    put_analysis(aws, state)
    plan = load("plan")
    monkeypatch.setattr(plan, "make_planner", av1_only_planner)
    planned = plan.handler(json.loads(state.model_dump_json(exclude_none=True)), context)
    assert planned["round"] == 1 and len(planned["experiments"]) == 2
    task = planned["experiments"][0]
    key = task["plan_uri"].removeprefix(f"s3://{BUCKET}/") + "plan.json"
    stored_plan = ExperimentPlan.model_validate_json(aws["s3"].get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert stored_plan.plan_id == task["plan_id"] and stored_plan.strategy == "av1"
    assert store.get_video(state.video_id).profile.scene_class == "moderate"

    # one experiment succeeded (a model.tar.gz with result.json), the other's training job failed
    plans = {p["plan_id"]: ExperimentPlan.model_validate_json(
        aws["s3"].get_object(Bucket=BUCKET, Key=p["plan_uri"].removeprefix(f"s3://{BUCKET}/") + "plan.json")["Body"].read())
        for p in planned["experiments"]}
    from codec_lab.planning.samples import sample_result

    ok = sample_result(plans[task["plan_id"]], kbps=800.0, psnr_yuv=36.5, ssim=0.96)
    artifact_key = f"runs/{state.video_id}/jobs/{task['job_name']}/output/model.tar.gz"
    aws["s3"].put_object(Bucket=BUCKET, Key=artifact_key, Body=model_tarball(ok))

    record = load("record")
    monkeypatch.setattr(record, "client", lambda name, region=None: aws["s3"] if name == "s3" else FakeSageMaker())
    got = record.handler({**task, "training": {"job_name": task["job_name"], "model_artifacts": f"s3://{BUCKET}/{artifact_key}"}}, context)
    assert got["status"] == "succeeded" and got["gpu_seconds"] == 321
    failed_task = planned["experiments"][1]
    cause = json.dumps({"TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: CUDA out of memory"})
    got = record.handler({**failed_task, "error": {"Error": "States.TaskFailed", "Cause": cause}}, context)
    assert got["status"] == "failed"
    rec = store.get_experiment(state.video_id, failed_task["plan_id"])
    assert "CUDA out of memory" in rec.result.error
    assert store.get_experiment(state.video_id, task["plan_id"]).result.timings["gpu"] == 321

    decide = load("decide")
    after_plan = {**json.loads(state.model_dump_json(exclude_none=True)), "plan": planned}
    decision = decide.handler(after_plan, context)
    assert decision["continue"] is False and "target met" in decision["reason"] and decision["next_round"] == 2

    report = load("report")
    out = report.handler({**after_plan, "decision": decision}, context)
    assert out["experiments"] == 2 and out["best_plan_id"] == task["plan_id"] and out["best_psnr_yuv"] == 36.5
    page = aws["s3"].get_object(Bucket=BUCKET, Key=f"reports/{state.video_id}/report.html")["Body"].read().decode()
    assert "CUDA out of memory" in page and "<svg" in page
    summary = json.loads(aws["s3"].get_object(Bucket=BUCKET, Key=f"reports/{state.video_id}/summary.json")["Body"].read())
    assert summary["succeeded"] == 1 and summary["failed"] == 1
    assert store.get_video(state.video_id).status == "done"


def test_record_keeps_a_step_failure(env, aws, store, context):
    state = start_state(store, env, context)
    record = load("record")
    out = record.handler({"failed_step": "Analyze", "video_id": state.video_id, "run_id": state.run_id,
                          "error": {"Error": "States.TaskFailed", "Cause": json.dumps({"FailureReason": "no video stream"})}},
                         context)
    assert out["fatal"]
    video = store.get_video(state.video_id)
    assert video.status == "failed" and "Analyze failed" in video.note and "no video stream" in video.note


def test_unreadable_artifacts_are_recorded_as_failures(env, aws, store, context, monkeypatch):
    state = start_state(store, env, context)
    from codec_lab.aws.payloads import ExperimentTask
    from codec_lab.planning.samples import sample_result  # noqa: F401 - the planner's fixtures module

    plan = ExperimentPlan(strategy="av1", parameters={"crf": 40, "preset": 12}, rationale="t", plan_id="p-1",
                          video_id=state.video_id, round=1, planner="test")
    store.put_plans([plan])
    task = ExperimentTask.build(bucket=BUCKET, video_id=state.video_id, run_id=state.run_id, round=1, index=0,
                                plan_id="p-1", strategy="av1", video_uri=state.video_uri, video_name=state.video_name)
    aws["s3"].put_object(Bucket=BUCKET, Key="runs/x/model.tar.gz", Body=b"not a tarball")
    record = load("record")
    monkeypatch.setattr(record, "client", lambda name, region=None: aws["s3"] if name == "s3" else FakeSageMaker())
    out = record.handler({**task.model_dump(), "training": {"job_name": task.job_name,
                                                            "model_artifacts": f"s3://{BUCKET}/runs/x/model.tar.gz"}}, context)
    assert out["status"] == "failed"
    assert "unreadable result" in store.get_experiment(state.video_id, "p-1").result.error


class FakeSageMaker:
    def describe_training_job(self, TrainingJobName):  # noqa: N803 - boto3's spelling
        return {"TrainingJobName": TrainingJobName, "BillableTimeInSeconds": 321}


def test_failed_results_satisfy_the_contract():
    with pytest.raises(ValueError):
        ExperimentResult(plan_id="p", video_id="v", status="failed")


def test_plan_starts_from_the_analyze_jobs_anchor_sweep(env, aws, store, context, monkeypatch):
    """The Plan Lambda hands the planner the same anchor history as the local runner (planning.rounds)."""
    from codec_lab.contracts import BenchClip, BenchResults, Quality, RDPoint, Targets

    state = start_state(store, env, context)
    put_analysis(aws, state)
    quality = Quality(frames=6, psnr_y=37, psnr_u=40, psnr_v=40, psnr_yuv=37.8, ssim=0.96)
    point = RDPoint(codec="av1", settings={"crf": 50, "preset": "6"}, frames=6, width=64, height=48, fps=25, payload_bytes=900,
                    file_bytes=1000, kbps=30.0, bpp=0.4, quality=quality, encode_seconds=0.1, decode_seconds=0.01,
                    meets_target=True, path="anchors/av1_crf50.mp4")
    sweep = BenchResults(clip=BenchClip(path="clip.mp4", width=64, height=48, frames=6, fps=25), targets=Targets(),
                         points=[point], bd_rate={}, wall_seconds=1.0)
    prefix = state.analysis_uri.removeprefix(f"s3://{BUCKET}/")
    aws["s3"].put_object(Bucket=BUCKET, Key=prefix + "anchors/results.json", Body=sweep.model_dump_json())
    seen = []

    class Recording:
        name, last_report = "recording", None

        def propose(self, video, profile, history, targets, budget, n):
            seen.extend(history)
            return []

    plan = load("plan")
    monkeypatch.setattr(plan, "make_planner", lambda: Recording())
    plan.handler(json.loads(state.model_dump_json(exclude_none=True)), context)
    (anchor,) = seen
    assert anchor.video_id == f"{state.video_id}.anchors" and anchor.plan.parameters == {"crf": 50, "preset": 6}
    assert anchor.result.metrics.kbps == 30.0


def test_a_retried_plan_step_runs_the_plans_it_already_stored(env, aws, store, context, monkeypatch):
    state = start_state(store, env, context)
    put_analysis(aws, state)
    plan = load("plan")
    monkeypatch.setattr(plan, "make_planner", av1_only_planner)
    first = plan.handler(json.loads(state.model_dump_json(exclude_none=True)), context)
    again = plan.handler(json.loads(state.model_dump_json(exclude_none=True)), context)  # the step is retried
    assert [t["plan_id"] for t in again["experiments"]] == [t["plan_id"] for t in first["experiments"]]
    assert len(store.list_experiments(state.video_id)) == len(first["experiments"])
