"""`LabNotifications` (the SNS topic, KMS-encrypted, TLS only, optional e-mail) and `LabMonitoring`
(a dashboard: executions, failures, job durations, experiments per video, best PSNR; alarms on
failed executions, Lambda errors and the ingest dead-letter queue)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from codec_lab.aws.settings import LabSettings

NAMESPACE = "CodecLab"


class LabNotifications(Construct):
    def __init__(self, scope: Construct, id: str, *, settings: LabSettings) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(self, "TopicKey", enable_key_rotation=True, description="codec-lab notifications topic",
                           removal_policy=cdk.RemovalPolicy.DESTROY)
        # CloudWatch alarms publish to an encrypted topic only if the key lets the service use it.
        self.key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}}))
        self.topic = sns.Topic(self, "Topic", display_name="codec-lab", master_key=self.key, enforce_ssl=True)
        if settings.notification_email:
            self.topic.add_subscription(subs.EmailSubscription(settings.notification_email))


class LabMonitoring(Construct):
    def __init__(self, scope: Construct, id: str, *, state_machine: sfn.StateMachine,
                 functions: dict[str, lambda_.Function], topic: sns.ITopic, dead_letters: sqs.IQueue) -> None:
        super().__init__(scope, id)
        action = cw_actions.SnsAction(topic)
        period = cdk.Duration.minutes(5)

        self.alarms: list[cw.Alarm] = []
        failed = cw.Alarm(self, "ExecutionsFailed", metric=state_machine.metric_failed(period=period), threshold=1,
                          evaluation_periods=1, comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                          treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                          alarm_description="a codec-lab execution failed (Analyze or Report could not go on)")
        timed_out = cw.Alarm(self, "ExecutionsTimedOut", metric=state_machine.metric_timed_out(period=period), threshold=1,
                             evaluation_periods=1, comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                             treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                             alarm_description="a codec-lab execution ran past its timeout")
        self.alarms += [failed, timed_out]
        for name, fn in functions.items():
            self.alarms.append(cw.Alarm(
                self, f"{name}Errors", metric=fn.metric_errors(period=period), threshold=1, evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=f"the {name} Lambda raised an error"))
        self.alarms.append(cw.Alarm(
            self, "IngestDeadLetters", metric=dead_letters.metric_approximate_number_of_messages_visible(period=period),
            threshold=1, evaluation_periods=1, comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description="an upload event could not be delivered to the ingest Lambda"))
        for alarm in self.alarms:
            alarm.add_alarm_action(action)

        def custom(name: str, stat: str, label: str, service: str) -> cw.Metric:
            return cw.Metric(namespace=NAMESPACE, metric_name=name, statistic=stat, label=label,
                             dimensions_map={"service": service}, period=period)

        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=cdk.Duration.days(7))
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Executions", width=12, left=[
                state_machine.metric_started(period=period, label="started"),
                state_machine.metric_succeeded(period=period, label="succeeded")]),
            cw.GraphWidget(title="Failures", width=12, left=[
                state_machine.metric_failed(period=period, label="executions failed"),
                state_machine.metric_timed_out(period=period, label="executions timed out"),
                custom("ExperimentsFailed", "Sum", "experiments failed", "codec-lab-record"),
                custom("UploadsRejected", "Sum", "uploads rejected", "codec-lab-ingest")]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Training job duration (s)", width=8, left=[
                custom("TrainingJobSeconds", "Average", "average", "codec-lab-record"),
                custom("TrainingJobSeconds", "Maximum", "max", "codec-lab-record")]),
            cw.GraphWidget(title="Experiments per video", width=8, left=[
                custom("ExperimentsPerVideo", "Average", "experiments per video", "codec-lab-report")]),
            cw.GraphWidget(title="Best PSNR-YUV (dB) per video", width=8, left=[
                custom("BestPsnrYuv", "Maximum", "best PSNR-YUV", "codec-lab-report"),
                custom("BestPsnrYuv", "Average", "mean of best", "codec-lab-report")]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Lambda errors", width=24, left=[fn.metric_errors(period=period, label=name)
                                                                  for name, fn in functions.items()]),
        )
