"""Scene analysis: what the planner needs to know about a clip before choosing codecs.

- SI / TI as ITU-T P.910 defines them on luma: SI = std of the Sobel magnitude
  of a frame, TI = std of the difference of consecutive frames.
- Motion: global translation between consecutive frames by phase correlation
  (scikit-image), in pixels per frame; a residual after that shift tells local
  motion apart from a camera pan.
- Scene cuts: a frame whose mean absolute difference to the previous frame is
  far above the clip's typical difference.
- Scene class, by rules on those numbers (thresholds below, in 8-bit units).
"""

from __future__ import annotations

import numpy as np

from codec_lab.contracts import SceneProfile
from codec_lab.video.frames import Clip

STATIC_TI = 2.0
TALKING_HEAD_TI = 12.0
HIGH_MOTION_TI = 25.0
HIGH_MOTION_PX = 4.0
# Screen content (text, UI): most neighbours identical, few gentle slopes, many hard edges.
# Low-bitrate camera video is flat too, but its slopes are gentle, not hard.
SCREEN_FLAT_FRACTION = 0.5
SCREEN_GENTLE_MAX = 0.2
SCREEN_HARD_MIN = 0.05
MOTION_MAX_WIDTH = 352  # phase correlation on a downscaled luma: motion is rescaled back
CUT_RATIO = 4.0
CUT_MIN_MAD = 20.0


def spatial_information(y: np.ndarray) -> float:
    from scipy.ndimage import sobel

    plane = y.astype(np.float64)
    return float(np.hypot(sobel(plane, axis=0), sobel(plane, axis=1)).std())


def global_motion(previous: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(shift magnitude in pixels, mean absolute residual after undoing the shift)."""
    from skimage.registration import phase_cross_correlation

    shift, _, _ = phase_cross_correlation(previous.astype(np.float64), current.astype(np.float64), normalization=None)
    dy, dx = (int(round(s)) for s in shift)
    moved = np.roll(current.astype(np.int16), (dy, dx), axis=(0, 1))
    h, w = current.shape
    inner = (slice(abs(dy), h - abs(dy) or None), slice(abs(dx), w - abs(dx) or None))
    residual = float(np.abs(moved[inner] - previous.astype(np.int16)[inner]).mean()) if moved[inner].size else 0.0
    return float(np.hypot(*shift)), residual


def gradient_shares(y: np.ndarray) -> tuple[float, float, float]:
    """Shares of horizontal luma steps that are 0, gentle (1..3) and hard (> 40)."""
    steps = np.abs(np.diff(y.astype(np.int16), axis=1))
    return float((steps == 0).mean()), float(((steps > 0) & (steps <= 3)).mean()), float((steps > 40).mean())


def looks_like_screen(y: np.ndarray) -> bool:
    flat, gentle, hard = gradient_shares(y)
    return flat >= SCREEN_FLAT_FRACTION and gentle <= SCREEN_GENTLE_MAX and hard >= SCREEN_HARD_MIN


def classify(ti_mean: float, motion: float, screen: bool) -> str:
    if screen:
        return "screen"
    if ti_mean < STATIC_TI:
        return "static"
    if ti_mean >= HIGH_MOTION_TI or motion >= HIGH_MOTION_PX:
        return "high_motion"
    if ti_mean < TALKING_HEAD_TI and motion < 1.0:
        return "talking_head"
    return "moderate"


def analyze_scene(clip: Clip, video_id: str) -> SceneProfile:
    y = clip.y
    si = [spatial_information(frame) for frame in y]
    diffs = np.diff(y.astype(np.int16), axis=0) if clip.num_frames > 1 else np.zeros((0, *y.shape[1:]), np.int16)
    ti = [float(d.std()) for d in diffs]
    mad = np.array([float(np.abs(d).mean()) for d in diffs])
    typical = float(np.median(mad)) if mad.size else 0.0
    cuts = [i + 1 for i, m in enumerate(mad) if m > CUT_MIN_MAD and m > CUT_RATIO * max(typical, 1.0)]
    factor = max(1, -(-clip.width // MOTION_MAX_WIDTH))
    small = y[:, ::factor, ::factor]
    motions, residuals = [], []
    for i in range(1, clip.num_frames):
        if i in cuts:
            continue  # a cut is not motion
        magnitude, residual = global_motion(small[i - 1], small[i])
        motions.append(magnitude * factor)
        residuals.append(residual)
    flat, gentle, hard = gradient_shares(y[0])
    ti_shots = [t for i, t in enumerate(ti) if i + 1 not in cuts]
    ti_mean = float(np.mean(ti_shots)) if ti_shots else 0.0
    motion_mean = float(np.mean(motions)) if motions else 0.0
    residual_mean = float(np.mean(residuals)) if residuals else 0.0
    notes = [f"luma steps: {flat:.2f} flat, {gentle:.2f} gentle, {hard:.3f} hard; residual after global motion {residual_mean:.2f}"]
    if clip.num_frames == 1:
        notes.append("a single frame: no temporal information")
    return SceneProfile(
        video_id=video_id,
        width=clip.width,
        height=clip.height,
        fps=float(clip.fps),
        frames=clip.num_frames,
        si_mean=float(np.mean(si)),
        si_max=float(np.max(si)),
        ti_mean=ti_mean,
        ti_max=float(max(ti)) if ti else 0.0,
        motion_mean=motion_mean,
        scene_cuts=cuts,
        scene_class=classify(ti_mean, motion_mean, looks_like_screen(y[0])),
        notes=notes,
    )
