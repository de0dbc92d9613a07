"""Pydantic models that cross a process boundary (JSON on the wire). No torch here.

One definition of each contract. Every model forbids unknown fields so that a
payload that does not match names the offending field when validated.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

CONTRACT_VERSION = 1


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VideoInfo(Contract):
    """What probing a video found, before any frame is decoded for real."""

    version: int = CONTRACT_VERSION
    path: str
    container: str = Field(description="container format, or 'annexb'/'y4m'/'rawyuv'")
    codec: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    frames: int = Field(ge=0, description="frames counted by decoding (exact)")
    fps: float = Field(gt=0)
    fps_source: str = Field(description="where fps came from: 'stream', 'y4m header', 'assumed (--fps)', ...")
    pix_fmt: str
    bit_depth: int
    rotation: int = Field(default=0, description="display rotation in degrees from metadata")
    duration_s: float = Field(ge=0)
    size_bytes: int = Field(ge=0)
    variable_frame_rate: bool = False
    notes: list[str] = Field(default_factory=list)


class Targets(Contract):
    """The seed's targets; every experiment and anchor point is scored against them."""

    max_kbps: float = Field(default=1000.0, gt=0)
    min_psnr_yuv: float = Field(default=35.0)
    min_ssim: float = Field(default=0.95, ge=0, le=1)
    max_tops_per_frame: float = Field(default=1.33, gt=0, description="40 TOPS edge chip at 30 fps")

    def met_by(self, kbps: float, psnr_yuv: float, ssim: float, tops_per_frame: float | None = None) -> bool:
        decoder_ok = tops_per_frame is None or tops_per_frame <= self.max_tops_per_frame
        return kbps <= self.max_kbps and psnr_yuv >= self.min_psnr_yuv and ssim >= self.min_ssim and decoder_ok


class Quality(Contract):
    """Distortion of a decoded clip against its reference (definitions in `codec_lab.metrics`)."""

    frames: int = Field(ge=1)
    psnr_y: float
    psnr_u: float
    psnr_v: float
    psnr_yuv: float = Field(description="mean over frames of (6*Y + U + V)/8, each per-frame PSNR capped")
    ssim: float = Field(description="scikit-image SSIM on Y, data_range=255, mean over frames")
    ms_ssim: float | None = Field(default=None, description="pytorch-msssim on Y; None when the frame is too small")


class RDPoint(Contract):
    """One encode of one clip at one setting: the row every bench, run and report reads."""

    codec: str
    settings: dict[str, str | int | float | bool]
    frames: int = Field(ge=1)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fps: float = Field(gt=0)
    payload_bytes: int = Field(ge=0, description="bytes of coded video data (the bitrate is computed from these)")
    file_bytes: int = Field(ge=0, description="bytes of the file on disk; file_bytes - payload_bytes is container overhead")
    kbps: float
    bpp: float = Field(description="bits per pixel per frame, from payload_bytes")
    quality: Quality
    encode_seconds: float
    decode_seconds: float
    mac_per_pixel: float | None = Field(default=None, description="decoder MACs per pixel (neural codecs)")
    tops_per_frame: float | None = Field(default=None, description="decoder tera-ops (2 x MACs) per frame")
    estimated_kbps: float | None = Field(default=None, description="entropy model's own estimate, a check only")
    meets_target: bool
    path: str = Field(description="the encoded file, kept so anyone can check it")


# --------------------------------------------------------------------------------------
# Planning and the experiment store (issue 4). Appended; the models above are unchanged.
# --------------------------------------------------------------------------------------

import math  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Literal  # noqa: E402

from pydantic import field_validator, model_validator  # noqa: E402

SceneClass = Literal["static", "talking_head", "moderate", "high_motion", "screen"]
SCENE_CLASSES: tuple[str, ...] = ("static", "talking_head", "moderate", "high_motion", "screen")

StrategyName = Literal["semantic_latent", "i_frame_interpolation", "hybrid_semantic", "av1"]
STRATEGY_NAMES: tuple[str, ...] = ("semantic_latent", "i_frame_interpolation", "hybrid_semantic", "av1")

ParamValue = bool | int | float | str
"""A hyper-parameter value on the wire (bool first so that JSON true is not read as 1)."""

ExperimentStatus = Literal["planned", "succeeded", "failed"]
"""'planned' = written, no result yet (still running, or lost in a crash: unfinished)."""

VideoStatus = Literal["received", "analyzing", "planning", "running", "reporting", "done", "failed"]


