"""The SageMaker entry points, run locally with a temporary folder standing in for /opt/ml (no Docker)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from codec_lab.aws.jobs import Checkpointer, JobStopped, SageMakerPaths, install_sigterm, read_hyperparameters
from codec_lab.contracts import ExperimentPlan, ExperimentResult, SceneProfile, VideoInfo

REPO = Path(__file__).resolve().parents[2]


def run_entry(module: str, root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SM_ROOT": str(root), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


def training_tree(root: Path, video: Path, plan: ExperimentPlan, **hp: str) -> None:
    (root / "input/config").mkdir(parents=True)
    (root / "input/config/hyperparameters.json").write_text(json.dumps(
        {"plan_id": plan.plan_id, "video_name": video.name, **hp}))
    (root / "input/data/plan").mkdir(parents=True)
    (root / "input/data/plan/plan.json").write_text(plan.model_dump_json())
    (root / "input/data/video").mkdir(parents=True)
    (root / "input/data/video" / video.name).write_bytes(video.read_bytes())
    (root / "input/data/video/tiny.y4m.other").write_text("a longer key with the same prefix")


def av1_plan(video_id="vid-tiny") -> ExperimentPlan:
    return ExperimentPlan(strategy="av1", parameters={"crf": 45, "preset": 12}, rationale="dry run", plan_id="vid-tiny:r1:p0",
                          video_id=video_id, round=1, planner="test")


def test_training_entry_point_dry_run(tmp_path, tiny_y4m):
    root = tmp_path / "opt_ml"
    plan = av1_plan()
    training_tree(root, tiny_y4m, plan)
    run = run_entry("gpu_jobs.train", root, "train")
    print("train stdout:", run.stdout.strip()[-2000:])
    print("train stderr:", run.stderr.strip()[-2000:])
    assert run.returncode == 0, run.stderr
    result = ExperimentResult.model_validate_json((root / "model/result.json").read_text())
    print("result.json:", result.model_dump_json()[:1500])
    assert result.plan_id == plan.plan_id
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {"plan_id": plan.plan_id, "status": result.status}
    assert result.status == "succeeded", result.error
    assert result.metrics.kbps > 0 and result.metrics.quality.psnr_yuv > 20
    assert list((root / "model").glob("bitstream*"))
    assert not (root / "output/failure").exists()
    assert json.loads((root / "checkpoints/checkpoint.json").read_text())["phase"] == "done"


def test_training_entry_point_writes_the_failure_reason(tmp_path, tiny_y4m):
    root = tmp_path / "opt_ml"
    plan = av1_plan()
    training_tree(root, tiny_y4m, plan, plan_id="someone-else")
    run = run_entry("gpu_jobs.train", root, "train")
    assert run.returncode == 1
    failure = (root / "output/failure").read_text()
    assert failure.startswith("JobInputError: plan_id 'someone-else' does not match") and len(failure) <= 1024


def test_analyze_entry_point_dry_run(tmp_path, tiny_y4m):
    root = tmp_path / "opt_ml"
    (root / "processing/input/video").mkdir(parents=True)
    (root / "processing/input/video/tiny.y4m").write_bytes(tiny_y4m.read_bytes())
    run = run_entry("gpu_jobs.analyze", root, "--video-name", "tiny.y4m", "--video-id", "vid-tiny", "--anchors", "av1")
    print("analyze stdout:", run.stdout.strip()[-2000:])
    assert run.returncode == 0, run.stderr
    out = root / "processing/output"
    info = VideoInfo.model_validate_json((out / "video.json").read_text())
    profile = SceneProfile.model_validate_json((out / "profile.json").read_text())
    assert (info.width, info.height, info.frames) == (64, 48, 6)
    assert profile.video_id == "vid-tiny"
    assert (out / "anchors").is_dir() and any((out / "anchors").iterdir())


def test_analyze_failure_goes_to_the_message_file(tmp_path):
    root = tmp_path / "opt_ml"
    (root / "processing/input/video").mkdir(parents=True)
    (root / "processing/input/video/bad.mp4").write_bytes(b"\x00not a video" * 10)
    run = run_entry("gpu_jobs.analyze", root, "--video-name", "bad.mp4", "--video-id", "v")
    assert run.returncode == 1
    assert (root / "output/message").read_text() == (root / "output/failure").read_text() != ""


def test_hyperparameters_from_the_sdk_are_unquoted(tmp_path):
    paths = SageMakerPaths(tmp_path)
    paths.hyperparameters.parent.mkdir(parents=True)
    paths.hyperparameters.write_text(json.dumps({"plan_id": '"p-1"', "frames": "8"}))
    assert read_hyperparameters(paths) == {"plan_id": "p-1", "frames": "8"}


def test_sigterm_saves_a_checkpoint(tmp_path):
    checkpointer = Checkpointer(tmp_path / "checkpoints")
    checkpointer.update(phase="training", step=17)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        install_sigterm(checkpointer)
        with pytest.raises(JobStopped):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0) if hasattr(signal, "sigtimedwait") else None
    finally:
        signal.signal(signal.SIGTERM, previous)
    saved = Checkpointer(tmp_path / "checkpoints").load()
    assert saved["step"] == 17 and saved["stopped_by"] == "SIGTERM" and checkpointer.saved_on_signal
