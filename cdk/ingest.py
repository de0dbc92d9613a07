"""`UploadTrigger`: EventBridge `Object Created` under uploads/ with a video suffix -> the ingest Lambda.

EventBridge cannot combine a prefix and a case-insensitive suffix on one field, so the rule lists
one wildcard per suffix in lower and in upper case (`uploads/*.mp4`, `uploads/*.MP4`); the ingest
Lambda checks the suffix again, case-insensitively, and records a reason for anything it rejects.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from codec_lab.aws.s3uri import UPLOADS
from codec_lab.aws.settings import VIDEO_SUFFIXES


def upload_key_patterns() -> list[str]:
    patterns: list[str] = []
    for suffix in VIDEO_SUFFIXES:
        for variant in (suffix.lower(), suffix.upper()):
            if f"{UPLOADS}*{variant}" not in patterns:
                patterns.append(f"{UPLOADS}*{variant}")
    return patterns


class UploadTrigger(Construct):
    def __init__(self, scope: Construct, id: str, *, bucket: s3.IBucket, ingest: lambda_.IFunction) -> None:
        super().__init__(scope, id)
        self.dead_letters = sqs.Queue(self, "DeadLetters", encryption=sqs.QueueEncryption.SQS_MANAGED,
                                      enforce_ssl=True, retention_period=cdk.Duration.days(14))
        self.rule = events.Rule(
            self, "VideoUploaded",
            description="a video landed under uploads/",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [bucket.bucket_name]},
                    "object": {"key": events.Match.any_of(*(events.Match.wildcard(p) for p in upload_key_patterns()))},
                },
            ),
        )
        self.rule.add_target(targets.LambdaFunction(
            ingest, dead_letter_queue=self.dead_letters, retry_attempts=8, max_event_age=cdk.Duration.hours(2)))
