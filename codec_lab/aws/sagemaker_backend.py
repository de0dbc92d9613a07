"""`codec-lab run --backend sagemaker`: send a local run's experiments to SageMaker training jobs.

boto3, not the SageMaker Python SDK (why: docs/aws.md, "Why boto3"). The same image and the same
contract as the deployed stack's jobs (`codec_lab.aws.jobs`): a `plan` channel holding plan.json, a
`video` channel, result.json back inside model.tar.gz.

    settings = BackendSettings(bucket="my-bucket", role_arn="arn:aws:iam::...:role/sm", image_uri="...ecr.../codec-lab:latest")
    video_uri = upload_video(Path("clip.mp4"), video_id, settings)
    job = submit_experiment(plan, video_uri, settings)            # returns at once
    result = wait_for_result(job, settings)                         # ExperimentResult (failed ones too)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codec_lab.aws.lab import failure_reason, result_from_artifacts
from codec_lab.aws.payloads import ExperimentTask
from codec_lab.aws.s3uri import TMP, S3Uri, jobs_prefix, plan_prefix
from codec_lab.errors import CodecLabError


@dataclass(frozen=True)
class BackendSettings:
    bucket: str
    role_arn: str
    image_uri: str
    instance_type: str = "ml.g4dn.xlarge"
    max_runtime_s: int = 3 * 3600
    use_spot: bool = False
    spot_max_wait_s: int = 6 * 3600
    volume_gb: int = 50
    region: str | None = None
    run_id: str = "local"
    tags: dict[str, str] = field(default_factory=lambda: {"codec-lab": "local-run"})


@dataclass(frozen=True)
class SubmittedJob:
    job_name: str
    plan_id: str
    video_id: str
    task: ExperimentTask


def _client(name: str, settings: BackendSettings, client: Any | None) -> Any:
    if client is not None:
        return client
    import boto3

    return boto3.client(name, region_name=settings.region) if settings.region else boto3.client(name)


def upload_video(path: Path, video_id: str, settings: BackendSettings, *, s3: Any | None = None) -> str:
    """Put the local video under tmp/local/<video id>/ and return its s3:// URI.

    Not under uploads/: everything there starts the cloud pipeline (or is recorded as rejected).
    tmp/ is readable by the job role and expires, and this copy is only the jobs' input.
    """
    key = f"{TMP}local/{video_id}/{Path(path).name}"
    _client("s3", settings, s3).upload_file(str(path), settings.bucket, key)
    return str(S3Uri(settings.bucket, key))


def training_job_request(task: ExperimentTask, settings: BackendSettings) -> dict[str, Any]:
    """The CreateTrainingJob request: what the stack's TrainAndEvaluate state sends, field for field."""
    stopping = {"MaxRuntimeInSeconds": settings.max_runtime_s}
    request: dict[str, Any] = {
        "TrainingJobName": task.job_name,
        "RoleArn": settings.role_arn,
        "AlgorithmSpecification": {"TrainingImage": settings.image_uri, "TrainingInputMode": "File"},
        "HyperParameters": {"plan_id": task.plan_id, "video_name": task.video_name, "video_id": task.video_id},
        "InputDataConfig": [
            {"ChannelName": "plan", "DataSource": {"S3DataSource": {"S3Uri": task.plan_uri, "S3DataType": "S3Prefix"}}},
            {"ChannelName": "video", "DataSource": {"S3DataSource": {"S3Uri": task.video_uri, "S3DataType": "S3Prefix"}}},
        ],
        "OutputDataConfig": {"S3OutputPath": task.output_uri},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": settings.instance_type, "VolumeSizeInGB": settings.volume_gb},
        "StoppingCondition": stopping,
        "Tags": [{"Key": k, "Value": v} for k, v in settings.tags.items()],
    }
    if settings.use_spot:
        request["EnableManagedSpotTraining"] = True
        stopping["MaxWaitTimeInSeconds"] = max(settings.spot_max_wait_s, settings.max_runtime_s)
        request["CheckpointConfig"] = {"S3Uri": task.checkpoint_uri, "LocalPath": "/opt/ml/checkpoints"}
    return request


def submit_experiment(plan: Any, video_s3_uri: str, settings: BackendSettings, *, index: int = 0,
                      s3: Any | None = None, sagemaker: Any | None = None) -> SubmittedJob:
    """Write plan.json next to the run, start one training job; returns at once."""
    video = S3Uri.parse(video_s3_uri)
    task = ExperimentTask.build(bucket=settings.bucket, video_id=plan.video_id, run_id=settings.run_id, round=plan.round,
                                index=index, plan_id=plan.plan_id, strategy=plan.strategy, video_uri=video_s3_uri,
                                video_name=video.name)
    plan_loc = plan_prefix(settings.bucket, plan.video_id, plan.plan_id).join("plan.json")
    _client("s3", settings, s3).put_object(Bucket=plan_loc.bucket, Key=plan_loc.key, Body=plan.model_dump_json().encode(),
                                           ContentType="application/json")
    assert task.output_uri == str(jobs_prefix(settings.bucket, plan.video_id))
    _client("sagemaker", settings, sagemaker).create_training_job(**training_job_request(task, settings))
    return SubmittedJob(job_name=task.job_name, plan_id=plan.plan_id, video_id=plan.video_id, task=task)


def wait_for_result(job: SubmittedJob, settings: BackendSettings, *, poll_s: float = 30.0, timeout_s: float | None = None,
                    s3: Any | None = None, sagemaker: Any | None = None) -> Any:
    """Poll DescribeTrainingJob until it ends; the ExperimentResult from model.tar.gz, or a failed one."""
    from codec_lab.contracts import ExperimentResult

    sm = _client("sagemaker", settings, sagemaker)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        described = sm.describe_training_job(TrainingJobName=job.job_name)
        status = described["TrainingJobStatus"]
        if status in ("Completed", "Failed", "Stopped"):
            break
        if deadline is not None and time.monotonic() > deadline:
            raise CodecLabError(f"training job {job.job_name} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)
    if status == "Completed":
        result = result_from_artifacts(_client("s3", settings, s3), described["ModelArtifacts"]["S3ModelArtifacts"])
        seconds = described.get("BillableTimeInSeconds")
        if seconds is not None:
            result = result.model_copy(update={"timings": {**result.timings, "gpu": float(seconds)}})
        return result
    return ExperimentResult(plan_id=job.plan_id, video_id=job.video_id, status="failed",
                            error=f"{status}: {failure_reason(described.get('FailureReason') or '')}"[:4000])
