"""cdk-nag AwsSolutions suppressions. Each names the rule, the exact finding (`applies_to`) where the
rule is granular, and the reason. Anything not listed here fails `cdk synth` (and tests/cdk)."""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import NagPackSuppression, NagSuppressions

XRAY = ("X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level permissions "
        "(Service Authorization Reference), so active tracing needs Resource '*'.")
TABLE_INDEX = ("The store queries the experiment table's GSI (by_scene_class); index ARNs are "
               "<table>/index/<name>, granted for this table only.")
BUCKET_PREFIX = ("Object access is limited to one prefix of the lab's own bucket (uploads/, runs/, reports/, tmp/); "
                 "object keys are per video and not known in advance.")


def _regex(pattern: str) -> dict:
    return {"regex": f"/{pattern}/"}


def suppress(stack: cdk.Stack) -> None:
    path = f"/{stack.stack_name}"

    for fn in ("Ingest", "Plan", "Record", "Decide", "Report"):
        NagSuppressions.add_resource_suppressions_by_path(stack, f"{path}/Functions/{fn}/Resource", [
            NagPackSuppression(id="AwsSolutions-L1", reason=(
                "Python 3.13 is the newest runtime the pinned Powertools public layer (cdk.json powertoolsLayerVersion) "
                "is published and tested for; the runtime moves with the layer."))])
        NagSuppressions.add_resource_suppressions_by_path(stack, f"{path}/Functions/{fn}Role/DefaultPolicy/Resource", [
            NagPackSuppression(id="AwsSolutions-IAM5", reason=XRAY + " " + TABLE_INDEX + " " + BUCKET_PREFIX, applies_to=[
                "Resource::*",
                _regex(r"^Resource::<StorageExperiments[0-9A-F]+\.Arn>\/index\/\*$"),
                _regex(r"^Resource::<StorageVideos[0-9A-F]+\.Arn>\/(runs|reports)\/\*$"),
            ])])
    NagSuppressions.add_resource_suppressions_by_path(stack, f"{path}/Functions/PlanRole/DefaultPolicy/Resource", [
        NagPackSuppression(id="AwsSolutions-IAM5", reason=(
            "A cross-region inference profile routes each call to the model in one of the profile's regions; the "
            "foundation-model statement has a wildcard region only and is conditioned on bedrock:InferenceProfileArn "
            "being the configured profile (AWS Bedrock docs, 'Prerequisites for inference profiles')."),
            applies_to=[_regex(r"^Resource::arn:(<AWS::Partition>|aws[a-z-]*):bedrock:\*::foundation-model\/.+$")])])
    NagSuppressions.add_resource_suppressions_by_path(stack, f"{path}/Functions/RecordRole/DefaultPolicy/Resource", [
        NagPackSuppression(id="AwsSolutions-IAM5", reason=(
            "Record describes the training jobs this stack names (prefix 'cl-'); job names are made per experiment."),
            applies_to=[_regex(r"^Resource::arn:(<AWS::Partition>|aws[a-z-]*):sagemaker:(<AWS::Region>|[a-z0-9-]+):(<AWS::AccountId>|\d{12}):training-job\/cl-\*$")])])

    NagSuppressions.add_resource_suppressions_by_path(stack, f"{path}/Workflow/JobRole/DefaultPolicy/Resource", [
        NagPackSuppression(id="AwsSolutions-IAM5", reason=(
            BUCKET_PREFIX + " ecr:GetAuthorizationToken supports only Resource '*'; cloudwatch:PutMetricData supports "
            "only Resource '*' and is conditioned on the /aws/sagemaker/* namespaces; SageMaker jobs write their logs to "
            "log groups under /aws/sagemaker/ that SageMaker creates per job type."), applies_to=[
            "Resource::*",
            _regex(r"^Resource::<StorageVideos[0-9A-F]+\.Arn>\/(uploads|runs|tmp)\/\*$"),
            _regex(r"^Resource::arn:(<AWS::Partition>|aws[a-z-]*):logs:(<AWS::Region>|[a-z0-9-]+):(<AWS::AccountId>|\d{12}):log-group:\/aws\/sagemaker\/\*$"),
        ])])
    NagSuppressions.add_resource_suppressions_by_path(stack, f"{path}/Workflow/Pipeline/Role/DefaultPolicy/Resource", [
        NagPackSuppression(id="AwsSolutions-IAM5", reason=(
            "Step Functions' role: " + XRAY + " CloudWatch Logs delivery (logs:CreateLogDelivery etc.) supports only "
            "Resource '*' (Step Functions docs, 'Logging using CloudWatch Logs'); sagemaker:ListTags is added by CDK's "
            "SageMakerCreateTrainingJob on '*'; the training and processing jobs are named per experiment at run time "
            "(training-job/*, processing-job/cl-*); LambdaInvoke grants the function ARN and its versions (<arn>:*)."),
            applies_to=[
                "Resource::*",
                _regex(r"^Resource::arn:(<AWS::Partition>|aws[a-z-]*):sagemaker:(<AWS::Region>|[a-z0-9-]+):(<AWS::AccountId>|\d{12}):(training|processing)-job\/(cl-)?\*$"),
                _regex(r"^Resource::<Functions(Plan|Record|Decide|Report)[0-9A-F]+\.Arn>:\*$"),
            ])])

    NagSuppressions.add_resource_suppressions_by_path(stack, f"{path}/Uploads/DeadLetters/Resource", [
        NagPackSuppression(id="AwsSolutions-SQS3", reason=(
            "This queue is the dead-letter queue of the upload rule's Lambda target; a DLQ needs no DLQ of its own. "
            "An alarm fires on its first message."))])
