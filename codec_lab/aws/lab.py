"""What each Lambda does, as plain functions over injected clients (the handlers are a few lines).

No torch: this module and what it imports are what the Lambdas carry.
"""

from __future__ import annotations

import html
import io
import json
import logging
import os
import tarfile
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from codec_lab import steps
from codec_lab.aws.payloads import (
    Decision,
    ExperimentTask,
    PlanOutput,
    RecordInput,
    RunState,
    StepFailure,
    UploadRef,
)
from codec_lab.aws.s3uri import REPORTS, UPLOADS, S3Uri, plan_prefix, report_prefix, run_prefix
from codec_lab.aws.settings import VIDEO_SUFFIXES
from codec_lab.contracts import (
    BenchResults,
    Budget,
    ExperimentMetrics,
    ExperimentRecord,
    ExperimentResult,
    SceneProfile,
    Targets,
    VideoInfo,
    VideoRecord,
)

MAX_RESULT_BYTES = 1024 * 1024  # result.json is small; anything larger is refused
MAX_ANCHORS_BYTES = 8 * 1024 * 1024  # a bench results.json: a few hundred points at most
log = logging.getLogger(__name__)
MAX_ARTIFACT_TAR_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class LabRuntime:
    """The Lambdas' configuration, from the environment the stack sets."""

    table_name: str
    bucket: str
    max_rounds: int = 3
    experiments_per_round: int = 4
    budget_gpu_seconds: float = 4 * 3600.0
    max_upload_bytes: int = 2 * 1024**3
    state_machine_arn: str | None = None
    bedrock_model_id: str | None = None
    bedrock_region: str | None = None
    suffixes: tuple[str, ...] = VIDEO_SUFFIXES

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "LabRuntime":
        env = dict(os.environ if env is None else env)
        return cls(
            table_name=env.get("TABLE_NAME", ""),
            bucket=env.get("BUCKET_NAME", ""),
            max_rounds=int(env.get("MAX_ROUNDS", "3")),
            experiments_per_round=int(env.get("EXPERIMENTS_PER_ROUND", "4")),
            budget_gpu_seconds=float(env.get("BUDGET_GPU_SECONDS", str(4 * 3600))),
            max_upload_bytes=int(env.get("MAX_UPLOAD_BYTES", str(2 * 1024**3))),
            state_machine_arn=env.get("STATE_MACHINE_ARN") or None,
            bedrock_model_id=env.get("BEDROCK_MODEL_ID") or None,
            bedrock_region=env.get("BEDROCK_REGION") or None,
            suffixes=tuple(s for s in env.get("VIDEO_SUFFIXES", ",".join(VIDEO_SUFFIXES)).split(",") if s),
        )

    @property
    def budget(self) -> Budget:
        return Budget(experiments=self.max_rounds * self.experiments_per_round, gpu_seconds=self.budget_gpu_seconds,
                      rounds=self.max_rounds)


# -- S3 helpers -------------------------------------------------------------------------------------

def s3_read_text(s3: Any, uri: str | S3Uri, limit: int = MAX_RESULT_BYTES) -> str:
    loc = uri if isinstance(uri, S3Uri) else S3Uri.parse(uri)
    body = s3.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read(limit + 1)
    if len(body) > limit:
        raise ValueError(f"{loc} is larger than {limit} bytes")
    return body.decode("utf-8")


def s3_write_text(s3: Any, uri: str | S3Uri, text: str, content_type: str = "application/json") -> str:
    loc = uri if isinstance(uri, S3Uri) else S3Uri.parse(uri)
    s3.put_object(Bucket=loc.bucket, Key=loc.key, Body=text.encode("utf-8"), ContentType=content_type)
    return str(loc)


# -- ingest -----------------------------------------------------------------------------------------

def rejection_reason(upload: UploadRef, *, max_bytes: int, suffixes: tuple[str, ...] = VIDEO_SUFFIXES) -> str | None:
    """Why this object is not a plausible video, or None. Checked before anything runs."""
    key = upload.key
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        return "the key contains control characters"
    if ".." in key.split("/") or "/../" in f"/{key}/" or "\\" in key:
        return "the key contains '..' or a backslash"
    if not key.startswith(UPLOADS):
        return f"the key is not under {UPLOADS}"
    if not key.lower().endswith(tuple(s.lower() for s in suffixes)):
        return f"the suffix is not one of {', '.join(suffixes)}"
    if upload.size == 0:
        return "the object is empty (0 bytes)"
    if upload.size > max_bytes:
        return f"the object is {upload.size} bytes, over the limit of {max_bytes} (maxUploadBytes)"
    return None


