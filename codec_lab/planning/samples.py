"""Small, valid payloads for tests, docs and dry runs (no I/O)."""

from __future__ import annotations

from codec_lab.contracts import (
    ExperimentMetrics,
    ExperimentPlan,
    ExperimentResult,
    Quality,
    SceneClass,
    SceneProfile,
    Targets,
    VideoInfo,
)


def sample_video(path: str = "/data/foreman_qcif.y4m", frames: int = 30) -> VideoInfo:
    return VideoInfo(path=path, container="y4m", codec="rawvideo", width=176, height=144, frames=frames, fps=30.0,
                     fps_source="y4m header", pix_fmt="yuv420p", bit_depth=8, duration_s=frames / 30.0,
                     size_bytes=176 * 144 * 3 // 2 * frames)


def sample_profile(video_id: str = "vid-foreman", scene_class: SceneClass = "moderate", frames: int = 30) -> SceneProfile:
    return SceneProfile(video_id=video_id, width=176, height=144, fps=30.0, frames=frames, si_mean=60.0, si_max=70.0,
                        ti_mean=12.0, ti_max=20.0, motion_mean=1.5, scene_cuts=[0], scene_class=scene_class)


def sample_metrics(kbps: float, psnr_yuv: float, ssim: float = 0.97, tops: float | None = None,
                   targets: Targets | None = None) -> ExperimentMetrics:
    targets = targets or Targets()
    quality = Quality(frames=30, psnr_y=psnr_yuv - 1.0, psnr_u=psnr_yuv + 3.0, psnr_v=psnr_yuv + 3.0,
                      psnr_yuv=psnr_yuv, ssim=ssim)
    return ExperimentMetrics(quality=quality, kbps=kbps, payload_bytes=int(kbps * 1000 / 8), tops_per_frame=tops,
                             meets_target=targets.met_by(kbps, psnr_yuv, ssim, tops))


def sample_result(plan: ExperimentPlan, kbps: float, psnr_yuv: float, ssim: float = 0.97) -> ExperimentResult:
    return ExperimentResult(plan_id=plan.plan_id, video_id=plan.video_id, status="succeeded",
                            metrics=sample_metrics(kbps, psnr_yuv, ssim), timings={"encode": 1.0, "decode": 0.1},
                            artifacts={"bitstream": f"file:///tmp/{plan.plan_id}.ivf"})


def failed_result(plan: ExperimentPlan, error: str) -> ExperimentResult:
    return ExperimentResult(plan_id=plan.plan_id, video_id=plan.video_id, status="failed", error=error)
