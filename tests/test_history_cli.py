"""`codec-lab history`: a table or JSON of what the store holds; clear errors otherwise."""

import argparse
import json

import pytest

from codec_lab.commands import COMMANDS, history
from codec_lab.contracts import AuditRecord, ExperimentPlan, VideoRecord
from codec_lab.errors import CodecLabError
from codec_lab.planning.samples import failed_result, sample_profile, sample_result, sample_video
from codec_lab.store import SqliteStore


def cli(*argv):
    parser = argparse.ArgumentParser(prog="codec-lab")
    history.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["history", *argv])
    return args.func(args)


def plan(pid, crf, round_=1):
    return ExperimentPlan(strategy="av1", parameters={"crf": crf, "preset": 8}, rationale="r", plan_id=pid,
                          video_id="foreman-abc123", round=round_, planner="local:optuna-tpe")


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "lab.sqlite"
    with SqliteStore(path) as store:
        store.put_video(VideoRecord(video_id="foreman-abc123", source_uri="file:///c/foreman.y4m", status="running",
                                    info=sample_video(), profile=sample_profile("foreman-abc123", "moderate")))
        store.put_video(VideoRecord(video_id="bus-def456", source_uri="file:///c/bus.y4m"))
        store.put_plans([plan("r01-00-a", 40), plan("r01-01-b", 55), plan("r02-00-c", 44, 2)])
        store.put_result(sample_result(plan("r01-00-a", 40), 180.0, 36.4))
        store.put_result(failed_result(plan("r01-01-b", 55), "svt-av1 exited with code 1"))
        store.put_audit(AuditRecord(audit_id="a1", video_id="foreman-abc123", round=1, attempt=1, planner="bedrock:m",
                                    request={}, error="AccessDeniedException: no", uri="file:///runs/audit/a1.json"))
    return path


def test_is_registered_in_the_cli():
    assert "history" in COMMANDS


def test_lists_videos(store_path, capsys):
    assert cli("--store", str(store_path)) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["VIDEO", "STATUS", "SCENE", "EXPS"]
    row = next(line for line in out.splitlines() if line.startswith("foreman-abc123"))
    assert "running" in row and "moderate" in row and "crf=40 preset=8" in row and "180.0" in row
    assert "bus-def456" in out


def test_shows_one_videos_experiments_by_prefix(store_path, capsys, monkeypatch):
    monkeypatch.setenv("CODEC_LAB_STORE", str(store_path))
    assert cli("foreman", "--audit") == 0
    out = capsys.readouterr().out
    assert "video foreman-abc123: 3 experiment(s)" in out
    lines = {line.split()[1]: line for line in out.splitlines() if line[:1].isdigit() and len(line.split()) > 1 and line.split()[1].startswith("r0")}
    assert "succeeded" in lines["r01-00-a"] and "36.40" in lines["r01-00-a"] and "yes" in lines["r01-00-a"]
    assert "failed" in lines["r01-01-b"] and "svt-av1 exited with code 1" in lines["r01-01-b"]
    assert "planned" in lines["r02-00-c"] and "unfinished" in lines["r02-00-c"]
    assert "AccessDeniedException" in out and "file:///runs/audit/a1.json" in out


def test_json_output_uses_the_contracts(store_path, capsys):
    assert cli("foreman-abc123", "--store", str(store_path), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["plan"]["plan_id"] for e in data["experiments"]] == ["r01-00-a", "r01-01-b", "r02-00-c"]
    assert data["experiments"][0]["result"]["metrics"]["kbps"] == 180.0
    assert cli("--store", str(store_path), "--json") == 0
    videos = json.loads(capsys.readouterr().out)
    assert {v["video"]["video_id"]: v["unfinished"] for v in videos} == {"foreman-abc123": 1, "bus-def456": 0}


def test_user_errors_say_what_to_do(store_path, tmp_path):
    with pytest.raises(CodecLabError, match="no experiment store at .*pass --store PATH"):
        cli("--store", str(tmp_path / "nothing.sqlite"))
    assert not (tmp_path / "nothing.sqlite").exists()
    with pytest.raises(CodecLabError, match="no video 'carphone' in the store"):
        cli("carphone", "--store", str(store_path))


def test_empty_store(tmp_path, capsys):
    SqliteStore(tmp_path / "e.sqlite").close()
    assert cli("--store", str(tmp_path / "e.sqlite")) == 0
    assert "holds no videos yet" in capsys.readouterr().out
