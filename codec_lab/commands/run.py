"""`codec-lab run CLIP`: the whole lab on one machine (Analyze, Plan, RunExperiments, Record, Decide, Report)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from codec_lab.commands._common import add_input_options, add_target_options, positive_float, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="the whole lab on one clip: anchors, planned experiments, report", description=__doc__)
    parser.add_argument("clip", nargs="?", help="the video to compress (or --demo)")
    parser.add_argument("--demo", action="store_true", help="generate a small demo clip (a pan over a photograph) and run on it")
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 frames, 1 round of 2 short experiments, 2 anchors (a minute or two)")
    parser.add_argument("--rounds", type=positive_int, help="planning rounds at most (default 3)")
    parser.add_argument("--experiments-per-round", type=positive_int, help="plans per round (default 2)")
    parser.add_argument("--budget-seconds", type=positive_float, help="encoder compute seconds for all experiments (default 360)")
    parser.add_argument("--planner", choices=["auto", "local", "bedrock"], default="auto",
                        help="auto: Bedrock when CODEC_LAB_BEDROCK_MODEL_ID is set, else the local Optuna planner")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where neural codecs train (default: cuda if present)")
    parser.add_argument("--backend", choices=["local", "sagemaker"], default="local",
                        help="where experiments run: here, or as SageMaker training jobs (CODEC_LAB_SM_BUCKET, _ROLE_ARN, _IMAGE_URI)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="runs folder (default runs/)")
    parser.add_argument("--store", help="SQLite store (default $CODEC_LAB_STORE or runs/lab.sqlite)")
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON")
    add_input_options(parser)
    add_target_options(parser)
    parser.set_defaults(func=run)


def make_config(args: argparse.Namespace):
    from codec_lab.commands._common import input_kwargs, targets_from_args
    from codec_lab.pipeline import QUICK, RunConfig

    base = dict(QUICK) if args.quick else {}
    for name in ("frames", "rounds", "experiments_per_round", "budget_seconds"):
        if getattr(args, name, None) is not None:
            base[name] = getattr(args, name)
    return RunConfig(**base, device=args.device, out=args.out, targets=targets_from_args(args), input_options=input_kwargs(args))


def demo_clip(out: Path) -> Path:
    from codec_lab.video import write_clip
    from codec_lab.video.demo import demo_clip as make

    out.mkdir(parents=True, exist_ok=True)
    return write_clip(make(), out / "demo_pan_176x144.y4m")


def run(args: argparse.Namespace) -> int:
    from codec_lab.commands.run_view import RichView
    from codec_lab.errors import CodecLabError
    from codec_lab.pipeline import LocalRunner
    from codec_lab.planning import PlannerSettings, make_planner
    from codec_lab.planning.space import default_search_space
    from codec_lab.store import open_store

    if not args.clip and not args.demo:
        raise CodecLabError("give a video file to run on, or --demo for a generated one")
    config = make_config(args)
    clip = demo_clip(config.out) if args.demo else Path(args.clip)
    store = open_store(args.store or os.environ.get("CODEC_LAB_STORE") or config.out / "lab.sqlite")
    space = default_search_space()
    if not _neural_codec_available():
        space = space.only(["av1"])
    settings = PlannerSettings.from_env()
    settings = PlannerSettings(**{**settings.__dict__, "kind": args.planner, "audit_dir": str(config.out / "audit")})
    planner = make_planner(settings, space=space, store=store)
    executor = None
    if args.backend == "sagemaker":
        from codec_lab.executors import SageMakerExecutor

        executor = SageMakerExecutor.from_env()
    view = RichView(json_mode=args.json)
    with view:
        summary = LocalRunner(config, store, planner, view, executor).run(clip)
    payload = {
        "video_id": summary.video_id, "run_dir": str(summary.run_dir), "report": str(summary.report),
        "stopped_because": summary.decision.reason, "target_met": summary.decision.target_met,
        "experiments": summary.experiments, "failed": summary.failed, "best": summary.best, "steps": summary.steps_run,
    }
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        view.final(payload)
    return 0


def _neural_codec_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("codec_lab.codec.sweep") is not None and importlib.util.find_spec("torch") is not None


