"""The live view of `codec-lab run`: which step, which experiment, the best result so far (rich)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from codec_lab.bench import BenchProgress


class RichView:
    def __init__(self, json_mode: bool = False) -> None:
        self.console = Console(stderr=json_mode, width=None if sys.stderr.isatty() else 140)
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=True)
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        self.task = self.progress.add_task("starting", total=None)
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def step(self, name: str, detail: str) -> None:
        self.console.print(f"[bold cyan]{name}[/] {detail}")
        self.progress.update(self.task, description=name, completed=0, total=None)

    def bench_progress(self) -> BenchProgress:
        def planned(n: int) -> None:
            total = self.progress.tasks[0].total or 0
            self.progress.update(self.task, total=total + n)

        return BenchProgress(
            planned=planned,
            started=lambda codec, settings: self.progress.update(self.task, description=f"anchor {codec} {settings}"),
            finished=lambda point: self.progress.advance(self.task),
        )

    def experiment_started(self, plan, index: int, total: int) -> None:
        self.progress.update(self.task, description=f"experiment {plan.plan_id}: {plan.strategy} {dict(plan.parameters)}",
                             total=total, completed=index)

    def experiment_finished(self, plan, result, best) -> None:
        self.progress.advance(self.task)
        if result.status == "succeeded":
            m = result.metrics
            verdict = "[green]meets the target[/]" if m.meets_target else "misses the target"
            self.console.print(f"  {plan.plan_id}: {plan.strategy} {m.kbps:.1f} kbps, {m.quality.psnr_yuv:.2f} dB, "
                               f"SSIM {m.quality.ssim:.4f}: {verdict}")
        else:
            self.console.print(f"  {plan.plan_id}: [red]failed[/] {result.error}")
        if best is not None and best.result.metrics is not None:
            b = best.result.metrics
            self.console.print(f"  best so far: {best.plan.strategy} {dict(best.plan.parameters)} at {b.kbps:.1f} kbps, {b.quality.psnr_yuv:.2f} dB")

    def final(self, payload: dict) -> None:
        self.console.print(f"[bold]done[/]: {payload['stopped_because']}")
        self.console.print(f"{payload['experiments']} experiment(s), {payload['failed']} failed; report: {payload['report']}")
