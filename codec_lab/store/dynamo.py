"""`DynamoStore`: the AWS store, one DynamoDB table.

Layout (single table, on-demand):

    video_id (S, partition key) | item_id (S, sort key)
      "video"                          the VideoRecord               attribute record
      "exp#<plan id>"                  one experiment                attributes plan, result?, status, round,
                                                                     scene_class?, score? (score only once succeeded)
      "audit#<created_at>#<audit id>"  one planner exchange          attribute record
    GSI "by_scene_class": scene_class (S) hash, score (N) range, projection ALL; sparse: only
    succeeded experiments of a profiled video carry both keys ("best results by scene class").

Writes are conditional: a plan is put only if its item does not exist; a result is set only
if the plan exists and has no result yet, so a retried write never duplicates or overwrites
a finished result. Numbers go in as Decimal (DynamoDB has no float) and come back as int/float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from codec_lab.contracts import (
    AuditRecord,
    ExperimentPlan,
    ExperimentRecord,
    ExperimentResult,
    SceneClass,
    Targets,
    VideoRecord,
)
from codec_lab.store.protocol import StoreBase, StoreError, conflict, same_plan

PARTITION_KEY = "video_id"
SORT_KEY = "item_id"
SCENE_INDEX = "by_scene_class"
VIDEO_ITEM = "video"
EXP_PREFIX = "exp#"
AUDIT_PREFIX = "audit#"


def table_spec(table_name: str) -> dict[str, Any]:
    """`create_table` kwargs for the layout above (tests; the CDK stack mirrors it)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}, {"AttributeName": SORT_KEY, "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": SORT_KEY, "AttributeType": "S"},
            {"AttributeName": "scene_class", "AttributeType": "S"},
            {"AttributeName": "score", "AttributeType": "N"},
        ],
        "GlobalSecondaryIndexes": [{
            "IndexName": SCENE_INDEX,
            "KeySchema": [{"AttributeName": "scene_class", "KeyType": "HASH"}, {"AttributeName": "score", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
    }


def to_dynamo(value: Any) -> Any:
    """JSON-mode data with every float as Decimal (exact decimal text of the float)."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dynamo(v) for v in value]
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def from_dynamo(value: Any) -> Any:
    """Inverse of `to_dynamo`: Decimals with a fractional exponent back to float, others to int."""
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent >= 0 else float(value)  # type: ignore[operator]
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


class DynamoStore(StoreBase):
    def __init__(self, table_name: str, client: Any | None = None, *, resource: Any | None = None,
                 targets: Targets | None = None) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        if client is None:
            import boto3

            if resource is not None:  # its own client speaks Python types; we want a plain one, same place
                meta = resource.meta.client.meta
                client = boto3.client("dynamodb", region_name=meta.region_name, endpoint_url=meta.endpoint_url)
            else:
                client = boto3.client("dynamodb")
        self.client, self.table = client, table_name
        self.default_targets = targets or Targets()
        self._ser, self._de = TypeSerializer(), TypeDeserializer()

    # -- plumbing ---------------------------------------------------------------------
    def _item(self, data: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(to_dynamo(v)) for k, v in data.items()}

    def _plain(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: from_dynamo(self._de.deserialize(v)) for k, v in item.items()}

    def _key(self, video_id: str, item_id: str) -> dict[str, Any]:
        return {PARTITION_KEY: {"S": video_id}, SORT_KEY: {"S": item_id}}

    def _get(self, video_id: str, item_id: str) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.table, Key=self._key(video_id, item_id), ConsistentRead=True).get("Item")
        return self._plain(item) if item else None

    def _query(self, max_items: int | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        items, start = [], None
        while True:
            page = self.client.query(TableName=self.table, **kwargs, **({"ExclusiveStartKey": start} if start else {}))
            items += [self._plain(i) for i in page.get("Items", [])]
            start = page.get("LastEvaluatedKey")
            if not start or (max_items is not None and len(items) >= max_items):
                return items

    def _prefix(self, video_id: str, prefix: str) -> list[dict[str, Any]]:
        return self._query(
            KeyConditionExpression="#pk = :v AND begins_with(#sk, :p)",
            ExpressionAttributeNames={"#pk": PARTITION_KEY, "#sk": SORT_KEY},
            ExpressionAttributeValues={":v": {"S": video_id}, ":p": {"S": prefix}},
            ConsistentRead=True,
        )

    @staticmethod
    def _conditional_failed(exc: Exception) -> bool:
        return getattr(exc, "response", {}).get("Error", {}).get("Code") == "ConditionalCheckFailedException"

    def _load(self, model: type, data: Any, what: str):  # type: ignore[no-untyped-def]
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise StoreError(f"table {self.table}: stored {what} does not match its contract: {exc.errors()[0]}") from exc

    def _record(self, item: dict[str, Any]) -> ExperimentRecord:
        return ExperimentRecord(
            video_id=item[PARTITION_KEY],
            plan=self._load(ExperimentPlan, item["plan"], "plan"),
            result=self._load(ExperimentResult, item["result"], "result") if item.get("result") else None,
            scene_class=item.get("scene_class"),
            score=float(item["score"]) if item.get("score") is not None else None,
        )

    # -- videos -----------------------------------------------------------------------
    def put_video(self, record: VideoRecord) -> None:
        self.client.put_item(TableName=self.table, Item=self._item({
            PARTITION_KEY: record.video_id, SORT_KEY: VIDEO_ITEM, "kind": "video", "status": record.status,
            "updated_at": record.updated_at, "record": record.model_dump(mode="json"),
        }))

    def get_video(self, video_id: str) -> VideoRecord | None:
        item = self._get(video_id, VIDEO_ITEM)
        return self._load(VideoRecord, item["record"], f"video {video_id}") if item else None

    def list_videos(self) -> list[VideoRecord]:
        """A filtered Scan: fine for a lab's table, not for millions of videos."""
        items, start = [], None
        while True:
            page = self.client.scan(
                TableName=self.table, FilterExpression="#sk = :v",
                ExpressionAttributeNames={"#sk": SORT_KEY}, ExpressionAttributeValues={":v": {"S": VIDEO_ITEM}},
                **({"ExclusiveStartKey": start} if start else {}))
            items += [self._plain(i) for i in page.get("Items", [])]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        videos = [self._load(VideoRecord, i["record"], "video") for i in items]
        return sorted(videos, key=lambda v: (v.updated_at, v.video_id), reverse=True)

    # -- experiments ------------------------------------------------------------------
    def put_plan(self, plan: ExperimentPlan) -> bool:
        scene, _ = self._context(plan.video_id)
        item = {PARTITION_KEY: plan.video_id, SORT_KEY: EXP_PREFIX + plan.plan_id, "kind": "experiment",
                "status": "planned", "round": plan.round, "plan": plan.model_dump(mode="json"),
                "created_at": plan.created_at}
        if scene is not None:
            item["scene_class"] = scene
        try:
            self.client.put_item(TableName=self.table, Item=self._item(item),
                                 ConditionExpression="attribute_not_exists(#sk)", ExpressionAttributeNames={"#sk": SORT_KEY})
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            existing = self.get_experiment(plan.video_id, plan.plan_id)
            if existing is not None and not same_plan(existing.plan, plan):
                raise conflict(existing.plan, plan) from None
            return False

    def put_result(self, result: ExperimentResult) -> bool:
        scene, targets = self._context(result.video_id)
        score = self._score(result, targets)
        names = {"#sk": SORT_KEY, "#r": "result", "#s": "status"}
        values: dict[str, Any] = {":r": result.model_dump(mode="json"), ":s": result.status}
        sets = ["#r = :r", "#s = :s"]
        if scene is not None:
            names["#c"], values[":c"] = "scene_class", scene
            sets.append("#c = :c")
        if score is not None:  # the GSI is sparse: only succeeded results of profiled videos carry both keys
            names["#score"], values[":score"] = "score", score
            sets.append("#score = :score")
        try:
            self.client.update_item(
                TableName=self.table, Key=self._key(result.video_id, EXP_PREFIX + result.plan_id),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_exists(#sk) AND attribute_not_exists(#r)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={k: self._ser.serialize(to_dynamo(v)) for k, v in values.items()},
            )
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            if self._get(result.video_id, EXP_PREFIX + result.plan_id) is None:
                raise StoreError(f"no plan {result.plan_id!r} for video {result.video_id!r}; "
                                 "put_plan must come before put_result") from None
            return False

    def get_experiment(self, video_id: str, plan_id: str) -> ExperimentRecord | None:
        item = self._get(video_id, EXP_PREFIX + plan_id)
        return self._record(item) if item else None

    def list_experiments(self, video_id: str) -> list[ExperimentRecord]:
        records = [self._record(i) for i in self._prefix(video_id, EXP_PREFIX)]
        return sorted(records, key=lambda r: (r.plan.round, r.plan.plan_id))

    def best_by_scene_class(self, scene_class: SceneClass, limit: int = 10) -> list[ExperimentRecord]:
        items = self._query(
            max_items=int(limit), IndexName=SCENE_INDEX, KeyConditionExpression="#c = :c", ScanIndexForward=False, Limit=max(1, int(limit)),
            ExpressionAttributeNames={"#c": "scene_class"}, ExpressionAttributeValues={":c": {"S": scene_class}},
        ) if limit > 0 else []
        records = [self._record(i) for i in items]
        records.sort(key=lambda r: (-(r.score or 0.0), r.video_id, r.plan.plan_id))
        return records[:limit]

    # -- audit ------------------------------------------------------------------------
    def put_audit(self, record: AuditRecord) -> bool:
        item = {PARTITION_KEY: record.video_id, SORT_KEY: f"{AUDIT_PREFIX}{record.created_at}#{record.audit_id}",
                "kind": "audit", "record": record.model_dump(mode="json")}
        try:
            self.client.put_item(TableName=self.table, Item=self._item(item),
                                 ConditionExpression="attribute_not_exists(#sk)", ExpressionAttributeNames={"#sk": SORT_KEY})
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            return False

    def list_audit(self, video_id: str) -> list[AuditRecord]:
        return [self._load(AuditRecord, i["record"], "audit record") for i in self._prefix(video_id, AUDIT_PREFIX)]