def ingest_upload(upload: UploadRef, *, store: Any, sfn: Any, runtime: LabRuntime) -> dict[str, Any]:
    """Reject with a recorded reason, or write the video record and start the execution."""
    video_id = upload.video_id
    reason = rejection_reason(upload, max_bytes=runtime.max_upload_bytes, suffixes=runtime.suffixes)
    source = str(S3Uri(upload.bucket, upload.key))
    if reason is not None:
        store.put_video(VideoRecord(video_id=video_id, source_uri=source, status="failed", budget=runtime.budget,
                                    note=f"rejected: {reason}"))
        return {"video_id": video_id, "accepted": False, "reason": reason}
    if store.get_video(video_id) is None:
        store.put_video(VideoRecord(video_id=video_id, source_uri=source, status="received", budget=runtime.budget))
    state = RunState.start(upload)
    try:
        response = sfn.start_execution(stateMachineArn=runtime.state_machine_arn, name=state.run_id,
                                       input=state.model_dump_json(exclude_none=True))
        arn, started = response["executionArn"], True
    except sfn.exceptions.ExecutionAlreadyExists:
        arn, started = None, False
    return {"video_id": video_id, "accepted": True, "started": started, "execution_name": state.run_id,
            "execution_arn": arn}


# -- plan -------------------------------------------------------------------------------------------

def load_analysis(s3: Any, state: RunState) -> tuple[VideoInfo, SceneProfile]:
    base = S3Uri.parse(state.analysis_uri)
    info = VideoInfo.model_validate_json(s3_read_text(s3, base.join("video.json")))
    profile = SceneProfile.model_validate_json(s3_read_text(s3, base.join("profile.json")))
    return info, profile


def load_anchors(s3: Any, state: RunState) -> BenchResults | None:
    """The Analyze job's anchor sweep (anchors/results.json), or None when it wrote none."""
    from botocore.exceptions import ClientError

    try:
        text = s3_read_text(s3, S3Uri.parse(state.analysis_uri).join("anchors/results.json"), limit=MAX_ANCHORS_BYTES)
        return BenchResults.model_validate_json(text)
    except (ClientError, ValueError) as exc:  # no sweep (anchors off) or unreadable: plan without it
        log.warning("planning without the anchor sweep: %s/anchors/results.json: %s", state.analysis_uri, exc)
        return None


def plan_round(state: RunState, *, store: Any, s3: Any, planner: Any, runtime: LabRuntime) -> PlanOutput:
    from codec_lab.planning.rounds import plan_round

    info, profile = load_analysis(s3, state)
    video = store.get_video(state.video_id)
    targets = video.targets if video else Targets()
    budget = video.budget if video else runtime.budget
    if video is None:
        store.put_video(VideoRecord(video_id=state.video_id, source_uri=state.video_uri, status="planning", info=info,
                                    profile=profile, targets=targets, budget=budget))
    elif video.profile is None:
        store.put_video(video.model_copy(update={"info": info, "profile": profile, "status": "planning"}))
    else:
        store.set_video_status(state.video_id, "planning")
    # Plans stored by an earlier attempt of this step (a retried Lambda) run first, never planned over.
    plans = [r.plan for r in store.unfinished(state.video_id)] or plan_round(
        planner, store, info, profile, targets, budget, runtime.experiments_per_round, load_anchors(s3, state))
    tasks = []
    for index, plan in enumerate(plans):
        s3_write_text(s3, plan_prefix(state.bucket, state.video_id, plan.plan_id).join("plan.json"), plan.model_dump_json())
        tasks.append(ExperimentTask.build(bucket=state.bucket, video_id=state.video_id, run_id=state.run_id,
                                          round=plan.round, index=index, plan_id=plan.plan_id, strategy=plan.strategy,
                                          video_uri=state.video_uri, video_name=state.video_name))
    report = getattr(planner, "last_report", None)
    if tasks:
        store.set_video_status(state.video_id, "running")
    return PlanOutput(round=tasks[0].round if tasks else state.round, experiments=tasks,
                      planner=getattr(planner, "name", ""), note=getattr(report, "fallback_reason", None))


# -- record -----------------------------------------------------------------------------------------

