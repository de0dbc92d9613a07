"""One contract suite, two stores: SqliteStore (a file) and DynamoStore (DynamoDB through moto)."""

import sqlite3
import threading

import boto3
import pytest
from moto import mock_aws

from codec_lab.contracts import AuditRecord, ExperimentPlan, VideoRecord
from codec_lab.planning.samples import failed_result, sample_profile, sample_result, sample_video
from codec_lab.store import SqliteStore, StoreConflictError, StoreError
from codec_lab.store.dynamo import DynamoStore, table_spec


@pytest.fixture(params=["sqlite", "dynamo"])
def store(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "lab.sqlite")
        yield s
        s.close()
        return
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**table_spec("codec-lab-test"))
        yield DynamoStore("codec-lab-test", client)


def plan(video_id="v1", plan_id="r01-00-a", round_=1, crf=40, preset=8, **kw):
    return ExperimentPlan(strategy="av1", parameters={"crf": crf, "preset": preset}, rationale="anchor sweep",
                          plan_id=plan_id, video_id=video_id, round=round_, planner="local:optuna-tpe", **kw)


def video(video_id="v1", scene="moderate"):
    return VideoRecord(video_id=video_id, source_uri=f"file:///clips/{video_id}.y4m", info=sample_video(),
                       profile=sample_profile(video_id, scene))


def test_video_record_put_get_status(store):
    assert store.get_video("v1") is None
    store.put_video(video())
    assert store.get_video("v1") == video().model_copy(update={"created_at": store.get_video("v1").created_at,
                                                                "updated_at": store.get_video("v1").updated_at})
    updated = store.set_video_status("v1", "running", note="round 1")
    assert (updated.status, updated.note) == ("running", "round 1")
    assert store.get_video("v1").status == "running"
    assert [v.video_id for v in store.list_videos()] == ["v1"]
    with pytest.raises(StoreError, match="no video 'nope'"):
        store.set_video_status("nope", "done")


def test_plan_write_is_idempotent_and_conflicts_are_refused(store):
    store.put_video(video())
    p = plan()
    assert store.put_plan(p) is True
    assert store.put_plan(p) is False
    assert store.put_plan(p.model_copy(update={"rationale": "same experiment, retried"})) is False
    assert len(store.list_experiments("v1")) == 1
    with pytest.raises(StoreConflictError, match="different experiment"):
        store.put_plan(plan(crf=50))


def test_crash_between_plan_and_result_loses_nothing(store):
    store.put_video(video())
    store.put_plans([plan(plan_id="a"), plan(plan_id="b", crf=45)])
    store.put_result(sample_result(plan(plan_id="a"), 300, 37.0))
    # ... the runner of "b" dies here; a fresh store handle sees it as unfinished
    records = {r.plan.plan_id: r for r in store.list_experiments("v1")}
    assert records["a"].status == "succeeded" and records["b"].status == "planned"
    assert [r.plan.plan_id for r in store.unfinished("v1")] == ["b"]
    assert records["b"].plan == plan(plan_id="b", crf=45).model_copy(update={"created_at": records["b"].plan.created_at})


def test_result_is_written_once_and_never_overwritten(store):
    store.put_video(video())
    p = plan()
    store.put_plan(p)
    first = sample_result(p, 300, 37.0)
    assert store.put_result(first) is True
    assert store.put_result(first) is False  # a retried write
    assert store.put_result(failed_result(p, "late timeout")) is False  # a finished result stays
    record = store.get_experiment("v1", p.plan_id)
    assert record.result == first and record.status == "succeeded"
    assert record.score is not None and record.score > 0
    assert record.result.metrics.quality.psnr_yuv == 37.0  # floats survive (Decimal on DynamoDB)


def test_result_without_plan_is_refused(store):
    with pytest.raises(StoreError, match="put_plan must come before put_result"):
        store.put_result(sample_result(plan(plan_id="ghost"), 300, 37.0))


