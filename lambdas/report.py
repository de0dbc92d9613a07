"""The Report step: report.html and summary.json under reports/<video id>/, the video marked done."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

try:
    from _common import client, logger, metrics, store, tracer
except ImportError:  # pragma: no cover
    from lambdas._common import client, logger, metrics, store, tracer

from codec_lab.aws.lab import write_report
from codec_lab.aws.payloads import RunState


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    state = RunState.model_validate(event)
    logger.append_keys(video_id=state.video_id)
    out = write_report(state, store=store(), s3=client("s3"))
    metrics.add_metric(name="ExperimentsPerVideo", unit=MetricUnit.Count, value=out["experiments"])
    if out.get("best_psnr_yuv") is not None:
        metrics.add_metric(name="BestPsnrYuv", unit=MetricUnit.NoUnit, value=float(out["best_psnr_yuv"]))
    return out
