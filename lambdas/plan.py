"""The Plan step: the planner proposes this round's experiments; plan.json files go to S3."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

try:
    from _common import client, logger, metrics, runtime, store, tracer
except ImportError:  # pragma: no cover
    from lambdas._common import client, logger, metrics, runtime, store, tracer

from codec_lab.aws.lab import plan_round
from codec_lab.aws.payloads import RunState


def make_planner():  # noqa: ANN201 - the Bedrock planner with the local one as fallback
    from codec_lab.planning.settings import PlannerSettings, make_planner as make

    rt = runtime()
    settings = PlannerSettings(kind="bedrock" if rt.bedrock_model_id else "local", model_id=rt.bedrock_model_id,
                               region=rt.bedrock_region, audit_bucket=rt.bucket, audit_prefix="runs/audit")
    bedrock = client("bedrock-runtime", rt.bedrock_region) if rt.bedrock_model_id else None
    return make(settings, store=store(), client=bedrock)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    state = RunState.model_validate(event)
    logger.append_keys(video_id=state.video_id)
    out = plan_round(state, store=store(), s3=client("s3"), planner=make_planner(), runtime=runtime())
    metrics.add_metric(name="ExperimentsPlanned", unit=MetricUnit.Count, value=len(out.experiments))
    return out.model_dump(mode="json")
