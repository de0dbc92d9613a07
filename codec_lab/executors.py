"""Where a round's experiments run: here (`LocalExecutor`) or as SageMaker training jobs
(`SageMakerExecutor`, for `codec-lab run --backend sagemaker`). Both yield each result as it
finishes, so the runner records it at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from codec_lab.contracts import ExperimentPlan, ExperimentResult, Targets
from codec_lab.errors import CodecLabError
from codec_lab.experiment import ExperimentOptions, run_experiment
from codec_lab.files import write_text_atomic
from codec_lab.video.frames import Clip


class ExperimentExecutor(Protocol):
    def run_round(self, plans: Sequence[ExperimentPlan], clip: Clip, source: Path, run_dir: Path,
                  on_start) -> Iterator[tuple[ExperimentPlan, ExperimentResult]]: ...

    def abandoned(self, plan: ExperimentPlan, run_dir: Path) -> ExperimentResult | None:
        """A failed result for a plan whose process died mid-experiment, or None to run it again."""


STARTED_MARKER = "started"


@dataclass
class LocalExecutor:
    targets: Targets
    options: ExperimentOptions
    run = staticmethod(run_experiment)  # replaced in tests to simulate a crash

    def run_round(self, plans, clip, source, run_dir, on_start):
        for index, plan in enumerate(plans):
            on_start(plan, index, len(plans))
            folder = run_dir / "experiments" / plan.plan_id
            folder.mkdir(parents=True, exist_ok=True)
            marker = folder / STARTED_MARKER
            marker.touch()  # left behind only if this process is killed mid-experiment
            try:
                result = self.run(plan, clip, folder, self.targets, self.options)
            except KeyboardInterrupt:
                marker.unlink(missing_ok=True)  # the user stopped the run: this experiment runs again next time
                raise
            marker.unlink(missing_ok=True)
            yield plan, result

    def abandoned(self, plan, run_dir):
        folder = run_dir / "experiments" / plan.plan_id
        if not (folder / STARTED_MARKER).exists():
            return None
        return ExperimentResult(
            plan_id=plan.plan_id, video_id=plan.video_id, status="failed",
            error=f"the process ended during this experiment (killed, out of memory or crashed); it is not run again. "
                  f"Delete {folder} and its store entry to retry it",
        )


@dataclass
class SageMakerExecutor:
    """Submit every plan of the round as a training job, then collect the results in order."""

    settings: object  # codec_lab.aws.sagemaker_backend.BackendSettings
    poll_seconds: float = 30.0

    @classmethod
    def from_env(cls, env=None) -> SageMakerExecutor:
        from codec_lab.aws.sagemaker_backend import BackendSettings

        env = os.environ if env is None else env
        missing = [k for k in ("CODEC_LAB_SM_BUCKET", "CODEC_LAB_SM_ROLE_ARN", "CODEC_LAB_SM_IMAGE_URI") if not env.get(k)]
        if missing:
            raise CodecLabError(f"--backend sagemaker needs {', '.join(missing)} (the stack's bucket, job role and image; see docs/aws.md)")
        return cls(BackendSettings(bucket=env["CODEC_LAB_SM_BUCKET"], role_arn=env["CODEC_LAB_SM_ROLE_ARN"],
                                   image_uri=env["CODEC_LAB_SM_IMAGE_URI"],
                                   instance_type=env.get("CODEC_LAB_SM_INSTANCE_TYPE", "ml.g4dn.xlarge"),
                                   use_spot=env.get("CODEC_LAB_SM_SPOT", "").lower() in ("1", "true", "yes"),
                                   region=env.get("CODEC_LAB_SM_REGION") or env.get("AWS_REGION") or None))

    def run_round(self, plans, clip, source, run_dir, on_start):
        from codec_lab.aws.sagemaker_backend import submit_experiment, upload_video, wait_for_result

        if not plans:
            return
        video_uri = upload_video(source, plans[0].video_id, self.settings)
        jobs = []
        for index, plan in enumerate(plans):
            on_start(plan, index, len(plans))
            jobs.append((plan, submit_experiment(plan, video_uri, self.settings, index=index)))
        for plan, job in jobs:
            result = wait_for_result(job, self.settings, poll_s=self.poll_seconds)
            folder = run_dir / "experiments" / plan.plan_id
            folder.mkdir(parents=True, exist_ok=True)
            write_text_atomic(folder / "result.json", result.model_dump_json(indent=2))
            yield plan, result

    def abandoned(self, plan, run_dir):
        return None  # a job's failure comes back as a failed result; an unfinished plan is submitted again
