"""`codec-lab run --backend sagemaker` glue: requests checked against botocore's Stubber (no account)."""

from __future__ import annotations

import io

import boto3
from awslab_testing import model_tarball
from botocore.stub import ANY, Stubber

from codec_lab.aws.payloads import JOB_NAME
from codec_lab.aws.sagemaker_backend import (
    BackendSettings,
    submit_experiment,
    training_job_request,
    wait_for_result,
)
from codec_lab.contracts import ExperimentPlan
from codec_lab.planning.samples import sample_result

SETTINGS = BackendSettings(bucket="lab-bucket", role_arn="arn:aws:iam::123456789012:role/sm",
                           image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/codec-lab:1", region="us-east-1")
PLAN = ExperimentPlan(strategy="av1", parameters={"crf": 40, "preset": 8}, rationale="t", plan_id="vid:r1:p0",
                      video_id="vid", round=1, planner="test")


def test_submit_then_wait_for_a_completed_job():
    sm, s3 = boto3.client("sagemaker", region_name="us-east-1"), boto3.client("s3", region_name="us-east-1")
    with Stubber(sm) as sms, Stubber(s3) as s3s:
        s3s.add_response("put_object", {}, {"Bucket": "lab-bucket", "Key": "runs/vid/plans/vid:r1:p0/plan.json",
                                            "Body": ANY, "ContentType": "application/json"})
        sms.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}, None)
        job = submit_experiment(PLAN, "s3://lab-bucket/tmp/local/vid/clip.mp4", SETTINGS, s3=s3, sagemaker=sm)
        assert JOB_NAME.match(job.job_name)
        sms.add_response("describe_training_job", {**_described("InProgress", job.job_name)}, {"TrainingJobName": job.job_name})
        sms.add_response("describe_training_job", {**_described("Completed", job.job_name),
                                                   "ModelArtifacts": {"S3ModelArtifacts": "s3://lab-bucket/runs/vid/jobs/x/output/model.tar.gz"},
                                                   "BillableTimeInSeconds": 99}, {"TrainingJobName": job.job_name})
        s3s.add_response("get_object", {"Body": _tar(sample_result(PLAN, kbps=500, psnr_yuv=37.0)), "ContentLength": 10},
                         {"Bucket": "lab-bucket", "Key": "runs/vid/jobs/x/output/model.tar.gz"})
        result = wait_for_result(job, SETTINGS, poll_s=0, s3=s3, sagemaker=sm)
    assert result.status == "succeeded" and result.timings["gpu"] == 99


def test_spot_request_has_wait_and_checkpoints():
    from codec_lab.aws.payloads import ExperimentTask

    task = ExperimentTask.build(bucket="lab-bucket", video_id="vid", run_id="r", round=1, index=0, plan_id="p",
                                strategy="av1", video_uri="s3://lab-bucket/uploads/a.mp4", video_name="a.mp4")
    spot = BackendSettings(**{**SETTINGS.__dict__, "use_spot": True})
    request = training_job_request(task, spot)
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"]["MaxWaitTimeInSeconds"] >= request["StoppingCondition"]["MaxRuntimeInSeconds"]
    assert request["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"


def _described(status: str, name: str) -> dict:
    import datetime

    return {"TrainingJobName": name, "TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x",
            "TrainingJobStatus": status, "SecondaryStatus": "Training",
            "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "x"},
            "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.g4dn.xlarge", "VolumeSizeInGB": 50},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600}, "CreationTime": datetime.datetime(2025, 1, 1),
            "ModelArtifacts": {"S3ModelArtifacts": "s3://lab-bucket/x"}}


def _tar(result):
    from botocore.response import StreamingBody

    raw = model_tarball(result)
    return StreamingBody(io.BytesIO(raw), len(raw))


def test_executor_uploads_once_submits_each_plan_and_writes_results(tmp_path, monkeypatch):
    """`codec-lab run --backend sagemaker`'s executor over the same stubs: results come back in plan order."""
    import codec_lab.aws.sagemaker_backend as backend
    from codec_lab.executors import SageMakerExecutor

    sm, s3 = boto3.client("sagemaker", region_name="us-east-1"), boto3.client("s3", region_name="us-east-1")
    uploads = []
    monkeypatch.setattr(backend, "_client", lambda name, _settings, client: {"s3": s3, "sagemaker": sm}[name])
    monkeypatch.setattr(backend, "upload_video", lambda path, vid, st, s3=None: uploads.append(path) or f"s3://lab-bucket/tmp/local/{vid}/a.mp4")
    artifacts = {"S3ModelArtifacts": "s3://lab-bucket/runs/vid/jobs/x/output/model.tar.gz"}
    with Stubber(sm) as sms, Stubber(s3) as s3s:
        s3s.add_response("put_object", {}, {"Bucket": "lab-bucket", "Key": ANY, "Body": ANY, "ContentType": "application/json"})
        sms.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}, None)
        sms.add_response("describe_training_job", {**_described("Completed", "x"), "ModelArtifacts": artifacts, "BillableTimeInSeconds": 42}, None)
        s3s.add_response("get_object", {"Body": _tar(sample_result(PLAN, kbps=300, psnr_yuv=37.0)), "ContentLength": 10}, None)
        results = list(SageMakerExecutor(SETTINGS, poll_seconds=0).run_round([PLAN], None, tmp_path / "a.mp4", tmp_path, lambda *a: None))
        sms.assert_no_pending_responses()
    assert uploads == [tmp_path / "a.mp4"]
    (plan, result), = results
    assert plan.plan_id == PLAN.plan_id and result.status == "succeeded" and result.timings["gpu"] == 42
    assert (tmp_path / "experiments" / PLAN.plan_id / "result.json").exists()


def test_the_local_video_goes_to_tmp_not_uploads(tmp_path):
    """Anything under uploads/ starts the cloud pipeline: the backend's own copy must not land there."""
    from moto import mock_aws

    from codec_lab.aws.sagemaker_backend import upload_video

    clip = tmp_path / "clip.yuv"
    clip.write_bytes(b"\0" * 64)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="lab-bucket")
        uri = upload_video(clip, "vid", SETTINGS, s3=s3)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lab-bucket")["Contents"]]
    assert uri == "s3://lab-bucket/tmp/local/vid/clip.yuv" and keys == ["tmp/local/vid/clip.yuv"]