def utc_now() -> str:
    """ISO-8601 UTC timestamp with milliseconds: sortable as text (store keys rely on it)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SceneProfile(Contract):
    """What the analysis step measured on one video (ITU-T P.910 SI/TI, motion, cuts, a class)."""

    version: int = Field(default=CONTRACT_VERSION, ge=1, le=CONTRACT_VERSION, description="contract version; newer payloads are refused")
    video_id: str = Field(min_length=1, max_length=128)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fps: float = Field(gt=0)
    frames: int = Field(ge=1)
    si_mean: float = Field(ge=0, description="spatial information (P.910), mean over frames")
    si_max: float = Field(ge=0)
    ti_mean: float = Field(ge=0, description="temporal information (P.910), mean over frame pairs")
    ti_max: float = Field(ge=0)
    motion_mean: float = Field(ge=0, description="mean motion-vector magnitude, pixels per frame")
    scene_cuts: list[int] = Field(default_factory=list, description="frame indices where a new shot starts")
    scene_class: SceneClass
    notes: list[str] = Field(default_factory=list)


class ParamSpec(Contract):
    """One hyper-parameter of a strategy: its type and bounds."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = Field(default=False, description="sample on a log scale (float only)")
    choices: list[str] | None = None
    default: ParamValue
    optional: bool = Field(default=False, description="may be left out of a plan (the codec's default applies)")
    description: str = ""

    @model_validator(mode="after")
    def _bounds(self) -> "ParamSpec":
        if self.kind == "categorical":
            if not self.choices:
                raise ValueError(f"categorical parameter {self.name!r} needs choices")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"parameter {self.name!r} needs low <= high")
        if self.log and (self.kind != "float" or (self.low or 0) <= 0):
            raise ValueError(f"log scale on {self.name!r} needs a float with low > 0")
        return self


class StrategySpec(Contract):
    name: StrategyName
    runnable: bool = Field(description="the codec exists; planners propose only runnable strategies")
    description: str
    params: list[ParamSpec]
    gpu: bool = Field(description="runs on the GPU (counts against the GPU-seconds budget)")
    gpu_seconds_per_iteration_megapixel: float = Field(
        default=0.0, ge=0, description="cost model for the budget: GPU s per training step per megapixel-frame"
    )
    gpu_seconds_per_iteration: float = Field(
        default=0.0, ge=0, description="cost model for the budget: GPU s per training step whatever the size "
        "(small networks are launch-bound: the host issues every op of a step)"
    )

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)


class SearchSpace(Contract):
    """Every strategy the lab knows and the bounded hyper-parameters a plan may set."""

    version: int = Field(default=CONTRACT_VERSION, ge=1, le=CONTRACT_VERSION, description="contract version; newer payloads are refused")
    strategies: list[StrategySpec]

    def strategy(self, name: str) -> StrategySpec | None:
        return next((s for s in self.strategies if s.name == name), None)

    def runnable(self) -> list[StrategySpec]:
        return [s for s in self.strategies if s.runnable]

    def only(self, names: list[str]) -> "SearchSpace":
        """The same space with only `names` runnable (e.g. a demo without the neural codec)."""
        return self.model_copy(
            update={"strategies": [s.model_copy(update={"runnable": s.runnable and s.name in names}) for s in self.strategies]}
        )


class Budget(Contract):
    """What a run may spend (or, as `budget_left`, what is left of it)."""

    experiments: int = Field(default=12, ge=0)
    gpu_seconds: float = Field(default=4 * 3600.0, ge=0)
    rounds: int = Field(default=3, ge=0)


class ExpectedOutcome(Contract):
    kbps: float | None = Field(default=None, ge=0)
    psnr_yuv: float | None = Field(default=None, ge=0, le=100)
    meets_target: bool | None = None


class PlanDraft(Contract):
    """What a planner (an LLM included) fills in; the Bedrock tool schema is generated from this."""

    strategy: StrategyName
    parameters: dict[str, ParamValue] = Field(description="hyper-parameters of the strategy, within the search space")
    rationale: str = Field(min_length=1, max_length=400, description="one line: why this experiment, now")
    expected: ExpectedOutcome = Field(default_factory=ExpectedOutcome, description="what the planner expects to measure")


class ExperimentPlan(PlanDraft):
    """One experiment to run: a strategy and its hyper-parameters, with an id that makes writes idempotent."""

    version: int = Field(default=CONTRACT_VERSION, ge=1, le=CONTRACT_VERSION, description="contract version; newer payloads are refused")
    plan_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    video_id: str = Field(min_length=1, max_length=128)
    round: int = Field(ge=1)
    planner: str = Field(description="'local:optuna-tpe', 'bedrock:<model id>', ...")
    est_gpu_seconds: float = Field(default=0.0, ge=0)
    created_at: str = Field(default_factory=utc_now)


