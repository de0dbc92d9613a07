"""DynamoDB specifics: Decimal numbers, the sparse GSI, conditional writes on the wire."""

from decimal import Decimal

import boto3
import pytest
from moto import mock_aws

from codec_lab.contracts import ExperimentPlan, VideoRecord
from codec_lab.planning.samples import failed_result, sample_profile, sample_result
from codec_lab.store.dynamo import DynamoStore, from_dynamo, table_spec, to_dynamo


@pytest.fixture
def dynamo(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**table_spec("t"))
        yield client


def _plan(pid="p1", lmbda=0.0012):
    return ExperimentPlan(strategy="semantic_latent", parameters={"preset": "fast", "lmbda": lmbda, "iterations": 1000},
                          rationale="r", plan_id=pid, video_id="v1", round=1, planner="local")


def test_numbers_round_trip_exactly():
    data = {"a": 0.1, "b": 1.0, "c": 3, "d": [1e-4, True, None, "x"], "e": {"f": 35.123456789}}
    stored = to_dynamo(data)
    assert stored["a"] == Decimal("0.1") and isinstance(stored["c"], int) and stored["d"][1] is True
    back = from_dynamo(stored)
    assert back == data and type(back["b"]) is float and type(back["c"]) is int


def test_items_hold_decimals_and_the_index_is_sparse(dynamo):
    store = DynamoStore("t", dynamo)
    store.put_video(VideoRecord(video_id="v1", source_uri="s3://b/uploads/a.mp4", profile=sample_profile("v1", "static")))
    store.put_plan(_plan("p1"))
    store.put_plan(_plan("p2", lmbda=0.01))
    store.put_result(sample_result(_plan("p1"), 250.5, 38.25))
    store.put_result(failed_result(_plan("p2", lmbda=0.01), "nan loss"))
    raw = dynamo.get_item(TableName="t", Key={"video_id": {"S": "v1"}, "item_id": {"S": "exp#p1"}})["Item"]
    assert raw["plan"]["M"]["parameters"]["M"]["lmbda"] == {"N": "0.0012"}
    assert raw["scene_class"] == {"S": "static"} and "score" in raw
    failed = dynamo.get_item(TableName="t", Key={"video_id": {"S": "v1"}, "item_id": {"S": "exp#p2"}})["Item"]
    assert "score" not in failed  # not in the GSI
    indexed = dynamo.scan(TableName="t", IndexName="by_scene_class")["Items"]
    assert [i["item_id"]["S"] for i in indexed] == ["exp#p1"]
    assert store.get_experiment("v1", "p1").plan.parameters["lmbda"] == 0.0012


def test_result_write_is_conditional_on_the_wire(dynamo):
    store = DynamoStore("t", dynamo)
    store.put_plan(_plan())
    seen = []
    dynamo.meta.events.register("provide-client-params.dynamodb.UpdateItem", lambda params, **_: seen.append(params))
    assert store.put_result(sample_result(_plan(), 100, 36.0)) is True
    assert store.put_result(sample_result(_plan(), 999, 20.0)) is False
    assert "attribute_not_exists(#r)" in seen[0]["ConditionExpression"]
    assert store.get_experiment("v1", "p1").result.metrics.kbps == 100


def test_accepts_a_resource(dynamo):
    store = DynamoStore("t", resource=boto3.resource("dynamodb", region_name="us-east-1"))
    assert store.put_plan(_plan()) is True
    assert store.list_experiments("v1")[0].plan.plan_id == "p1"
