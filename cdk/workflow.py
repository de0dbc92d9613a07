"""`LabWorkflow`: the state machine, step for step the local runner's (`codec_lab.steps.PIPELINE_STEPS`).

    Analyze (SageMaker processing, createProcessingJob.sync, hand-written)
      -> Plan (λ) -> RunExperiments (Map: TrainAndEvaluate = SageMaker training .sync -> Record λ)
      -> Decide (λ) -> another round? -> Plan | Report (λ) -> Notify (SNS)

Every Task has a timeout; service errors are retried; every step's failure is caught, recorded in
the store by the Record function and the run carries on (Plan/Decide failures go to Report, a
failed experiment is recorded and the Map goes on; only a failed Analyze or Report ends the run,
after notifying). Payloads are the small documents of `codec_lab.aws.payloads`, URIs only.
"""

from __future__ import annotations

import math
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from cdk import grants
from cdk.functions import LabFunctions, retention
from cdk.storage import LabStorage
from codec_lab import steps
from codec_lab.aws.s3uri import RUNS, TMP, UPLOADS
from codec_lab.aws.settings import LabSettings

PROCESSING_EVENTS_RULE = "StepFunctionsGetEventsForSageMakerProcessingJobsRule"
SAGEMAKER_SERVICE_ERRORS = ["SageMaker.AmazonSageMakerException", "ThrottlingException"]
LAMBDA_ERRORS_TO_RETRY = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                          "Lambda.TooManyRequestsException"]
CHECKPOINT_DIR = "/opt/ml/checkpoints"


