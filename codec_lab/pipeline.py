"""The local runner: `codec-lab run` does on one machine what the AWS state machine does.

Steps, in the order of `codec_lab.steps.PIPELINE_STEPS` (a test holds the state
machine to the same list): Analyze, then rounds of Plan -> RunExperiments ->
Record -> Decide, then Report. Everything lands under `runs/<video-id>/` and in
the store, so running the same command again resumes: the anchors and finished
experiments are kept, plans left without a result by a crash are run again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from codec_lab import steps
from codec_lab.bench import BenchConfig, BenchProgress, load_results, rescored, run_bench
from codec_lab.contracts import (
    BenchResults,
    Budget,
    Decision,
    ExperimentPlan,
    ExperimentRecord,
    ExperimentResult,
    SceneProfile,
    Targets,
    VideoInfo,
    VideoRecord,
)
from codec_lab.decide import best_record, decide
from codec_lab.errors import CodecLabError
from codec_lab.executors import ExperimentExecutor, LocalExecutor
from codec_lab.experiment import ExperimentOptions
from codec_lab.files import write_text_atomic
from codec_lab.planning import PlannerError, rounds_done
from codec_lab.planning.rounds import plan_round
from codec_lab.video import probe, read_clip
from codec_lab.video.analysis import analyze_scene
from codec_lab.video.frames import Clip

STEPS: tuple[str, ...] = steps.PIPELINE_STEPS


@dataclass
class RunConfig:
    frames: int | None = 30
    rounds: int = 3
    experiments_per_round: int = 2
    budget_seconds: float = 360.0  # compute seconds for all experiments' encoders together
    device: str = "auto"
    out: Path = Path("runs")
    targets: Targets = field(default_factory=Targets)
    anchors: tuple[str, ...] = ("x264", "x265", "av1")
    with_ms_ssim: bool = True
    input_options: dict = field(default_factory=dict)  # fps / size / pix_fmt for raw inputs

    @property
    def budget(self) -> Budget:
        return Budget(experiments=self.rounds * self.experiments_per_round, gpu_seconds=self.budget_seconds, rounds=self.rounds)

    def seconds_per_experiment(self) -> float:
        return max(10.0, self.budget_seconds / max(1, self.rounds * self.experiments_per_round))


QUICK = dict(frames=8, rounds=1, experiments_per_round=2, budget_seconds=40.0, anchors=("x265", "av1"), with_ms_ssim=False)


class RunView(Protocol):
    """What the runner tells a live display; `NullView` ignores it all."""

    def step(self, name: str, detail: str) -> None: ...
    def experiment_started(self, plan: ExperimentPlan, index: int, total: int) -> None: ...
    def experiment_finished(self, plan: ExperimentPlan, result: ExperimentResult, best: ExperimentRecord | None) -> None: ...
    def bench_progress(self) -> BenchProgress: ...


class NullView:
    def step(self, name, detail):
        pass

    def experiment_started(self, plan, index, total):
        pass

    def experiment_finished(self, plan, result, best):
        pass

    def bench_progress(self):
        return BenchProgress()


@dataclass
class RunSummary:
    video_id: str
    run_dir: Path
    report: Path
    decision: Decision
    experiments: int
    failed: int
    best: dict | None
    steps_run: list[str]


def video_id_for(path: Path, frames: int | None, input_options: dict | None = None) -> str:
    """Stable id from the file's content, the frames used and how raw input is read (fps, size,
    pixel format): same input, same id, same run folder; read differently, a different id."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    options = sorted((k, str(v)) for k, v in (input_options or {}).items() if v is not None)
    if options:  # only raw inputs read with --fps/--size/--pix-fmt get a different id
        digest.update(repr(options).encode())
    stem = re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-")[:40] or "video"
    return f"{stem}-{digest.hexdigest()[:10]}-f{frames or 'all'}"


