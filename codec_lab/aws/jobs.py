"""The SageMaker job contract, and the two jobs: Analyze (processing) and one experiment (training).

Training (`docker run <image> train`):
    /opt/ml/input/config/hyperparameters.json   {"plan_id": ..., "video_name": ..., "video_id": ...} (strings)
    /opt/ml/input/data/plan/plan.json           the ExperimentPlan (channel 'plan')
    /opt/ml/input/data/video/<video_name>       the uploaded video (channel 'video')
    /opt/ml/model/                               result.json + bitstream + sample (SageMaker tars it to S3)
    /opt/ml/output/failure                       why it failed (SageMaker shows it as FailureReason)
    /opt/ml/checkpoints/                         synced to S3 with managed spot; SIGTERM saves a checkpoint here
Processing (Analyze):
    /opt/ml/processing/input/video/<video_name> -> /opt/ml/processing/output/{video.json,profile.json,anchors/}

The heavy library (PyAV, numpy, torch) is imported inside the functions, so this module stays
importable in the Lambdas. `SM_ROOT` points the whole tree at a temporary folder for tests.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from codec_lab.errors import CodecLabError

FAILURE_LIMIT = 1024  # SageMaker keeps the first 1 KB of the failure file as FailureReason


class JobInputError(CodecLabError):
    """The job's inputs do not match the contract (missing channel, file, or hyper-parameter)."""


@dataclass(frozen=True)
class SageMakerPaths:
    root: Path = Path("/opt/ml")

    @classmethod
    def from_env(cls) -> "SageMakerPaths":
        return cls(Path(os.environ.get("SM_ROOT", "/opt/ml")))

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def processing_input(self) -> Path:
        return self.root / "processing" / "input" / "video"

    @property
    def processing_output(self) -> Path:
        return self.root / "processing" / "output"


def read_hyperparameters(paths: SageMakerPaths) -> dict[str, str]:
    """SageMaker writes every value as a string; the SDK JSON-encodes them, so quoted strings are unwrapped."""
    if not paths.hyperparameters.is_file():
        return {}
    raw = json.loads(paths.hyperparameters.read_text())
    out: dict[str, str] = {}
    for key, value in raw.items():
        text = str(value)
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = json.loads(text)
        out[key] = text
    return out


