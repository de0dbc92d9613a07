"""EventBridge `Object Created` -> validate the upload, record it, start one execution.

Idempotent on bucket + key + version id (or ETag): a duplicate event returns the first answer and
starts nothing (Powertools idempotency over DynamoDB; StartExecution's name is derived from the same key).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer

try:  # in the zip the handlers sit at the root; in the repo they are the `lambdas` package
    from _common import client, logger, metrics, runtime, store, tracer
except ImportError:  # pragma: no cover - exercised by the tests
    from lambdas._common import client, logger, metrics, runtime, store, tracer

from codec_lab.aws.lab import ingest_upload
from codec_lab.aws.payloads import UploadRef

persistence = DynamoDBPersistenceLayer(table_name=os.environ.get("IDEMPOTENCY_TABLE", "idempotency"))
config = IdempotencyConfig(event_key_jmespath="[bucket, key, version_id || etag]", expires_after_seconds=7 * 24 * 3600,
                           raise_on_no_idempotency_key=True)


def parse(event: dict[str, Any]) -> UploadRef:
    detail = event["detail"]
    obj = detail["object"]
    return UploadRef(bucket=detail["bucket"]["name"], key=obj["key"], version_id=obj.get("version-id"),
                     etag=obj.get("etag"), size=int(obj.get("size", 0)))


@idempotent_function(data_keyword_argument="upload", config=config, persistence_store=persistence,
                     output_serializer=None)
def ingest(upload: dict[str, Any]) -> dict[str, Any]:
    outcome = ingest_upload(UploadRef.model_validate(upload), store=store(), sfn=client("stepfunctions"),
                            runtime=runtime())
    if outcome["accepted"]:
        metrics.add_metric(name="UploadsAccepted", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="UploadsRejected", unit=MetricUnit.Count, value=1)
        logger.warning("upload rejected", extra=outcome)
    return outcome


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config.register_lambda_context(context)
    upload = parse(event)
    logger.append_keys(video_id=upload.video_id, key=upload.key)
    return ingest(upload=upload.model_dump())
