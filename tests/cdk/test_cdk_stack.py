"""The synthesized template: every resource the issue names, the IAM that matters, the state machine."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from aws_cdk.assertions import Match

from codec_lab.steps import PIPELINE_STEPS
from codec_lab.store import dynamo as store_layout


def resources(synth, kind):
    return {k: v for k, v in synth.json["Resources"].items() if v["Type"] == kind}


def test_resource_counts(synth):
    counts = Counter(r["Type"] for r in synth.json["Resources"].values())
    assert counts["AWS::Lambda::Function"] == 5  # ingest, plan, record, decide, report: no custom-resource Lambda
    assert counts["AWS::S3::Bucket"] == 2
    assert counts["AWS::DynamoDB::Table"] == 2
    assert counts["AWS::StepFunctions::StateMachine"] == 1
    assert counts["AWS::Events::Rule"] == 1
    assert counts["AWS::SNS::Topic"] == 1
    assert counts["AWS::CloudWatch::Dashboard"] == 1
    assert counts["AWS::CloudWatch::Alarm"] == 8  # failed + timed-out executions, 5 Lambdas, the DLQ
    assert "Custom::S3BucketNotifications" not in counts


def test_bucket_is_locked_down(synth):
    synth.template.has_resource_properties("AWS::S3::Bucket", {
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "VersioningConfiguration": {"Status": "Enabled"},
        "LoggingConfiguration": {"DestinationBucketName": Match.any_value(), "LogFilePrefix": "videos/"},
        "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}},
        "LifecycleConfiguration": {"Rules": Match.array_with([
            Match.object_like({"Prefix": "tmp/", "ExpirationInDays": 7, "Status": "Enabled"}),
            Match.object_like({"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}),
        ])},
    })
    # TLS only, on both buckets
    policies = resources(synth, "AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in statements)


def test_upload_rule_sends_every_key_under_uploads_to_ingest(synth):
    # prefix only: mixed-case suffixes (clip.Mp4) reach the Lambda, which judges suffixes itself
    synth.template.has_resource_properties("AWS::Events::Rule", {
        "EventPattern": {"source": ["aws.s3"], "detail-type": ["Object Created"],
                         "detail": {"object": {"key": [{"prefix": "uploads/"}]}}},
        "Targets": [Match.object_like({"DeadLetterConfig": Match.any_value(), "RetryPolicy": Match.any_value()})],
    })


def test_tables_mirror_the_store_and_have_pitr(synth):
    synth.template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": store_layout.PARTITION_KEY, "KeyType": "HASH"},
                      {"AttributeName": store_layout.SORT_KEY, "KeyType": "RANGE"}],
        "BillingMode": "PAY_PER_REQUEST",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "GlobalSecondaryIndexes": [{
            "IndexName": store_layout.SCENE_INDEX,
            "KeySchema": [{"AttributeName": "scene_class", "KeyType": "HASH"}, {"AttributeName": "score", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}],
    })
    spec = store_layout.table_spec("t")
    table = next(t for t in resources(synth, "AWS::DynamoDB::Table").values() if "GlobalSecondaryIndexes" in t["Properties"])
    assert sorted(table["Properties"]["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == \
        sorted(spec["AttributeDefinitions"], key=lambda a: a["AttributeName"])
    synth.template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
    })


def test_lambdas_are_traced_layered_and_carry_no_docker_bundle(synth):
    fns = resources(synth, "AWS::Lambda::Function")
    for fn in fns.values():
        props = fn["Properties"]
        assert props["Runtime"] == "python3.13"
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert "LoggingConfig" in props
        layer = json.dumps(props["Layers"])
        assert "017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-x86_64:27" in layer
    handlers = sorted(f["Properties"]["Handler"] for f in fns.values())
    assert handlers == ["decide.handler", "ingest.handler", "plan.handler", "record.handler", "report.handler"]


def test_state_machine_runs_the_local_runners_steps_in_order(synth):
    definition = synth.definition
    seen: list[str] = []

    def walk(states: dict, start: str) -> None:
        order, todo = [], [start]
        while todo:
            name = todo.pop(0)
            if name in order:
                continue
            order.append(name)
            state = states[name]
            if state["Type"] == "Map":
                seen.append(name)
                walk(state["ItemProcessor"]["States"], state["ItemProcessor"]["StartAt"])
            elif name in PIPELINE_STEPS:
                seen.append(name)
            nexts = [state.get("Next")] + [c["Next"] for c in state.get("Choices", [])] + [state.get("Default")]
            todo += [n for n in nexts if n]

    walk(definition["States"], definition["StartAt"])
    assert [s for s in seen if s in PIPELINE_STEPS] == list(PIPELINE_STEPS)


def all_states(definition: dict) -> dict:
    out = {}
    for name, state in definition["States"].items():
        out[name] = state
        if state["Type"] == "Map":
            out.update(all_states(state["ItemProcessor"]))
    return out


def test_every_task_has_a_timeout_and_the_steps_retry_and_catch(synth):
    states = all_states(synth.definition)
    tasks = {n: s for n, s in states.items() if s["Type"] == "Task"}
    assert len(tasks) >= 10
    for name, state in tasks.items():
        assert state.get("TimeoutSeconds", 0) > 0, name
        if not name.startswith("Notify"):
            assert state.get("Retry"), name
    for step in ("Analyze", "Plan", "Decide", "Report", "TrainAndEvaluate", "Record"):
        assert states[step].get("Catch"), step
        assert states[step]["Catch"][0]["ErrorEquals"] == ["States.ALL"]
    assert states["RunExperiments"]["Catch"][0]["Next"] == "RecordFailureRunExperiments"
    # a failed experiment is recorded and the Map goes on; failures of the run's steps are recorded too
    assert states["TrainAndEvaluate"]["Catch"][0] == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Record"}
    assert states["Plan"]["Catch"][0]["Next"] == "RecordFailurePlan"
    assert states["RecordFailurePlan"]["Next"] == "Report"
    assert states["RecordFailureDecide"]["Next"] == "Report"
    assert states["AnotherRound"]["Choices"][0]["Next"] == "Plan"  # the Decide loop
    assert states["Report"]["Next"] == "Notify"


def test_sagemaker_states(synth):
    states = all_states(synth.definition)
    analyze = states["Analyze"]
    assert analyze["Resource"].endswith(":states:::sagemaker:createProcessingJob.sync")
    assert analyze["Parameters"]["ProcessingJobName.$"] == "$.analyze_job_name"
    assert analyze["Parameters"]["StoppingCondition"]["MaxRuntimeInSeconds"] == 3600
    train = states["TrainAndEvaluate"]
    assert train["Resource"].endswith(":states:::sagemaker:createTrainingJob.sync")
    params = train["Parameters"]
    assert params["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    assert params["StoppingCondition"] == {"MaxRuntimeInSeconds": 10800}
    assert "EnableManagedSpotTraining" not in params
    assert params["TrainingJobName.$"] == "$.job_name"
    assert {c["ChannelName"] for c in params["InputDataConfig"]} == {"plan", "video"}
    assert states["RunExperiments"]["ItemsPath"] == "$.plan.experiments"
    assert states["RunExperiments"]["MaxConcurrency"] == 4
    assert states["RunExperiments"]["ResultPath"] is None  # results live in the store, the payload stays small


def test_payloads_carry_uris_only(synth):
    text = json.dumps(synth.definition)
    for state in all_states(synth.definition).values():
        assert state.get("ResultPath", "$.x") is None or state.get("ResultPath", "$.x").startswith("$.")
    assert "Payload" not in text  # payload_response_only: the functions' small JSON documents, no envelopes


def test_spot_adds_max_wait_and_checkpoints(spot_synth):
    params = all_states(spot_synth.definition)["TrainAndEvaluate"]["Parameters"]
    assert params["EnableManagedSpotTraining"] is True
    assert params["StoppingCondition"] == {"MaxRuntimeInSeconds": 10800, "MaxWaitTimeInSeconds": 21600}
    assert params["CheckpointConfig"] == {"S3Uri.$": "$.checkpoint_uri", "LocalPath": "/opt/ml/checkpoints"}
    spot_synth.template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "lab@example.com"})


def test_logging_all_and_xray(synth):
    synth.template.has_resource_properties("AWS::StepFunctions::StateMachine", {
        "LoggingConfiguration": {"Level": "ALL", "IncludeExecutionData": True, "Destinations": Match.any_value()},
        "TracingConfiguration": {"Enabled": True},
        "StateMachineType": "STANDARD",
    })


def policy_statements(synth, role_prefix: str) -> list[dict]:
    out = []
    for logical, res in resources(synth, "AWS::IAM::Policy").items():
        roles = json.dumps(res["Properties"]["Roles"])
        if role_prefix in roles:
            out += res["Properties"]["PolicyDocument"]["Statement"]
    return out


def actions(statement: dict) -> list[str]:
    a = statement["Action"]
    return [a] if isinstance(a, str) else a


def test_no_wildcard_actions_anywhere(synth):
    for res in resources(synth, "AWS::IAM::Policy").values():
        for statement in res["Properties"]["PolicyDocument"]["Statement"]:
            for action in actions(statement):
                assert "*" not in action, (action, statement)


def test_pass_role_is_conditioned_to_sagemaker(synth):
    passes = [s for res in resources(synth, "AWS::IAM::Policy").values()
              for s in res["Properties"]["PolicyDocument"]["Statement"] if "iam:PassRole" in actions(s)]
    assert passes
    for statement in passes:
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
        assert "Fn::GetAtt" in json.dumps(statement["Resource"])  # the job role, not "*"


def test_processing_job_iam_as_the_docs_list(synth):
    statements = policy_statements(synth, "WorkflowPipelineRole")
    flat = json.dumps(statements)
    assert "StepFunctionsGetEventsForSageMakerProcessingJobsRule" in flat
    assert "StepFunctionsGetEventsForSageMakerTrainingJobsRule" in flat
    create = next(s for s in statements if "sagemaker:CreateProcessingJob" in actions(s))
    assert {"sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob"} <= set(actions(create))
    assert "processing-job/cl-*" in json.dumps(create["Resource"])


def test_bedrock_only_for_the_configured_profile(synth, spot_synth):
    statements = [s for s in policy_statements(synth, "FunctionsPlanRole") if "bedrock:InvokeModel" in actions(s)]
    assert len(statements) == 2
    profile, model = statements
    assert "inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0" in json.dumps(profile["Resource"])
    assert "foundation-model/anthropic.claude-sonnet-4-20250514-v1:0" in json.dumps(model["Resource"])
    assert "bedrock:InferenceProfileArn" in json.dumps(model["Condition"])
    # no other function may call Bedrock
    for role in ("IngestRole", "RecordRole", "DecideRole", "ReportRole", "WorkflowJobRole", "WorkflowPipelineRole"):
        assert "bedrock" not in json.dumps(policy_statements(synth, role))
    # a plain foundation model id: one statement, that model in that region
    (plain,) = [s for s in policy_statements(spot_synth, "FunctionsPlanRole") if "bedrock:InvokeModel" in actions(s)]
    assert "us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0" in json.dumps(plain["Resource"])


def test_ingest_may_start_only_the_pipeline(synth):
    statements = policy_statements(synth, "FunctionsIngestRole")
    start = [s for s in statements if "states:StartExecution" in actions(s)]
    assert len(start) == 1 and "Ref" in json.dumps(start[0]["Resource"])
    assert not any("s3:" in a for s in statements for a in actions(s))


def test_dashboard_and_alarms(synth):
    (dash,) = resources(synth, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dash["Properties"]["DashboardBody"])
    for metric in ("ExecutionsFailed", "TrainingJobSeconds", "ExperimentsPerVideo", "BestPsnrYuv", "ExecutionsStarted"):
        assert metric in body, metric
    for alarm in resources(synth, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"], alarm


def test_cdk_nag_has_no_unsuppressed_finding(synth, spot_synth):
    for s in (synth, spot_synth):
        errors = s.annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
        warnings = s.annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*"))
        assert not errors, [f"{e.id}: {str(e.entry.data)[:120]}" for e in errors]
        assert not warnings, [f"{w.id}: {str(w.entry.data)[:120]}" for w in warnings]


def test_every_suppression_has_a_reason(synth):
    suppressed = 0
    for res in synth.json["Resources"].values():
        for rule in res.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            suppressed += 1
            assert len(rule["reason"]) > 40, rule
    assert suppressed > 0


def test_image_asset_is_not_built_at_synth(synth):
    manifest = json.loads((__import__("pathlib").Path(synth.assembly.directory) / f"{synth.stack.stack_name}.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerFile"] == "gpu_jobs/Dockerfile"
    staged = __import__("pathlib").Path(synth.assembly.directory) / image["source"]["directory"]
    names = {p.name for p in staged.iterdir()}
    assert {"codec_lab", "gpu_jobs", "pyproject.toml"} <= names
    assert not {".venv", ".git", "tests", "cdk.out"} & names
    assert not list(staged.rglob("__pycache__"))


@pytest.mark.parametrize("bad,match", [
    ({"trainingInstanceType": "ml.m5.xlarge"}, "GPU"),
    ({"rounds": 0}, "rounds"),
    ({"notificationEmail": "not-an-email"}, "notificationEmail"),
    ({"useSpot": True, "spotMaxWaitSeconds": 60}, "spotMaxWaitSeconds"),
])
def test_bad_settings_fail_before_synthesis(bad, match):
    from codec_lab.aws.settings import LabSettings, SettingsError

    with pytest.raises(SettingsError, match=match):
        LabSettings.from_mapping(bad)
