"""What travels through the state machine: small JSON documents carrying S3 URIs, never video data
(Step Functions caps a state's payload at 256 KB). Validated on read, like every contract.

The state grows as it goes: `RunState` is the execution input (written by the ingest Lambda), and
each step adds one small field (`analysis`, `plan`, `decision`, `report`, `error`) with ResultPath.
"""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from codec_lab.aws.s3uri import S3Uri, analysis_prefix, checkpoint_prefix, jobs_prefix, plan_prefix

JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
"""SageMaker's rule for job names: 1-63 characters, alphanumerics and hyphens, no underscores."""

EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
MAX_STATE_BYTES = 256 * 1024


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _short_hash(*parts: str, n: int = 8) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:n]


def sagemaker_job_name(*parts: str) -> str:
    """A job name from parts: lower-case, underscores and other symbols to hyphens, <= 63 characters.

    When the cleaned name is too long it is cut and a hash of the full name keeps it unique.
    """
    raw = "-".join(parts)
    cleaned = re.sub(r"[^a-zA-Z0-9]+", "-", raw).strip("-").lower() or "job"
    if len(cleaned) > 63:
        cleaned = cleaned[:54].rstrip("-") + "-" + _short_hash(raw)
    if not JOB_NAME.match(cleaned):  # pragma: no cover - the cleaning above makes this unreachable
        raise ValueError(f"cannot make a SageMaker job name from {parts!r}")
    return cleaned


class UploadRef(Payload):
    """The object that arrived: what the idempotency key is made of (bucket + key + version or etag)."""

    bucket: str = Field(min_length=3, max_length=63)
    key: str = Field(min_length=1, max_length=1024)
    version_id: str | None = None
    etag: str | None = None
    size: int = Field(ge=0)

    @property
    def identity(self) -> str:
        return f"s3://{self.bucket}/{self.key}#{self.version_id or self.etag or ''}"

    @property
    def video_id(self) -> str:
        """20 hex digits of SHA-256 over the identity: stable for one object version, new for a re-upload."""
        return hashlib.sha256(self.identity.encode()).hexdigest()[:20]

    @property
    def execution_name(self) -> str:
        return f"video-{self.video_id}"


class AnalysisRef(Payload):
    job_name: str
    status: str | None = None


class ExperimentTask(Payload):
    """One Map item: everything the training job and the Record step need, as URIs."""

    video_id: str
    bucket: str
    round: int = Field(ge=1)
    index: int = Field(ge=0)
    plan_id: str
    strategy: str
    job_name: str
    plan_uri: str = Field(description="s3://.../plans/<plan_id>/ (the 'plan' channel, holds plan.json)")
    video_uri: str
    video_name: str
    output_uri: str
    checkpoint_uri: str

    @field_validator("job_name")
    @classmethod
    def _job_name(cls, v: str) -> str:
        if not JOB_NAME.match(v):
            raise ValueError(f"{v!r} breaks SageMaker's job-name rule (63 chars, alphanumerics and hyphens)")
        return v

    @classmethod
    def build(cls, *, bucket: str, video_id: str, run_id: str, round: int, index: int, plan_id: str, strategy: str,
              video_uri: str, video_name: str) -> "ExperimentTask":
        return cls(
            video_id=video_id,
            bucket=bucket,
            round=round,
            index=index,
            plan_id=plan_id,
            strategy=strategy,
            job_name=sagemaker_job_name("cl", video_id[:12], _short_hash(run_id, plan_id, n=6), f"r{round}", f"{index:02d}"),
            plan_uri=str(plan_prefix(bucket, video_id, plan_id)),
            video_uri=video_uri,
            video_name=video_name,
            output_uri=str(jobs_prefix(bucket, video_id)),
            checkpoint_uri=str(checkpoint_prefix(bucket, video_id, plan_id)),
        )


class PlanOutput(Payload):
    round: int = Field(ge=1)
    experiments: list[ExperimentTask]
    planner: str = ""
    note: str | None = None


class Decision(Payload):
    go_on: bool = Field(alias="continue")
    reason: str
    next_round: int
    best_plan_id: str | None = None

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class StepError(Payload):
    """What a Catch puts at ResultPath $.error: Step Functions' {Error, Cause}."""

    Error: str = "States.ALL"
    Cause: str | None = None


class TrainingOutcome(Payload):
    job_name: str
    model_artifacts: str | None = None


class RunState(Payload):
    """The execution input (from the ingest Lambda) plus what the steps have added so far."""

    video_id: str = Field(min_length=1, max_length=128)
    run_id: str = Field(description="the execution name")
    bucket: str
    key: str
    version_id: str | None = None
    video_uri: str
    video_name: str
    analysis_uri: str
    analyze_job_name: str
    analysis: AnalysisRef | None = None
    plan: PlanOutput | None = None
    decision: Decision | None = None
    error: StepError | None = None

    @field_validator("analyze_job_name")
    @classmethod
    def _job_name(cls, v: str) -> str:
        if not JOB_NAME.match(v):
            raise ValueError(f"{v!r} breaks SageMaker's job-name rule")
        return v

    @property
    def round(self) -> int:
        """The round the next Plan step plans: 1 first, then what Decide said."""
        return self.decision.next_round if self.decision else 1

    @classmethod
    def start(cls, upload: UploadRef) -> "RunState":
        video_id = upload.video_id
        return cls(
            video_id=video_id,
            run_id=upload.execution_name,
            bucket=upload.bucket,
            key=upload.key,
            version_id=upload.version_id,
            video_uri=str(S3Uri(upload.bucket, upload.key)),
            video_name=upload.key.rsplit("/", 1)[-1],
            analysis_uri=str(analysis_prefix(upload.bucket, video_id)),
            analyze_job_name=sagemaker_job_name("cl", video_id, "analyze"),
        )


class StepFailure(Payload):
    """Input of the 'RecordFailure <step>' states: which step failed, and the run it belongs to."""

    failed_step: str
    video_id: str
    run_id: str | None = None
    error: StepError | None = None


class RecordInput(ExperimentTask):
    """The Record step's input: the Map item plus either the training outcome or the caught error."""

    training: TrainingOutcome | None = None
    error: StepError | None = None
