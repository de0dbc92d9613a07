"""Fixtures for the AWS glue: moto for S3, DynamoDB, SNS and Step Functions; no account, no Docker."""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.update({
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "CodecLab",
    "POWERTOOLS_SERVICE_NAME": "codec-lab-test", "POWERTOOLS_DEV": "false",
})

from awslab_testing import BUCKET, IDEMPOTENCY, TABLE  # noqa: E402


class LambdaContext:
    function_name = "test"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "req-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


@pytest.fixture
def context():
    return LambdaContext()


@pytest.fixture
def aws():
    """moto-backed clients with the lab's bucket, experiment table and idempotency table."""
    import boto3
    from moto import mock_aws

    from codec_lab.store.dynamo import table_spec

    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        ddb = boto3.client("dynamodb")
        ddb.create_table(**table_spec(TABLE))
        ddb.create_table(TableName=IDEMPOTENCY, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
        yield {"s3": s3, "dynamodb": ddb, "stepfunctions": boto3.client("stepfunctions"), "sns": boto3.client("sns"),
               "iam": boto3.client("iam")}


@pytest.fixture
def store(aws):
    from codec_lab.store.dynamo import DynamoStore

    return DynamoStore(TABLE, aws["dynamodb"])


def tiny_clip(frames: int = 6, width: int = 64, height: int = 48):
    import numpy as np

    from codec_lab.video.frames import Clip

    t = np.arange(frames)[:, None, None]
    yy, xx = np.mgrid[0:height, 0:width]
    y = ((xx[None] * 3 + yy[None] * 2 + t * 4) % 256).astype(np.uint8)
    u = np.full((frames, height // 2, width // 2), 110, np.uint8)
    v = np.full((frames, height // 2, width // 2), 140, np.uint8)
    return Clip(y, u, v, Fraction(25))


@pytest.fixture
def tiny_y4m(tmp_path) -> Path:
    from codec_lab.video.writer import write_clip

    return write_clip(tiny_clip(), tmp_path / "tiny.y4m")
