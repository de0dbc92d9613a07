"""The lab's deployment settings: `cdk.json` context keys, their defaults and their validation.

One definition, used by the CDK app (to build the stack), the Lambdas (through environment
variables the stack sets) and `codec_lab.aws.sagemaker_backend` (to submit jobs without the stack).
Context values given with `cdk deploy -c key=value` arrive as strings; pydantic's lax mode turns
"3" into 3 and "true" into True, and anything it cannot read is an error naming the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from codec_lab.errors import CodecLabError

INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[0-9]*x?large$|^ml\.[a-z0-9]+\.(medium|large|small|micro)$")
GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "gr6", "p3", "p3dn", "p4d", "p4de", "p5", "p5e")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
# An inference profile (geo prefix + model id) or a foundation model id, e.g. us.anthropic.claude-...-v1:0
MODEL_ID = re.compile(r"^(?:(us|eu|apac|us-gov|ca|jp|au|global)\.)?[a-z0-9-]+\.[A-Za-z0-9.\-:]+$")
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".y4m")

CONTEXT_KEYS: dict[str, str] = {
    # context key -> field name
    "trainingInstanceType": "training_instance_type",
    "processingInstanceType": "processing_instance_type",
    "budgetPerVideoUsd": "budget_per_video_usd",
    "rounds": "rounds",
    "experimentsPerRound": "experiments_per_round",
    "maxConcurrentJobs": "max_concurrent_jobs",
    "bedrockModelId": "bedrock_model_id",
    "bedrockRegion": "bedrock_region",
    "notificationEmail": "notification_email",
    "maxUploadBytes": "max_upload_bytes",
    "useSpot": "use_spot",
    "trainingMaxRuntimeSeconds": "training_max_runtime_s",
    "spotMaxWaitSeconds": "spot_max_wait_s",
    "processingMaxRuntimeSeconds": "processing_max_runtime_s",
    "trainingVolumeGb": "training_volume_gb",
    "powertoolsLayerVersion": "powertools_layer_version",
    "tempObjectExpirationDays": "temp_expiration_days",
    "logRetentionDays": "log_retention_days",
}


class SettingsError(CodecLabError):
    """A `cdk.json` context value is missing its form; the message names the key."""


class LabSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    training_instance_type: str = Field(default="ml.g4dn.xlarge", description="SageMaker training (GPU) instance")
    processing_instance_type: str = Field(default="ml.m5.xlarge", description="SageMaker processing (Analyze) instance")
    budget_per_video_usd: float = Field(default=10.0, gt=0, le=10_000, description="SageMaker spend per video")
    rounds: int = Field(default=3, ge=1, le=20, description="planning rounds at most")
    experiments_per_round: int = Field(default=4, ge=1, le=32)
    max_concurrent_jobs: int = Field(default=4, ge=1, le=40, description="Map concurrency (GPU quota)")
    bedrock_model_id: str = Field(default="us.anthropic.claude-sonnet-4-20250514-v1:0")
    bedrock_region: str = Field(default="us-east-1")
    notification_email: str = Field(default="", description="empty: no e-mail subscription")
    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0, le=5 * 1024**4)
    use_spot: bool = False
    training_max_runtime_s: int = Field(default=3 * 3600, ge=60, le=28 * 24 * 3600)
    spot_max_wait_s: int = Field(default=6 * 3600, ge=60, le=28 * 24 * 3600)
    processing_max_runtime_s: int = Field(default=3600, ge=60, le=5 * 24 * 3600)
    training_volume_gb: int = Field(default=50, ge=1, le=16384)
    powertools_layer_version: int = Field(default=27, ge=1)
    temp_expiration_days: int = Field(default=7, ge=1, le=365)
    log_retention_days: int = Field(default=90, ge=1)

    @field_validator("training_instance_type", "processing_instance_type")
    @classmethod
    def _instance(cls, v: str) -> str:
        if not INSTANCE_TYPE.match(v):
            raise ValueError(f"{v!r} is not a SageMaker instance type such as 'ml.g4dn.xlarge'")
        return v

    @field_validator("bedrock_model_id")
    @classmethod
    def _model(cls, v: str) -> str:
        if not MODEL_ID.match(v):
            raise ValueError(f"{v!r} is not a Bedrock model or inference profile id such as 'us.anthropic.claude-...-v1:0'")
        return v

    @field_validator("bedrock_region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not REGION.match(v):
            raise ValueError(f"{v!r} is not an AWS region such as 'us-east-1'")
        return v

    @field_validator("notification_email")
    @classmethod
    def _email(cls, v: str) -> str:
        v = v.strip()
        if v and not EMAIL.match(v):
            raise ValueError(f"{v!r} is not an e-mail address")
        return v

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        allowed = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
        if v not in allowed:
            raise ValueError(f"CloudWatch Logs retention must be one of {allowed}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "LabSettings":
        if self.training_family not in GPU_FAMILIES:
            raise ValueError(
                f"trainingInstanceType {self.training_instance_type!r} is not a GPU instance (families: {', '.join(GPU_FAMILIES)})"
            )
        if self.use_spot and self.spot_max_wait_s < self.training_max_runtime_s:
            raise ValueError("spotMaxWaitSeconds must be >= trainingMaxRuntimeSeconds (SageMaker's rule for managed spot)")
        if self.max_concurrent_jobs > self.experiments_per_round:
            object.__setattr__(self, "max_concurrent_jobs", self.experiments_per_round)
        return self

    @property
    def training_family(self) -> str:
        return self.training_instance_type.split(".")[1]

    @property
    def foundation_model_id(self) -> str:
        """The model behind an inference profile: 'us.anthropic.x' -> 'anthropic.x'."""
        head, _, rest = self.bedrock_model_id.partition(".")
        return rest if MODEL_ID.match(self.bedrock_model_id) and head in {"us", "eu", "apac", "us-gov", "ca", "jp", "au", "global"} else self.bedrock_model_id

    @property
    def is_inference_profile(self) -> bool:
        return self.foundation_model_id != self.bedrock_model_id

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> "LabSettings":
        """Build from a context getter (`node.try_get_context`); keys that are None take the default."""
        raw = {field: get(key) for key, field in CONTEXT_KEYS.items()}
        return cls.from_mapping({k: v for k, v in raw.items() if v is not None}, by_field=True)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], by_field: bool = False) -> "LabSettings":
        data = dict(values) if by_field else {}
        if not by_field:
            for key, value in values.items():
                if key not in CONTEXT_KEYS:
                    raise SettingsError(f"unknown setting {key!r}; known: {', '.join(CONTEXT_KEYS)}")
                data[CONTEXT_KEYS[key]] = value
        try:
            return cls(**data)
        except ValidationError as exc:
            field_to_key = {v: k for k, v in CONTEXT_KEYS.items()}
            problems = []
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"]) or "settings"
                problems.append(f"{field_to_key.get(loc, loc)}: {err['msg']}")
            raise SettingsError("invalid cdk.json context: " + "; ".join(problems)) from None

    def to_context(self) -> dict[str, Any]:
        return {key: getattr(self, field) for key, field in CONTEXT_KEYS.items()}
