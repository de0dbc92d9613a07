"""`LabStorage`: the bucket (uploads/, runs/, reports/), its access-log bucket, the experiment table
(the layout `codec_lab.store.dynamo` defines) and the Powertools idempotency table."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from codec_lab.aws.s3uri import TMP
from codec_lab.aws.settings import LabSettings
from codec_lab.store import dynamo as store_layout


class LabStorage(Construct):
    def __init__(self, scope: Construct, id: str, *, settings: LabSettings) -> None:
        super().__init__(scope, id)

        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # S3 server access logging cannot write to SSE-KMS buckets
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=cdk.Duration.days(365),
                                 noncurrent_version_expiration=cdk.Duration.days(30)),
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

        self.bucket = s3.Bucket(
            self,
            "Videos",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="videos/",
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-temporary-files", prefix=TMP,
                                 expiration=cdk.Duration.days(settings.temp_expiration_days)),
                s3.LifecycleRule(id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=cdk.Duration.days(1)),
                s3.LifecycleRule(id="expire-old-versions", noncurrent_version_expiration=cdk.Duration.days(30)),
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

        # EventBridge notifications straight on the bucket resource: CDK's `event_bridge_enabled` would add a
        # custom-resource Lambda to set what CloudFormation can set itself.
        cfn_bucket = self.bucket.node.default_child
        cfn_bucket.add_property_override("NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True)

        # The experiment store: exactly the layout of codec_lab.store.dynamo (a test compares them).
        self.table = ddb.Table(
            self,
            "Experiments",
            partition_key=ddb.Attribute(name=store_layout.PARTITION_KEY, type=ddb.AttributeType.STRING),
            sort_key=ddb.Attribute(name=store_layout.SORT_KEY, type=ddb.AttributeType.STRING),
            billing_mode=ddb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
            encryption=ddb.TableEncryption.AWS_MANAGED,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.table.add_global_secondary_index(
            index_name=store_layout.SCENE_INDEX,
            partition_key=ddb.Attribute(name="scene_class", type=ddb.AttributeType.STRING),
            sort_key=ddb.Attribute(name="score", type=ddb.AttributeType.NUMBER),
            projection_type=ddb.ProjectionType.ALL,
        )

        # Powertools idempotency: partition key "id", TTL on "expiration" (its documented layout).
        self.idempotency_table = ddb.Table(
            self,
            "Idempotency",
            partition_key=ddb.Attribute(name="id", type=ddb.AttributeType.STRING),
            billing_mode=ddb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expiration",
            point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
            encryption=ddb.TableEncryption.AWS_MANAGED,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
