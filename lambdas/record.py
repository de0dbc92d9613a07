"""The Record step: an experiment's result or failure into the store; also a step's caught failure."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

try:
    from _common import client, logger, metrics, store, tracer
except ImportError:  # pragma: no cover
    from lambdas._common import client, logger, metrics, store, tracer

from codec_lab.aws.lab import record_outcome, record_step_failure
from codec_lab.aws.payloads import RecordInput, StepFailure


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "failed_step" in event:
        failure = StepFailure.model_validate(event)
        logger.append_keys(video_id=failure.video_id)
        metrics.add_metric(name="StepsFailed", unit=MetricUnit.Count, value=1)
        return record_step_failure(failure, store=store())
    outcome = RecordInput.model_validate(event)
    logger.append_keys(video_id=outcome.video_id, plan_id=outcome.plan_id)
    recorded = record_outcome(outcome, store=store(), s3=client("s3"), sagemaker=client("sagemaker"))
    metrics.add_metric(name="ExperimentsRecorded", unit=MetricUnit.Count, value=1)
    if recorded["status"] == "failed":
        metrics.add_metric(name="ExperimentsFailed", unit=MetricUnit.Count, value=1)
    if recorded.get("gpu_seconds"):
        metrics.add_metric(name="TrainingJobSeconds", unit=MetricUnit.Seconds, value=float(recorded["gpu_seconds"]))
    return recorded