class LocalRunner:
    def __init__(self, config: RunConfig, store, planner, view: RunView | None = None, executor: ExperimentExecutor | None = None) -> None:
        self.config = config
        self.store = store
        self.planner = planner
        self.view = view or NullView()
        self.executor = executor or LocalExecutor(config.targets, ExperimentOptions(
            device=self.device(), max_seconds=config.seconds_per_experiment(), with_ms_ssim=config.with_ms_ssim))
        self.steps_run: list[str] = []

    def _step(self, name: str, detail: str) -> None:
        assert name in STEPS, name
        self.steps_run.append(name)
        self.view.step(name, detail)

    # -- Analyze -------------------------------------------------------------
    def analyze(self, path: Path) -> tuple[str, VideoInfo, SceneProfile, Clip, BenchResults]:
        cfg = self.config
        info = probe(path, frames=cfg.frames, **cfg.input_options)
        clip = read_clip(path, frames=cfg.frames, **cfg.input_options)
        video_id = video_id_for(path, cfg.frames, cfg.input_options)
        self._step(steps.ANALYZE, f"{path.name}: {clip.width}x{clip.height}, {clip.num_frames} frames; scene profile and anchors")
        profile = analyze_scene(clip, video_id)
        existing = self.store.get_video(video_id)
        if existing is None:
            self.store.put_video(VideoRecord(video_id=video_id, source_uri=str(path.resolve()), status="analyzing",
                                             info=info, profile=profile, targets=cfg.targets, budget=cfg.budget))
        else:  # a rerun: today's targets and budget are the ones to judge and plan by
            self.store.put_video(existing.model_copy(update={"status": "analyzing", "targets": cfg.targets, "budget": cfg.budget}))
        anchors = self._anchors(clip, path, self.run_dir(video_id) / "anchors")
        return video_id, info, profile, clip, anchors

    def _anchors(self, clip: Clip, path: Path, out_dir: Path) -> BenchResults:
        results_file = out_dir / "results.json"
        if results_file.exists():
            try:
                cached = load_results(results_file)
            except CodecLabError:
                cached = None  # half-written or foreign: measure again
            same_frames = cached is not None and (cached.clip.frames, cached.clip.width, cached.clip.height) == (
                clip.num_frames, clip.width, clip.height) and abs(cached.clip.fps - float(clip.fps)) < 1e-6
            if same_frames and {p.codec for p in cached.points} >= set(self.config.anchors):
                return rescored(cached, self.config.targets)
        config = BenchConfig(codecs=list(self.config.anchors), targets=self.config.targets, with_ms_ssim=self.config.with_ms_ssim)
        return run_bench(clip, str(path), out_dir, config, self.view.bench_progress())

    def run_dir(self, video_id: str) -> Path:
        return self.config.out / video_id

    # -- the rounds ---------------------------------------------------------
    def plan(self, video_id: str, info: VideoInfo, profile: SceneProfile, anchors: BenchResults) -> list[ExperimentPlan]:
        self.store.set_video_status(video_id, "planning")
        self._step(steps.PLAN, f"round {rounds_done(self.store.list_experiments(video_id), video_id) + 1}: "
                               f"{self.config.experiments_per_round} plan(s) asked of {self.planner.name}")
        plans = plan_round(self.planner, self.store, info, profile, self.config.targets, self.config.budget,
                           self.config.experiments_per_round, anchors)
        self._keep_planning_report(video_id, plans)
        return plans

    def _keep_planning_report(self, video_id: str, plans: Sequence[ExperimentPlan]) -> None:
        """runs/<video>/planner/call-NN.json: what the planner proposed, dropped or clamped, and where its audit went."""
        folder = self.run_dir(video_id) / "planner"
        folder.mkdir(parents=True, exist_ok=True)
        report = getattr(self.planner, "last_report", None)
        payload = {"planner": getattr(self.planner, "name", "?"), "report": report.model_dump() if report is not None else None,
                   "plans": [p.model_dump() for p in plans]}
        write_text_atomic(folder / f"call-{len(list(folder.glob('call-*.json'))) + 1:02d}.json", json.dumps(payload, indent=2))

    def run_experiments(self, video_id: str, plans: Sequence[ExperimentPlan], clip: Clip, source: Path) -> None:
        self.store.set_video_status(video_id, "running")
        self._step(steps.RUN_EXPERIMENTS, f"{len(plans)} experiment(s)")
        recorded = False
        for plan, result in self.executor.run_round(plans, clip, source, self.run_dir(video_id), self.view.experiment_started):
            if not recorded:
                self._step(steps.RECORD, "each result into the store as it finishes")
                recorded = True
            self.store.put_result(result)
            self.view.experiment_finished(plan, result, best_record(self.store.list_experiments(video_id), self.config.targets))

    def decide(self, video_id: str, planned_nothing: bool) -> Decision:
        decision = decide(video_id, self.store.list_experiments(video_id), self.config.targets, self.config.budget,
                          planned_nothing=planned_nothing)
        self._step(steps.DECIDE, ("stop: " if decision.stop else "") + decision.reason)
        return decision

    def device(self) -> str:
        if self.config.device != "auto":
            return self.config.device
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"

    # -- the whole run --------------------------------------------------------
    def run(self, path: Path) -> RunSummary:
        from codec_lab.report.html import write_report

        path = Path(path)
        video_id, info, profile, clip, anchors = self.analyze(path)
        unfinished = []
        for record in self.store.unfinished(video_id):
            dead = self.executor.abandoned(record.plan, self.run_dir(video_id))
            if dead is None:
                unfinished.append(record.plan)
            else:
                self.store.put_result(dead)
        if unfinished:  # an earlier run stopped mid-round: finish its plans before planning anew
            self._step(steps.PLAN, f"resuming {len(unfinished)} experiment(s) left unfinished by an earlier run")
            self.run_experiments(video_id, unfinished, clip, path)
            decision = self.decide(video_id, planned_nothing=False)
        else:
            decision = decide(video_id, self.store.list_experiments(video_id), self.config.targets, self.config.budget)
        while not decision.stop:
            try:
                plans = self.plan(video_id, info, profile, anchors)
            except PlannerError as exc:
                self.view.step(steps.PLAN, f"planner failed: {exc}")
                plans = []
            if plans:
                self.run_experiments(video_id, plans, clip, path)
            decision = self.decide(video_id, planned_nothing=not plans)
        self.store.set_video_status(video_id, "reporting")
        records = self.store.list_experiments(video_id)
        self._step(steps.REPORT, "report.html and rd.png")
        report = write_report(self.run_dir(video_id), info, profile, clip, anchors, records, self.config.targets, decision)
        self.store.set_video_status(video_id, "done", note=decision.reason)
        best = best_record(records, self.config.targets)
        return RunSummary(
            video_id=video_id, run_dir=self.run_dir(video_id), report=report, decision=decision,
            experiments=len(records), failed=sum(1 for r in records if r.status == "failed"),
            best=None if best is None else {"plan_id": best.plan.plan_id, "strategy": best.plan.strategy,
                                            "parameters": dict(best.plan.parameters), **best.result.metrics.model_dump()},
            steps_run=self.steps_run,
        )