def test_failed_results_are_kept_with_their_error(store):
    store.put_video(video())
    p = plan()
    store.put_plan(p)
    store.put_result(failed_result(p, "svt-av1: invalid preset"))
    record = store.get_experiment("v1", p.plan_id)
    assert record.status == "failed" and record.result.error == "svt-av1: invalid preset"
    assert record.score is None


def test_best_by_scene_class_ranks_succeeded_results(store):
    for vid, scene in [("v1", "moderate"), ("v2", "moderate"), ("v3", "static")]:
        store.put_video(video(vid, scene))
    rows = [("v1", "a", 400, 37.0), ("v1", "b", 200, 36.0), ("v2", "c", 100, 35.5), ("v2", "d", 80, 33.0), ("v3", "e", 50, 40.0)]
    for vid, pid, kbps, psnr in rows:
        p = plan(vid, pid, crf=30 + len(pid) + kbps % 7)
        store.put_plan(p)
        store.put_result(sample_result(p, kbps, psnr))
    store.put_plan(plan("v2", "f", crf=60))
    store.put_result(failed_result(plan("v2", "f", crf=60), "boom"))
    best = store.best_by_scene_class("moderate", limit=3)
    assert [r.plan.plan_id for r in best] == ["c", "b", "a"]  # 100 kbps meeting targets beats 200 and 400
    assert all(r.scene_class == "moderate" for r in best)
    assert [r.score for r in best] == sorted((r.score for r in best), reverse=True)
    assert [r.plan.plan_id for r in store.best_by_scene_class("static")] == ["e"]
    assert store.best_by_scene_class("screen") == []


def test_history_for_gives_this_video_then_similar_scenes(store):
    for vid in ("v1", "v2"):
        store.put_video(video(vid, "moderate"))
    store.put_video(video("v3", "high_motion"))
    for vid, pid in [("v1", "a"), ("v2", "b"), ("v3", "c")]:
        store.put_plan(plan(vid, pid))
        store.put_result(sample_result(plan(vid, pid), 300, 36.0))
    store.put_plan(plan("v1", "z", crf=55))
    history = store.history_for("v1")
    assert [(r.video_id, r.plan.plan_id) for r in history] == [("v1", "a"), ("v1", "z"), ("v2", "b")]


def test_audit_trail_is_kept_in_order_and_idempotent(store):
    recs = [AuditRecord(audit_id=f"a{i}", video_id="v1", round=1, attempt=i, planner="bedrock:m",
                        request={"messages": [{"text": "<data>"}]}, response={"stopReason": "tool_use", "x": 0.5},
                        created_at=f"2026-01-01T00:00:0{i}.000Z") for i in (1, 2)]
    assert store.put_audit(recs[1]) is True
    assert store.put_audit(recs[0]) is True
    assert store.put_audit(recs[0]) is False
    assert store.list_audit("v1") == recs
    assert store.list_audit("v2") == []


def test_sqlite_reader_sees_writes_while_a_writer_holds_the_file(tmp_path):
    path = tmp_path / "lab.sqlite"
    writer = SqliteStore(path)
    writer.put_video(video())
    reader = SqliteStore(path, create=False)
    errors = []

    def read_loop():
        try:
            for _ in range(50):
                reader.list_experiments("v1")
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    t = threading.Thread(target=read_loop)
    t.start()
    writer.put_plans([plan(plan_id=f"p{i}", crf=20 + i) for i in range(20)])
    t.join()
    assert errors == []
    assert len(reader.list_experiments("v1")) == 20
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_refuses_missing_newer_or_foreign_files(tmp_path):
    with pytest.raises(StoreError, match="no experiment store at"):
        SqliteStore(tmp_path / "missing.sqlite", create=False)
    newer = tmp_path / "newer.sqlite"
    sqlite3.connect(newer).execute("PRAGMA user_version=99")
    with pytest.raises(StoreError, match="newer than this codec-lab"):
        SqliteStore(newer)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="not a readable SQLite"):
        SqliteStore(junk)
