"""The local runner: the whole lab on a tiny clip, a failing experiment, a crash and a resume, an empty planner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codec_lab.contracts import ExperimentPlan, Targets
from codec_lab.decide import meets
from codec_lab.executors import LocalExecutor
from codec_lab.pipeline import STEPS, LocalRunner, RunConfig
from codec_lab.planning.local import LocalPlanner
from codec_lab.planning.space import default_search_space
from codec_lab.steps import PIPELINE_STEPS
from codec_lab.store import SqliteStore
from codec_lab.video import write_clip
from tests.conftest import synthetic_clip


class ScriptedPlanner:
    """Returns the given rounds of av1 settings as plans; [] once the script runs out."""

    name = "scripted"
    last_report = None

    def __init__(self, rounds: list[list[int]]):
        self.rounds = rounds
        self.calls = 0

    def propose(self, video, profile, history, targets, budget, n):
        crfs = self.rounds[self.calls] if self.calls < len(self.rounds) else []
        self.calls += 1
        return [
            ExperimentPlan(plan_id=f"r{self.calls}-{i}-crf{crf}", video_id=profile.video_id, round=self.calls, planner=self.name,
                           strategy="av1", parameters={"crf": crf, "preset": 8}, rationale=f"scripted crf {crf}")
            for i, crf in enumerate(crfs)
        ]


def config(tmp_path: Path, **overrides) -> RunConfig:
    base = dict(frames=4, rounds=1, experiments_per_round=3, budget_seconds=60, out=tmp_path / "runs", anchors=("x264", "av1"),
                with_ms_ssim=False)
    return RunConfig(**{**base, **overrides})


@pytest.fixture
def clip_path(tmp_path) -> Path:
    return write_clip(synthetic_clip(frames=5, width=64, height=48), tmp_path / "pan.y4m")


def dedupe(names):
    return [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]


def test_step_names_are_the_state_machine_contract():
    assert STEPS == PIPELINE_STEPS == ("Analyze", "Plan", "RunExperiments", "Record", "Decide", "Report")


def test_end_to_end_with_the_local_planner(tmp_path, clip_path):
    store = SqliteStore(tmp_path / "lab.sqlite")
    planner = LocalPlanner(default_search_space().only(["av1"]), seed=0)
    summary = LocalRunner(config(tmp_path, rounds=2, experiments_per_round=2), store, planner).run(clip_path)

    assert dedupe(summary.steps_run)[:5] == list(STEPS[:5]) and summary.steps_run[-1] == "Report"
    records = store.list_experiments(summary.video_id)
    assert records and all(r.status == "succeeded" for r in records)
    for r in records:
        folder = summary.run_dir / "experiments" / r.plan.plan_id
        assert json.loads((folder / "result.json").read_text())["status"] == "succeeded"
        assert 0 < r.result.metrics.payload_bytes <= Path(r.result.artifacts["bitstream"]).stat().st_size
        assert (folder / "sample.png").exists()
    assert (summary.run_dir / "anchors" / "results.json").exists()
    planning = [json.loads(f.read_text()) for f in sorted((summary.run_dir / "planner").glob("call-*.json"))]
    assert planning and planning[0]["planner"] == planner.name and planning[0]["report"]["proposed"] >= 1
    page = summary.report.read_text()
    assert "Conclusion" in page and "data:image/png;base64," in page and records[0].plan.plan_id in page
    assert "http://" not in page and "https://" not in page  # opens with no network
    assert store.get_video(summary.video_id).status == "done"
    # the run stops in the round where a result first meets the targets, and not before
    met_rounds = [r.plan.round for r in records if meets(r.result.metrics, Targets())]
    if met_rounds:
        assert summary.decision.target_met and max(r.plan.round for r in records) == min(met_rounds)
    else:
        assert not summary.decision.target_met and "rounds done" in summary.decision.reason


def test_failing_experiment_then_crash_then_resume(tmp_path, clip_path, monkeypatch):
    store = SqliteStore(tmp_path / "lab.sqlite")
    real = LocalExecutor.run
    calls = []

    def crash_on_third(plan, *args, **kwargs):
        calls.append(plan.plan_id)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process is killed mid-round
        return real(plan, *args, **kwargs)

    monkeypatch.setattr(LocalExecutor, "run", staticmethod(crash_on_third))
    planner = ScriptedPlanner([[30, 99, 45]])  # crf 99 is out of SVT-AV1's range: that experiment fails
    cfg = config(tmp_path, targets=Targets(max_kbps=1.0))  # unreachable: the run never stops early
    with pytest.raises(KeyboardInterrupt):
        LocalRunner(cfg, store, planner).run(clip_path)
    video_id = store.list_videos()[0].video_id
    states = {r.plan.plan_id: r.status for r in store.list_experiments(video_id)}
    assert states == {"r1-0-crf30": "succeeded", "r1-1-crf99": "failed", "r1-2-crf45": "planned"}

    calls.clear()
    monkeypatch.setattr(LocalExecutor, "run", staticmethod(lambda plan, *a, **k: calls.append(plan.plan_id) or real(plan, *a, **k)))
    summary = LocalRunner(cfg, store, planner).run(clip_path)
    assert calls == ["r1-2-crf45"]  # finished experiments are kept, not redone
    assert planner.calls == 1  # the unfinished plan was resumed, not planned again
    records = {r.plan.plan_id: r for r in store.list_experiments(video_id)}
    assert records["r1-2-crf45"].status == "succeeded"
    assert "crf 99 is outside 1..63" in records["r1-1-crf99"].result.error
    assert "crf 99 is outside" in summary.report.read_text()


def test_a_planner_with_nothing_valid_still_reports(tmp_path, clip_path):
    store = SqliteStore(tmp_path / "lab.sqlite")
    summary = LocalRunner(config(tmp_path), store, ScriptedPlanner([])).run(clip_path)
    assert summary.decision.stop and "no valid experiment" in summary.decision.reason
    assert summary.experiments == 0 and summary.report.exists()
    assert summary.steps_run == ["Analyze", "Plan", "Decide", "Report"]


def test_run_command_quick_demo_json(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "codec_lab.cli", "run", "--demo", "--quick", "--json", "--out", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout)
    assert Path(summary["report"]).exists() and summary["experiments"] >= 1
    assert summary["steps"][0] == "Analyze" and summary["steps"][-1] == "Report"
    again = subprocess.run(
        [sys.executable, "-m", "codec_lab.cli", "run", "--demo", "--quick", "--json", "--out", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=600,
    )
    assert json.loads(again.stdout)["experiments"] == summary["experiments"]  # nothing redone, nothing lost


def test_sagemaker_backend_needs_its_settings(tmp_path, clip_path, monkeypatch):
    for key in ("CODEC_LAB_SM_BUCKET", "CODEC_LAB_SM_ROLE_ARN", "CODEC_LAB_SM_IMAGE_URI"):
        monkeypatch.delenv(key, raising=False)
    run = subprocess.run([sys.executable, "-m", "codec_lab.cli", "run", str(clip_path), "--backend", "sagemaker", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "CODEC_LAB_SM_BUCKET" in run.stderr and "Traceback" not in run.stderr



def test_a_killed_experiment_is_recorded_as_failed_not_rerun_forever(tmp_path, clip_path, monkeypatch):
    store = SqliteStore(tmp_path / "lab.sqlite")
    real = LocalExecutor.run

    def killed(plan, *args, **kwargs):
        raise SystemExit(137)  # stands for SIGKILL / the OOM killer: nothing after this line runs

    monkeypatch.setattr(LocalExecutor, "run", staticmethod(killed))
    cfg = config(tmp_path, targets=Targets(max_kbps=1.0))
    with pytest.raises(SystemExit):
        LocalRunner(cfg, store, ScriptedPlanner([[30]])).run(clip_path)
    monkeypatch.setattr(LocalExecutor, "run", staticmethod(real))
    summary = LocalRunner(cfg, store, ScriptedPlanner([[30]])).run(clip_path)
    (record,) = store.list_experiments(summary.video_id)
    assert record.status == "failed" and "process ended during this experiment" in record.result.error


def test_plans_already_in_the_store_are_not_run_again(tmp_path, clip_path):
    store = SqliteStore(tmp_path / "lab.sqlite")
    planner = ScriptedPlanner([[30], [30], [30]])  # the same plan id every round
    planner.propose_original = planner.propose

    def same_id(*args):
        plans = planner.propose_original(*args)
        return [p.model_copy(update={"plan_id": "fixed", "round": 1}) for p in plans]

    planner.propose = same_id
    summary = LocalRunner(config(tmp_path, rounds=3, targets=Targets(max_kbps=1.0)), store, planner).run(clip_path)
    assert summary.experiments == 1 and planner.calls == 2
    assert "no valid experiment" in summary.decision.reason


def test_run_frames_stops_before_a_size_change(tmp_path):
    from tests.test_video_io import encode_raw

    a = encode_raw(synthetic_clip(frames=4, width=64, height=48), tmp_path / "a.264")
    b = encode_raw(synthetic_clip(frames=2, width=48, height=32), tmp_path / "b.264")
    joined = tmp_path / "joined.264"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    store = SqliteStore(tmp_path / "lab.sqlite")
    summary = LocalRunner(config(tmp_path, frames=4), store, ScriptedPlanner([])).run(joined)
    assert summary.report.exists() and store.get_video(summary.video_id).info.frames == 4


def test_rerun_with_other_targets_judges_by_the_new_ones(tmp_path, clip_path):
    store = SqliteStore(tmp_path / "lab.sqlite")
    first = LocalRunner(config(tmp_path), store, ScriptedPlanner([[30]])).run(clip_path)
    assert first.decision.target_met
    strict = Targets(max_kbps=1.0)
    again = LocalRunner(config(tmp_path, targets=strict, rounds=2), store, ScriptedPlanner([[50]])).run(clip_path)
    assert not again.decision.target_met
    assert store.get_video(first.video_id).targets == strict
    anchors = json.loads((again.run_dir / "summary.json").read_text())
    assert anchors["decision"]["target_met"] is False
    assert "<span class=met>" not in again.report.read_text()  # no anchor meets a 1 kbps target


def test_the_planner_starts_from_the_anchor_sweep(tmp_path, clip_path):
    seen = []

    class Recording(ScriptedPlanner):
        def propose(self, video, profile, history, targets, budget, n):
            seen.extend(history)
            return super().propose(video, profile, history, targets, budget, n)

    store = SqliteStore(tmp_path / "lab.sqlite")
    summary = LocalRunner(config(tmp_path), store, Recording([[30]])).run(clip_path)
    anchors = [r for r in seen if r.video_id == f"{summary.video_id}.anchors"]
    assert anchors and all(r.plan.strategy == "av1" and r.result.metrics.kbps > 0 for r in anchors)
    assert summary.decision.budget_left.experiments == 2  # anchors do not use the experiment budget (3 - 1)


def test_video_id_depends_on_how_raw_input_is_read(tmp_path, clip_path):
    from codec_lab.pipeline import video_id_for

    plain = video_id_for(clip_path, 30, {"fps": None, "size": None})
    assert plain == video_id_for(clip_path, 30) != video_id_for(clip_path, 30, {"fps": 50.0}) != video_id_for(clip_path, 8)