class TrainingJob(tasks.SageMakerCreateTrainingJob):
    """`SageMakerCreateTrainingJob` (RUN_JOB) plus managed spot, which the CDK construct lacks:
    EnableManagedSpotTraining, StoppingCondition.MaxWaitTimeInSeconds and CheckpointConfig."""

    def __init__(self, scope: Construct, id: str, *, spot_max_wait_s: int | None, checkpoint_path: str, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        self._spot_max_wait_s = spot_max_wait_s
        self._checkpoint_path = checkpoint_path

    def to_state_json(self, *args: Any) -> Any:
        state = super().to_state_json(*args)
        if self._spot_max_wait_s:
            params = state["Parameters"]
            params["EnableManagedSpotTraining"] = True
            params["StoppingCondition"]["MaxWaitTimeInSeconds"] = self._spot_max_wait_s
            params["CheckpointConfig"] = {"S3Uri.$": self._checkpoint_path, "LocalPath": CHECKPOINT_DIR}
        return state


class LabWorkflow(Construct):
    def __init__(self, scope: Construct, id: str, *, settings: LabSettings, storage: LabStorage,
                 functions: LabFunctions, topic: sns.ITopic, image: ecr_assets.DockerImageAsset) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)
        bucket = storage.bucket
        fns = functions.functions

        # -- the role the SageMaker jobs run as --------------------------------------------------
        self.job_role = iam.Role(self, "JobRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                                 description="codec-lab SageMaker processing and training jobs")
        grants.s3_read(self.job_role, bucket, [UPLOADS, RUNS, TMP])
        grants.s3_write(self.job_role, bucket, [RUNS, TMP])
        image.repository.grant_pull(self.job_role)
        self.job_role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[stack.format_arn(service="logs", resource="log-group", resource_name="/aws/sagemaker/*",
                                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)]))
        self.job_role.add_to_policy(iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"], resources=["*"],
            conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}))

        # -- the steps ------------------------------------------------------------------------------
        done = sfn.Succeed(self, "Done")
        run_failed = sfn.Fail(self, "RunFailed", cause="a step the run cannot go on without failed (see the store)",
                              error="CodecLab.RunFailed")

        def lambda_task(name: str, fn_name: str, *, result_path: str, payload: sfn.TaskInput | None = None,
                        state_name: str | None = None) -> tasks.LambdaInvoke:
            fn = fns[fn_name]
            task = tasks.LambdaInvoke(
                self, name, state_name=state_name, lambda_function=fn,
                payload=payload,  # None: the state input itself
                payload_response_only=True, retry_on_service_exceptions=False,
                result_path=result_path,
                task_timeout=sfn.Timeout.duration(fn.timeout.plus(cdk.Duration.seconds(30))) if fn.timeout else None,
            )
            task.add_retry(errors=LAMBDA_ERRORS_TO_RETRY, interval=cdk.Duration.seconds(2), max_attempts=6,
                           backoff_rate=2, jitter_strategy=sfn.JitterType.FULL)
            return task

        def record_failure(step: str) -> tasks.LambdaInvoke:
            """Record a step's failure in the store (the Record function), keeping the state as it was."""
            return lambda_task(
                f"RecordFailure{step}", "Record", result_path=sfn.JsonPath.DISCARD,
                payload=sfn.TaskInput.from_object({
                    "failed_step": step,
                    "video_id": sfn.JsonPath.string_at("$.video_id"),
                    "run_id": sfn.JsonPath.string_at("$.run_id"),
                    "error": sfn.JsonPath.object_at("$.error"),
                }))

        def notify(name: str, message: sfn.TaskInput, subject: str) -> tasks.SnsPublish:
            return tasks.SnsPublish(self, name, topic=topic, message=message, subject=subject,
                                    result_path=sfn.JsonPath.DISCARD,
                                    task_timeout=sfn.Timeout.duration(cdk.Duration.seconds(60)))

        analyze = self._analyze_state(settings, image)
        plan = lambda_task(steps.PLAN, "Plan", result_path="$.plan")
        decide = lambda_task(steps.DECIDE, "Decide", result_path="$.decision")
        report = lambda_task(steps.REPORT, "Report", result_path="$.report")
        notify_done = notify("Notify", sfn.TaskInput.from_json_path_at("$.report"), "codec-lab: run finished")

        # Map over the round's plans: one training job each, then Record (success or failure alike).
        record = lambda_task(steps.RECORD, "Record", result_path="$.recorded")
        record_lost = sfn.Pass(self, "RecordLost", comment="the Record function failed after its retries; "
                               "its error is in the function's logs and alarm")
        record.add_catch(record_lost, errors=["States.ALL"], result_path="$.record_error")
        train = self._training_state(settings, image)
        train.add_retry(errors=SAGEMAKER_SERVICE_ERRORS, interval=cdk.Duration.seconds(30), max_attempts=3,
                        backoff_rate=2, jitter_strategy=sfn.JitterType.FULL)
        train.add_catch(record, errors=["States.ALL"], result_path="$.error")
        run_experiments = sfn.Map(self, steps.RUN_EXPERIMENTS, items_path="$.plan.experiments",
                                  max_concurrency=settings.max_concurrent_jobs, result_path=sfn.JsonPath.DISCARD)
        run_experiments.item_processor(train.next(record))

        another_round = (sfn.Choice(self, "AnotherRound")
                         .when(sfn.Condition.boolean_equals("$.decision.continue", True), plan)
                         .otherwise(report))

        # Catches: record the failure, then carry on where carrying on makes sense.
        failure_message = sfn.TaskInput.from_object({
            "video_id": sfn.JsonPath.string_at("$.video_id"), "status": "failed",
            "error": sfn.JsonPath.object_at("$.error")})
        analyze.add_catch(record_failure(steps.ANALYZE).next(notify("NotifyAnalyzeFailed", failure_message,
                          "codec-lab: analysis failed")).next(run_failed), errors=["States.ALL"], result_path="$.error")
        plan.add_catch(record_failure(steps.PLAN).next(report), errors=["States.ALL"], result_path="$.error")
        run_experiments.add_catch(record_failure(steps.RUN_EXPERIMENTS).next(decide), errors=["States.ALL"],
                                  result_path="$.error")
        decide.add_catch(record_failure(steps.DECIDE).next(report), errors=["States.ALL"], result_path="$.error")
        report.add_catch(record_failure(steps.REPORT).next(notify("NotifyReportFailed", failure_message,
                         "codec-lab: report failed")).next(run_failed), errors=["States.ALL"], result_path="$.error")

        definition = (analyze.next(plan).next(run_experiments).next(decide).next(another_round))
        report.next(notify_done).next(done)

        self.log_group = logs.LogGroup(self, "StateMachineLogs",
                                       log_group_name=f"/aws/vendedlogs/states/{stack.stack_name}-pipeline",
                                       retention=retention(settings),
                                       removal_policy=cdk.RemovalPolicy.DESTROY)
        self.state_machine = sfn.StateMachine(
            self, "Pipeline",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=cdk.Duration.seconds(self._run_timeout_s(settings)),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment="codec-lab: one uploaded video, Analyze -> (Plan -> RunExperiments -> Decide)* -> Report",
        )
        self._grant_processing(stack)
        self.state_machine.grant_start_execution(fns["Ingest"])
        fns["Ingest"].add_environment("STATE_MACHINE_ARN", self.state_machine.state_machine_arn)

    # -- states written by hand -------------------------------------------------------------------
    def _analyze_state(self, settings: LabSettings, image: ecr_assets.DockerImageAsset) -> sfn.CustomState:
        """createProcessingJob.sync: the CDK has no construct for it (AWS docs: 'Manage SageMaker with Step Functions')."""
        state = sfn.CustomState(self, steps.ANALYZE, state_json={
            "Type": "Task",
            "Comment": "probe + validate the video, scene profile, classical anchor RD sweep (CPU)",
            "Resource": f"arn:{cdk.Aws.PARTITION}:states:::sagemaker:createProcessingJob.sync",
            "TimeoutSeconds": settings.processing_max_runtime_s + 900,
            "Parameters": {
                "ProcessingJobName.$": "$.analyze_job_name",
                "RoleArn": self.job_role.role_arn,
                "AppSpecification": {
                    "ImageUri": image.image_uri,
                    "ContainerEntrypoint": ["python", "-m", "gpu_jobs.analyze"],
                    "ContainerArguments.$": "States.Array('--video-name', $.video_name, '--video-id', $.video_id)",
                },
                "ProcessingResources": {"ClusterConfig": {
                    "InstanceCount": 1, "InstanceType": settings.processing_instance_type, "VolumeSizeInGB": 30}},
                "ProcessingInputs": [{
                    "InputName": "video",
                    "S3Input": {"S3Uri.$": "$.video_uri", "LocalPath": "/opt/ml/processing/input/video",
                                "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"},
                }],
                "ProcessingOutputConfig": {"Outputs": [{
                    "OutputName": "analysis",
                    "S3Output": {"S3Uri.$": "$.analysis_uri", "LocalPath": "/opt/ml/processing/output",
                                 "S3UploadMode": "EndOfJob"},
                }]},
                "StoppingCondition": {"MaxRuntimeInSeconds": settings.processing_max_runtime_s},
                "Tags": [{"Key": "codec-lab", "Value": "analyze"}],
            },
            "ResultSelector": {"job_name.$": "$.ProcessingJobName", "status.$": "$.ProcessingJobStatus"},
            "ResultPath": "$.analysis",
        })
        state.add_retry(errors=SAGEMAKER_SERVICE_ERRORS, interval=cdk.Duration.seconds(30), max_attempts=3,
                        backoff_rate=2, jitter_strategy=sfn.JitterType.FULL)
        return state

    def _training_state(self, settings: LabSettings, image: ecr_assets.DockerImageAsset) -> TrainingJob:
        spot_wait = settings.spot_max_wait_s if settings.use_spot else None
        timeout_s = (spot_wait or settings.training_max_runtime_s) + 1800
        family, size = settings.training_instance_type.split(".", 1)[1].split(".")
        return TrainingJob(
            self, "TrainAndEvaluate",
            spot_max_wait_s=spot_wait, checkpoint_path="$.checkpoint_uri",
            comment="overfit the plan's codec, write the bitstream, decode it standalone, measure (GPU)",
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            training_job_name=sfn.JsonPath.string_at("$.job_name"),
            role=self.job_role.without_policy_updates(),
            algorithm_specification=tasks.AlgorithmSpecification(
                training_image=tasks.DockerImage.from_registry(image.image_uri),
                training_input_mode=tasks.InputMode.FILE),
            hyperparameters={
                "plan_id": sfn.JsonPath.string_at("$.plan_id"),
                "video_name": sfn.JsonPath.string_at("$.video_name"),
                "video_id": sfn.JsonPath.string_at("$.video_id"),
            },
            input_data_config=[
                tasks.Channel(channel_name="plan", data_source=tasks.DataSource(s3_data_source=tasks.S3DataSource(
                    s3_location=tasks.S3Location.from_json_expression("$.plan_uri"), s3_data_type=tasks.S3DataType.S3_PREFIX))),
                tasks.Channel(channel_name="video", data_source=tasks.DataSource(s3_data_source=tasks.S3DataSource(
                    s3_location=tasks.S3Location.from_json_expression("$.video_uri"), s3_data_type=tasks.S3DataType.S3_PREFIX))),
            ],
            output_data_config=tasks.OutputDataConfig(s3_output_location=tasks.S3Location.from_json_expression("$.output_uri")),
            resource_config=tasks.ResourceConfig(instance_count=1, instance_type=ec2.InstanceType(f"{family}.{size}"),
                                                 volume_size=cdk.Size.gibibytes(settings.training_volume_gb)),
            stopping_condition=tasks.StoppingCondition(max_runtime=cdk.Duration.seconds(settings.training_max_runtime_s)),
            tags={"codec-lab": "experiment"},
            result_selector={"job_name": sfn.JsonPath.string_at("$.TrainingJobName"),
                             "model_artifacts": sfn.JsonPath.string_at("$.ModelArtifacts.S3ModelArtifacts")},
            result_path="$.training",
            task_timeout=sfn.Timeout.duration(cdk.Duration.seconds(timeout_s)),
        )

    def _grant_processing(self, stack: cdk.Stack) -> None:
        """The IAM the AWS docs list for createProcessingJob.sync."""
        jobs = stack.format_arn(service="sagemaker", resource="processing-job", resource_name="cl-*")
        self.state_machine.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob",
                     "sagemaker:AddTags", "sagemaker:ListTags"],
            resources=[jobs]))
        self.state_machine.add_to_role_policy(iam.PolicyStatement(
            actions=["iam:PassRole"], resources=[self.job_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))
        self.state_machine.add_to_role_policy(iam.PolicyStatement(
            actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            resources=[stack.format_arn(service="events", resource="rule", resource_name=PROCESSING_EVENTS_RULE)]))

    @staticmethod
    def _run_timeout_s(settings: LabSettings) -> int:
        waves = math.ceil(settings.experiments_per_round / settings.max_concurrent_jobs)
        job_s = (settings.spot_max_wait_s if settings.use_spot else settings.training_max_runtime_s) + 1800
        total = settings.processing_max_runtime_s + 900 + settings.rounds * (waves * job_s + 1800) + 3600
        return min(total, 365 * 24 * 3600)
