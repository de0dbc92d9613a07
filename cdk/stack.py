"""`CodecLabStack`: storage, functions, the upload trigger, the workflow, notifications and monitoring."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk.bundling import REPO_ROOT
from cdk.functions import LabFunctions
from cdk.ingest import UploadTrigger
from cdk.monitoring import LabMonitoring, LabNotifications
from cdk.nag import suppress
from cdk.storage import LabStorage
from cdk.workflow import LabWorkflow
from codec_lab.aws.settings import LabSettings

# The GPU image's build context is the repository root (the library is installed into the image);
# everything but what the Dockerfile copies is left out, so staging and hashing never walk .venv/.
IMAGE_CONTEXT_EXCLUDES = ["*", "!codec_lab", "!gpu_jobs", "!pyproject.toml", "!README.md",
                          "**/__pycache__", "**/*.pyc"]


class CodecLabStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, *, settings: LabSettings, **kwargs) -> None:
        super().__init__(scope, id, description="codec-lab: finds the best way to compress each uploaded video", **kwargs)
        self.settings = settings
        self.storage = LabStorage(self, "Storage", settings=settings)
        self.functions = LabFunctions(self, "Functions", settings=settings, storage=self.storage)
        self.notifications = LabNotifications(self, "Notifications", settings=settings)
        # Built by `cdk deploy` (asset publishing), never by `cdk synth`.
        self.image = ecr_assets.DockerImageAsset(
            self, "JobImage", directory=str(REPO_ROOT), file="gpu_jobs/Dockerfile",
            exclude=IMAGE_CONTEXT_EXCLUDES, ignore_mode=cdk.IgnoreMode.DOCKER,
            platform=ecr_assets.Platform.LINUX_AMD64, display_name="codec-lab GPU jobs")
        self.workflow = LabWorkflow(self, "Workflow", settings=settings, storage=self.storage,
                                    functions=self.functions, topic=self.notifications.topic, image=self.image)
        # sns:Publish and the topic key's two actions, named (CDK's grant_publish adds kms:GenerateDataKey*).
        self.workflow.state_machine.add_to_role_policy(iam.PolicyStatement(
            actions=["sns:Publish"], resources=[self.notifications.topic.topic_arn]))
        self.workflow.state_machine.add_to_role_policy(iam.PolicyStatement(
            actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[self.notifications.key.key_arn]))
        self.trigger = UploadTrigger(self, "Uploads", bucket=self.storage.bucket, ingest=self.functions.functions["Ingest"])
        self.monitoring = LabMonitoring(self, "Monitoring", state_machine=self.workflow.state_machine,
                                        functions=self.functions.functions, topic=self.notifications.topic,
                                        dead_letters=self.trigger.dead_letters)

        cdk.CfnOutput(self, "BucketName", value=self.storage.bucket.bucket_name,
                      description="drop videos under uploads/ in this bucket")
        cdk.CfnOutput(self, "UploadCommand", value=f"aws s3 cp clip.mp4 s3://{self.storage.bucket.bucket_name}/uploads/")
        cdk.CfnOutput(self, "StateMachineArn", value=self.workflow.state_machine.state_machine_arn)
        cdk.CfnOutput(self, "TableName", value=self.storage.table.table_name)
        cdk.CfnOutput(self, "TopicArn", value=self.notifications.topic.topic_arn)
        cdk.CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name)
        suppress(self)
