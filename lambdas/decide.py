"""The Decide step: another round, or stop (targets met, budget spent, rounds done)."""

from __future__ import annotations

from typing import Any

try:
    from _common import logger, metrics, runtime, store, tracer
except ImportError:  # pragma: no cover
    from lambdas._common import logger, metrics, runtime, store, tracer

from codec_lab.aws.lab import decide_round
from codec_lab.aws.payloads import RunState


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    state = RunState.model_validate(event)
    logger.append_keys(video_id=state.video_id)
    return decide_round(state, store=store(), runtime=runtime()).model_dump(mode="json", by_alias=True)