def result_from_artifacts(s3: Any, model_artifacts: str) -> ExperimentResult:
    """result.json out of the job's model.tar.gz, read member by member (no extraction to disk)."""
    loc = S3Uri.parse(model_artifacts)
    obj = s3.get_object(Bucket=loc.bucket, Key=loc.key)
    if int(obj.get("ContentLength", 0)) > MAX_ARTIFACT_TAR_BYTES:
        raise ValueError(f"{loc} is larger than {MAX_ARTIFACT_TAR_BYTES} bytes")
    with tarfile.open(fileobj=io.BytesIO(obj["Body"].read()), mode="r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.lstrip("./") == "result.json":
                if member.size > MAX_RESULT_BYTES:
                    raise ValueError("result.json is too large")
                return ExperimentResult.model_validate_json(tar.extractfile(member).read())
    raise ValueError(f"no result.json in {loc}")


def failure_reason(cause: str | None) -> str:
    """A readable reason from Step Functions' Cause (for .sync jobs, the DescribeTrainingJob JSON)."""
    if not cause:
        return "the training job failed without a cause"
    try:
        data = json.loads(cause)
    except ValueError:
        return cause[:4000]
    if isinstance(data, dict):
        for key in ("FailureReason", "errorMessage", "Message"):
            if data.get(key):
                status = data.get("TrainingJobStatus") or data.get("errorType") or ""
                return f"{status}: {data[key]}".strip(": ")[:4000]
    return cause[:4000]


def record_outcome(event: RecordInput, *, store: Any, s3: Any, sagemaker: Any | None = None) -> dict[str, Any]:
    """The Record step: the experiment's result (or its failure) goes into the store, never lost."""
    gpu_seconds = None
    if event.training and event.training.model_artifacts:
        try:
            result = result_from_artifacts(s3, event.training.model_artifacts)
        except (ValueError, ValidationError, tarfile.TarError) as exc:
            result = ExperimentResult(plan_id=event.plan_id, video_id=event.video_id, status="failed",
                                      error=f"unreadable result: {exc}"[:4000])
        if sagemaker is not None:
            described = sagemaker.describe_training_job(TrainingJobName=event.training.job_name)
            gpu_seconds = described.get("BillableTimeInSeconds") or described.get("TrainingTimeInSeconds")
            if gpu_seconds is not None:
                result = result.model_copy(update={"timings": {**result.timings, "gpu": float(gpu_seconds)}})
        result = result.model_copy(update={"artifacts": {**result.artifacts, "model_tar": event.training.model_artifacts}})
    else:
        cause = event.error.Cause if event.error else None
        error = event.error.Error if event.error else "unknown"
        result = ExperimentResult(plan_id=event.plan_id, video_id=event.video_id, status="failed",
                                  error=f"{error}: {failure_reason(cause)}"[:4000])
    stored = store.put_result(result)
    s3_write_text(s3, run_prefix(event.bucket, event.video_id).join("experiments", event.plan_id, "result.json"),
                  result.model_dump_json(indent=2))
    return {"plan_id": event.plan_id, "status": result.status, "stored": stored, "gpu_seconds": gpu_seconds}


def record_step_failure(event: StepFailure, *, store: Any) -> dict[str, Any]:
    """A step's failure, kept on the video record; Analyze and Report failures end the run."""
    cause = failure_reason(event.error.Cause if event.error else None)
    note = f"{event.failed_step} failed: {(event.error.Error if event.error else 'unknown')}: {cause}"[:2000]
    fatal = event.failed_step in (steps.ANALYZE, steps.REPORT)
    if store.get_video(event.video_id) is None:
        store.put_video(VideoRecord(video_id=event.video_id, source_uri="unknown", status="failed", note=note))
    else:
        current = store.get_video(event.video_id)
        store.set_video_status(event.video_id, "failed" if fatal else current.status, note=note)
    return {"video_id": event.video_id, "failed_step": event.failed_step, "fatal": fatal}


# -- decide -----------------------------------------------------------------------------------------

def decide_round(state: RunState, *, store: Any, runtime: LabRuntime) -> Decision:
    from codec_lab.decide import decide

    video = store.get_video(state.video_id)
    targets = video.targets if video else Targets()
    budget = video.budget if video else runtime.budget
    planned_nothing = state.plan is not None and not state.plan.experiments
    records = store.list_experiments(state.video_id)
    decision = decide(state.video_id, records, targets, budget, planned_nothing=planned_nothing)
    current = state.plan.round if state.plan else state.round
    return Decision(**{"continue": not decision.stop}, reason=decision.reason, next_round=current + 1,
                    best_plan_id=decision.best_plan_id)


# -- report -----------------------------------------------------------------------------------------

def _row(record: ExperimentRecord) -> dict[str, Any]:
    result = record.result
    metrics: ExperimentMetrics | None = result.metrics if result else None
    return {
        "plan_id": record.plan.plan_id, "round": record.plan.round, "strategy": record.plan.strategy,
        "parameters": dict(record.plan.parameters), "rationale": record.plan.rationale, "status": record.status,
        "kbps": metrics.kbps if metrics else None, "psnr_yuv": metrics.quality.psnr_yuv if metrics else None,
        "ssim": metrics.quality.ssim if metrics else None, "tops_per_frame": metrics.tops_per_frame if metrics else None,
        "meets_target": metrics.meets_target if metrics else None, "error": result.error if result else None,
        "score": record.score,
    }


def _svg_rd(rows: list[dict[str, Any]]) -> str:
    points = [(r["kbps"], r["psnr_yuv"], r["strategy"]) for r in rows if r["kbps"] and r["psnr_yuv"]]
    if not points:
        return "<p>No successful experiment to plot.</p>"
    w, h, pad = 640, 360, 48
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs) * 0.9, max(xs) * 1.1 or 1
    y0, y1 = min(ys) - 1, max(ys) + 1

    def sx(x: float) -> float:
        return pad + (x - x0) / (x1 - x0 or 1) * (w - 2 * pad)

    def sy(y: float) -> float:
        return h - pad - (y - y0) / (y1 - y0 or 1) * (h - 2 * pad)

    marks = "".join(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4"><title>{html.escape(s)}: {x:.0f} kbps, '
                    f'{y:.2f} dB</title></circle>' for x, y, s in points)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="RD plot">'
            f'<rect width="{w}" height="{h}" fill="white" stroke="#ccc"/>{marks}'
            f'<text x="{w / 2}" y="{h - 8}" text-anchor="middle">bitrate (kbps) {x0:.0f}..{x1:.0f}</text>'
            f'<text x="12" y="{h / 2}" transform="rotate(-90 12 {h / 2})" text-anchor="middle">PSNR-YUV (dB) '
            f'{y0:.1f}..{y1:.1f}</text></svg>')


