"""`UploadTrigger`: EventBridge `Object Created` under uploads/ -> the ingest Lambda.

The rule matches the prefix only. EventBridge cannot combine a prefix with a case-insensitive
suffix on one field, and wildcards per case (`*.mp4`, `*.MP4`) miss `clip.Mp4`; the ingest Lambda
judges the suffix case-insensitively and records in the store why it rejects anything else, so
a user who uploads a `.txt` finds the reason instead of silence.
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
                    "object": {"key": events.Match.prefix(UPLOADS)},
                },
            ),
        )
        self.rule.add_target(targets.LambdaFunction(
            ingest, dead_letter_queue=self.dead_letters, retry_attempts=8, max_event_age=cdk.Duration.hours(2)))
