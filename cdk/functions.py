"""`LabFunctions`: the five Lambdas (ingest, plan, record, decide, report) over one local bundle.

Each function has its own role with named actions only, its own log group with a retention, X-Ray
active tracing, and the Powertools public layer for its dependencies (no torch, no Docker).
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk import grants
from cdk.bundling import lambda_code
from cdk.storage import LabStorage
from codec_lab.aws.costs import gpu_seconds_for_budget
from codec_lab.aws.s3uri import REPORTS, RUNS
from codec_lab.aws.settings import VIDEO_SUFFIXES, LabSettings

RUNTIME = lambda_.Runtime.PYTHON_3_13
POWERTOOLS_ACCOUNT = "017000801446"  # the Powertools team's publishing account (docs: "Lambda Layer")


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler: str
    timeout_s: int
    memory_mb: int
    description: str


SPECS = (
    FunctionSpec("Ingest", "ingest.handler", 30, 256, "Validates an upload and starts one execution (idempotent)"),
    FunctionSpec("Plan", "plan.handler", 300, 512, "Plans a round of experiments (Bedrock planner, local fallback)"),
    FunctionSpec("Record", "record.handler", 120, 512, "Records an experiment's result or failure in the store"),
    FunctionSpec("Decide", "decide.handler", 60, 256, "Decides whether to plan another round"),
    FunctionSpec("Report", "report.handler", 300, 512, "Writes the report to S3 and the summary to the store"),
)


class LabFunctions(Construct):
    def __init__(self, scope: Construct, id: str, *, settings: LabSettings, storage: LabStorage) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)
        self.settings = settings
        self.powertools = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "Powertools",
            f"arn:{stack.partition}:lambda:{stack.region}:{POWERTOOLS_ACCOUNT}:layer:"
            f"AWSLambdaPowertoolsPythonV3-{RUNTIME.name.replace('.', '')}-x86_64:{settings.powertools_layer_version}",
        )
        code = lambda_code()
        common_env = {
            "POWERTOOLS_SERVICE_NAME": "codec-lab",
            "POWERTOOLS_METRICS_NAMESPACE": "CodecLab",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "TABLE_NAME": storage.table.table_name,
            "BUCKET_NAME": storage.bucket.bucket_name,
            "MAX_ROUNDS": str(settings.rounds),
            "EXPERIMENTS_PER_ROUND": str(settings.experiments_per_round),
            "BUDGET_GPU_SECONDS": str(round(gpu_seconds_for_budget(settings.budget_per_video_usd, settings.training_instance_type))),
            "TRAINING_INSTANCE_TYPE": settings.training_instance_type,
        }
        self.functions: dict[str, lambda_.Function] = {}
        for spec in SPECS:
            role = iam.Role(self, f"{spec.name}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                            description=f"codec-lab {spec.name} Lambda")
            log_group = logs.LogGroup(self, f"{spec.name}Logs", retention=retention(settings),
                                      removal_policy=cdk.RemovalPolicy.DESTROY)
            role.add_to_policy(iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                                   resources=[log_group.log_group_arn]))
            fn = lambda_.Function(
                self,
                spec.name,
                description=spec.description,
                runtime=RUNTIME,
                architecture=lambda_.Architecture.X86_64,
                handler=spec.handler,
                code=code,
                layers=[self.powertools],
                role=role,
                log_group=log_group,
                timeout=cdk.Duration.seconds(spec.timeout_s),
                memory_size=spec.memory_mb,
                tracing=lambda_.Tracing.ACTIVE,
                environment={**common_env, "POWERTOOLS_SERVICE_NAME": f"codec-lab-{spec.name.lower()}"},
            )
            self.functions[spec.name] = fn

        ingest, plan, record, decide, report = (self.functions[n] for n in ("Ingest", "Plan", "Record", "Decide", "Report"))
        bucket, table = storage.bucket, storage.table

        # ingest: the video record, the idempotency table; StartExecution is granted by the workflow.
        grants.table_access(ingest, table, write=True, with_indexes=False)
        ingest.add_to_role_policy(iam.PolicyStatement(
            actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
            resources=[storage.idempotency_table.table_arn]))
        ingest.add_environment("IDEMPOTENCY_TABLE", storage.idempotency_table.table_name)
        ingest.add_environment("MAX_UPLOAD_BYTES", str(settings.max_upload_bytes))
        ingest.add_environment("VIDEO_SUFFIXES", ",".join(VIDEO_SUFFIXES))

        # plan: reads the analysis, writes plans; Bedrock only for the configured model.
        grants.table_access(plan, table, write=True)
        grants.s3_read(plan, bucket, [RUNS])
        grants.s3_write(plan, bucket, [RUNS])
        plan.add_environment("BEDROCK_MODEL_ID", settings.bedrock_model_id)
        plan.add_environment("BEDROCK_REGION", settings.bedrock_region)
        for statement in bedrock_statements(stack, settings):
            plan.add_to_role_policy(statement)

        # record: reads the job's model.tar.gz, copies result.json out, asks SageMaker for billable time.
        grants.table_access(record, table, write=True)
        grants.s3_read(record, bucket, [RUNS])
        grants.s3_write(record, bucket, [RUNS])
        record.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:DescribeTrainingJob"],
            resources=[stack.format_arn(service="sagemaker", resource="training-job", resource_name="cl-*")]))

        grants.table_access(decide, table, write=False)

        grants.table_access(report, table, write=True)
        grants.s3_read(report, bucket, [RUNS])
        grants.s3_write(report, bucket, [REPORTS])


_RETENTION = {1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
              60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
              365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS",
              1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
              3653: "TEN_YEARS"}


def retention(settings: LabSettings) -> logs.RetentionDays:
    return getattr(logs.RetentionDays, _RETENTION[settings.log_retention_days])


def bedrock_statements(stack: cdk.Stack, settings: LabSettings) -> list[iam.PolicyStatement]:
    """bedrock:InvokeModel (what Converse needs) on the inference profile and, through it only, its models."""
    fm = settings.foundation_model_id
    if not settings.is_inference_profile:
        return [iam.PolicyStatement(
            actions=["bedrock:InvokeModel"],
            resources=[f"arn:{stack.partition}:bedrock:{settings.bedrock_region}::foundation-model/{fm}"])]
    profile_arn = (f"arn:{stack.partition}:bedrock:{settings.bedrock_region}:{stack.account}:"
                   f"inference-profile/{settings.bedrock_model_id}")
    return [
        iam.PolicyStatement(actions=["bedrock:InvokeModel"], resources=[profile_arn]),
        # A cross-region profile routes to the model in any of its regions: allowed only through the profile.
        iam.PolicyStatement(
            actions=["bedrock:InvokeModel"],
            resources=[f"arn:{stack.partition}:bedrock:*::foundation-model/{fm}"],
            conditions={"StringEquals": {"bedrock:InferenceProfileArn": profile_arn}},
        ),
    ]