def write_report(state: RunState, *, store: Any, s3: Any) -> dict[str, Any]:
    """report.html (table + RD scatter) and summary.json under reports/<video id>/; the SNS message."""
    from codec_lab.decide import best_record

    video = store.get_video(state.video_id)
    targets = video.targets if video else Targets()
    records = store.list_experiments(state.video_id)
    rows = [_row(r) for r in records]
    best = best_record(records, targets)
    summary = {
        "video_id": state.video_id, "source": state.video_uri, "experiments": len(rows),
        "succeeded": sum(r["status"] == "succeeded" for r in rows), "failed": sum(r["status"] == "failed" for r in rows),
        "best": _row(best) if best else None, "targets": targets.model_dump(),
        "stopped_because": state.decision.reason if state.decision else (state.error.Error if state.error else None),
        "rows": rows,
    }
    prefix = report_prefix(state.bucket, state.video_id)
    summary_uri = s3_write_text(s3, prefix.join("summary.json"), json.dumps(summary, indent=2, default=str))
    table = "".join(
        f"<tr><td>{html.escape(r['plan_id'])}</td><td>{r['round']}</td><td>{html.escape(r['strategy'])}</td>"
        f"<td>{html.escape(json.dumps(r['parameters']))}</td><td>{r['status']}</td><td>{_fmt(r['kbps'], '.0f')}</td>"
        f"<td>{_fmt(r['psnr_yuv'], '.2f')}</td><td>{_fmt(r['ssim'], '.4f')}</td><td>{r['meets_target']}</td>"
        f"<td>{html.escape(r['error'] or r['rationale'] or '')}</td></tr>" for r in rows)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>codec-lab: {html.escape(state.video_id)}</title>"
            f"</head><body><h1>codec-lab report: {html.escape(state.video_name)}</h1>"
            f"<p>{summary['experiments']} experiments, {summary['succeeded']} succeeded, {summary['failed']} failed. "
            f"Stopped because: {html.escape(str(summary['stopped_because']))}.</p>{_svg_rd(rows)}"
            "<table border='1' cellpadding='4'><tr><th>plan</th><th>round</th><th>strategy</th><th>parameters</th>"
            "<th>status</th><th>kbps</th><th>PSNR-YUV</th><th>SSIM</th><th>meets target</th><th>note</th></tr>"
            f"{table}</table></body></html>")
    report_uri = s3_write_text(s3, prefix.join("report.html"), page, content_type="text/html")
    status = store.get_video(state.video_id)
    if status is not None:
        store.set_video_status(state.video_id, "done", note=summary["stopped_because"])
    return {"video_id": state.video_id, "report_uri": report_uri, "summary_uri": summary_uri,
            "experiments": summary["experiments"], "succeeded": summary["succeeded"],
            "best_plan_id": best.plan.plan_id if best else None,
            "best_psnr_yuv": best.result.metrics.quality.psnr_yuv if best else None,
            "best_kbps": best.result.metrics.kbps if best else None}


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


__all__ = ["LabRuntime", "REPORTS", "decide_round", "ingest_upload", "plan_round", "record_outcome",
           "record_step_failure", "rejection_reason", "write_report"]