def write_failure(path: Path, message: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(message[:FAILURE_LIMIT])


def find_video(folder: Path, name: str | None) -> Path:
    """The channel may hold more than the video (an S3 prefix matches longer keys): pick it by name."""
    if name:
        candidate = folder / name
        if candidate.is_file():
            return candidate
        raise JobInputError(f"video {name!r} not found in {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    if len(files) != 1:
        raise JobInputError(f"expected exactly one video in {folder}, found {len(files)}")
    return files[0]


class Checkpointer:
    """Saves a small JSON state to the checkpoint folder (atomic rename); SIGTERM triggers a last save."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state: dict[str, Any] = {}
        self.saved_on_signal = False

    @property
    def path(self) -> Path:
        return self.folder / "checkpoint.json"

    def load(self) -> dict[str, Any] | None:
        return json.loads(self.path.read_text()) if self.path.is_file() else None

    def update(self, **state: Any) -> None:
        self.state.update(state)

    def save(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.state, "saved_at": time.time()}))
        tmp.replace(self.path)
        return self.path


class JobStopped(BaseException):
    """SageMaker sent SIGTERM (spot interruption, MaxRuntime, StopTrainingJob). A BaseException, like
    KeyboardInterrupt, so that the experiment runner's catch-all does not turn it into a failed result."""


def install_sigterm(checkpointer: Checkpointer) -> Callable[[int, Any], None]:
    def on_sigterm(signum: int, frame: Any) -> None:
        checkpointer.update(stopped_by="SIGTERM")
        checkpointer.save()
        checkpointer.saved_on_signal = True
        raise JobStopped("stopped by SIGTERM; checkpoint saved")

    signal.signal(signal.SIGTERM, on_sigterm)
    return on_sigterm


# -- the library calls ------------------------------------------------------------------------------

def analyze(video_path: Path, out_dir: Path, video_id: str, *, anchors: tuple[str, ...] = ("x264", "x265", "av1"),
            frames: int | None = None) -> dict[str, Any]:
    """Probe, scene profile and the classical anchor sweep; writes video.json, profile.json, anchors/."""
    from codec_lab.bench import BenchConfig, run_bench
    from codec_lab.video import probe, read_clip
    from codec_lab.video.analysis import analyze_scene

    out_dir.mkdir(parents=True, exist_ok=True)
    info = probe(video_path)
    clip = read_clip(video_path, frames=frames)
    profile = analyze_scene(clip, video_id)
    (out_dir / "video.json").write_text(info.model_dump_json(indent=2))
    (out_dir / "profile.json").write_text(profile.model_dump_json(indent=2))
    bench = None
    if anchors:
        bench = run_bench(clip, info, out_dir / "anchors", BenchConfig(codecs=list(anchors)))
    return {"info": info, "profile": profile, "anchors": bench}


def run_experiment(plan: Any, video_path: Path, out_dir: Path, *, frames: int | None = None,
                   max_seconds: float | None = None, checkpointer: Checkpointer | None = None) -> Any:
    """One plan on one video: `codec_lab.experiment.run_experiment` (encode, standalone decode, measure)."""
    from codec_lab.contracts import Targets
    from codec_lab.experiment import ExperimentOptions
    from codec_lab.experiment import run_experiment as run_one
    from codec_lab.video import read_clip

    device = "cpu"
    try:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - the image has torch
        pass
    clip = read_clip(video_path, frames=frames)
    if checkpointer is not None:
        checkpointer.update(plan_id=plan.plan_id, phase="encoding")
    return run_one(plan, clip, out_dir, Targets(), ExperimentOptions(device=device, max_seconds=max_seconds))


# -- the entry points ---------------------------------------------------------------------------------

def train_main(paths: SageMakerPaths, *, frames: int | None = None) -> int:
    """The training job: exit 0 with result.json in /opt/ml/model (a failed experiment included: its
    result says why); exit 1 with /opt/ml/output/failure when the job itself could not run."""
    from codec_lab.contracts import ExperimentPlan

    checkpointer = Checkpointer(paths.checkpoint_dir)
    install_sigterm(checkpointer)
    try:
        hp = read_hyperparameters(paths)
        plan_file = paths.channel("plan") / "plan.json"
        if not plan_file.is_file():
            raise JobInputError(f"no plan.json in the 'plan' channel ({plan_file.parent})")
        plan = ExperimentPlan.model_validate_json(plan_file.read_text())
        if hp.get("plan_id") and hp["plan_id"] != plan.plan_id:
            raise JobInputError(f"plan_id {hp['plan_id']!r} does not match plan.json's {plan.plan_id!r}")
        video = find_video(paths.channel("video"), hp.get("video_name"))
        resumed = checkpointer.load()
        if resumed:
            print(f"resuming after {resumed.get('stopped_by', 'a restart')}: {resumed}", file=sys.stderr)
        max_seconds = float(hp["max_seconds"]) if hp.get("max_seconds") else None
        frames = int(hp["frames"]) if hp.get("frames") else frames
        result = run_experiment(plan, video, paths.model_dir, frames=frames, max_seconds=max_seconds,
                                checkpointer=checkpointer)
        checkpointer.update(phase="done", status=result.status)
        checkpointer.save()
        print(json.dumps({"plan_id": plan.plan_id, "status": result.status}))
        return 0
    except JobStopped as exc:
        write_failure(paths.failure_file, f"JobStopped: {exc}")
        return 143
    except Exception as exc:  # noqa: BLE001 - SageMaker's contract: the reason goes to the failure file
        write_failure(paths.failure_file, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        print(traceback.format_exc(), file=sys.stderr)
        return 1


def analyze_main(paths: SageMakerPaths, argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="gpu_jobs.analyze")
    parser.add_argument("--video-name")
    parser.add_argument("--video-id", required=True)
    parser.add_argument("--frames", type=int)
    parser.add_argument("--anchors", default="x264,x265,av1")
    args = parser.parse_args(argv)
    try:
        video = find_video(paths.processing_input, args.video_name)
        anchors = tuple(a for a in args.anchors.split(",") if a)
        result = analyze(video, paths.processing_output, args.video_id, anchors=anchors, frames=args.frames)
        print(json.dumps({"video_id": args.video_id, "scene_class": result["profile"].scene_class}))
        return 0
    except Exception as exc:  # noqa: BLE001
        message = f"{type(exc).__name__}: {exc}"
        write_failure(paths.output_dir / "message", message)  # processing jobs read /opt/ml/output/message
        write_failure(paths.failure_file, message)
        print(traceback.format_exc(), file=sys.stderr)
        return 1