class ExperimentMetrics(Contract):
    quality: Quality
    kbps: float = Field(ge=0)
    payload_bytes: int = Field(ge=0)
    mac_per_pixel: float | None = Field(default=None, ge=0)
    tops_per_frame: float | None = Field(default=None, ge=0)
    meets_target: bool

    @field_validator("kbps", "mac_per_pixel", "tops_per_frame")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class ExperimentResult(Contract):
    """The outcome of one plan: metrics when it ran, the error when it failed. Never lost either way."""

    version: int = Field(default=CONTRACT_VERSION, ge=1, le=CONTRACT_VERSION, description="contract version; newer payloads are refused")
    plan_id: str = Field(min_length=1, max_length=128)
    video_id: str = Field(min_length=1, max_length=128)
    status: Literal["succeeded", "failed"]
    metrics: ExperimentMetrics | None = None
    artifacts: dict[str, str] = Field(default_factory=dict, description="name -> URI (bitstream, decoded, log)")
    timings: dict[str, float] = Field(default_factory=dict, description="seconds: encode, decode, gpu, total")
    error: str | None = Field(default=None, max_length=4000)
    finished_at: str = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _status_matches(self) -> "ExperimentResult":
        if self.status == "succeeded" and self.metrics is None:
            raise ValueError("a succeeded result needs metrics")
        if self.status == "failed" and not self.error:
            raise ValueError("a failed result needs an error message")
        return self


class ExperimentRecord(Contract):
    """What the store holds for one experiment: the plan and, once finished, its result."""

    video_id: str
    plan: ExperimentPlan
    result: ExperimentResult | None = None
    scene_class: SceneClass | None = None
    score: float | None = Field(default=None, description="scalar score at write time (higher is better)")

    @property
    def status(self) -> ExperimentStatus:
        return "planned" if self.result is None else self.result.status

    @property
    def finished(self) -> bool:
        return self.result is not None


class VideoRecord(Contract):
    version: int = Field(default=CONTRACT_VERSION, ge=1, le=CONTRACT_VERSION, description="contract version; newer payloads are refused")
    video_id: str = Field(min_length=1, max_length=128)
    source_uri: str
    status: VideoStatus = "received"
    info: VideoInfo | None = None
    profile: SceneProfile | None = None
    targets: Targets = Field(default_factory=Targets)
    budget: Budget = Field(default_factory=Budget)
    note: str | None = None
    created_at: str = Field(default_factory=utc_now)
    updated_at: str = Field(default_factory=utc_now)


class DroppedPlan(Contract):
    index: int = Field(description="position in the planner's reply")
    reason: str
    draft: dict | None = None


class AuditRecord(Contract):
    """One planner exchange, kept verbatim: the prompt sent and the raw reply (or error)."""

    version: int = Field(default=CONTRACT_VERSION, ge=1, le=CONTRACT_VERSION, description="contract version; newer payloads are refused")
    audit_id: str = Field(min_length=1, max_length=128)
    video_id: str
    round: int = Field(ge=1)
    attempt: int = Field(ge=1)
    planner: str
    model_id: str | None = None
    prompt_version: str | None = None
    request: dict = Field(description="the request as sent (Converse kwargs)")
    response: dict | None = Field(default=None, description="the raw reply, unmodified")
    error: str | None = None
    accepted: int = 0
    dropped: list[DroppedPlan] = Field(default_factory=list)
    uri: str | None = Field(default=None, description="where the full record was written (file or s3://)")
    created_at: str = Field(default_factory=utc_now)


class BenchClip(Contract):
    path: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    frames: int = Field(ge=1)
    fps: float = Field(gt=0)
    notes: list[str] = Field(default_factory=list)


class BenchResults(Contract):
    """results.json of `codec-lab bench` and of the Analyze step's anchor sweep: what plots and BD-rates read."""

    version: int = Field(default=CONTRACT_VERSION, ge=1, le=CONTRACT_VERSION, description="contract version; newer payloads are refused")
    clip: BenchClip
    targets: Targets
    points: list[RDPoint]
    bd_rate: dict[str, dict[str, float | None]] = Field(description="test codec -> anchor codec -> BD-rate %")
    bd_rate_notes: dict[str, dict[str, str]] = Field(default_factory=dict, description="test codec -> anchor -> why no BD-rate")
    wall_seconds: float = Field(ge=0)


class Decision(Contract):
    """The Decide step's answer: plan another round, or stop and say why."""

    stop: bool
    reason: str
    best_plan_id: str | None = Field(default=None, description="the best finished experiment so far")
    target_met: bool = False
    budget_left: Budget
