"""One definition of every metric in the lab; every evaluation calls these.

- PSNR per plane per frame on 8-bit planes: 10*log10(255^2 / MSE), capped at
  `PSNR_CAP_DB` (identical planes, MSE = 0, give exactly the cap).
  PSNR-YUV per frame = (6*Y + U + V) / 8; every figure is the mean over frames.
- SSIM: scikit-image `structural_similarity` on Y, data_range=255, its default
  7x7 uniform window; mean over frames.
- MS-SSIM: pytorch-msssim on Y (data_range=255, 5 scales). Its 11-tap window
  needs a shorter side above 160 pixels; smaller frames use the largest odd
  window that fits (so MS-SSIM compares codecs on one clip, not across
  sizes), and frames of 32 pixels or less get none.
- Bitrate: payload bytes x 8 x fps / frames; bits per pixel likewise per pixel.
- Decoder cost: TOPS per frame = 2 ops per MAC x MAC/pixel x pixels / 1e12.
"""

from __future__ import annotations

import math

import numpy as np

from codec_lab.contracts import Quality
from codec_lab.video.frames import Clip

PSNR_CAP_DB = 100.0
MAX_PIXEL = 255.0
PSNR_YUV_WEIGHTS = (6.0, 1.0, 1.0)
MS_SSIM_SCALES = 5


def mse(reference: np.ndarray, distorted: np.ndarray) -> float:
    diff = reference.astype(np.float64) - distorted.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr_from_mse(value: float) -> float:
    if value <= 0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(MAX_PIXEL * MAX_PIXEL / value))


def psnr(reference: np.ndarray, distorted: np.ndarray) -> float:
    return psnr_from_mse(mse(reference, distorted))


def psnr_yuv(psnr_y: float, psnr_u: float, psnr_v: float) -> float:
    wy, wu, wv = PSNR_YUV_WEIGHTS
    return (wy * psnr_y + wu * psnr_u + wv * psnr_v) / (wy + wu + wv)


def ssim_y(reference: np.ndarray, distorted: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(reference, distorted, data_range=MAX_PIXEL))


def ms_ssim_window(height: int, width: int) -> int | None:
    """pytorch-msssim needs shorter side > (win - 1) * 2^(scales - 1)."""
    shorter = min(height, width)
    for window in range(11, 2, -2):
        if shorter > (window - 1) * 2 ** (MS_SSIM_SCALES - 1):
            return window
    return None


def ms_ssim_y(reference: np.ndarray, distorted: np.ndarray) -> float | None:
    """Mean MS-SSIM over frames of (T, H, W) luma stacks, or None if the frames are too small."""
    window = ms_ssim_window(*reference.shape[-2:])
    if window is None:
        return None
    import torch
    from pytorch_msssim import ms_ssim

    ref = torch.from_numpy(reference.astype(np.float32))[:, None]
    dist = torch.from_numpy(distorted.astype(np.float32))[:, None]
    with torch.no_grad():
        values = ms_ssim(ref, dist, data_range=MAX_PIXEL, size_average=False, win_size=window)
    return float(values.mean())


def check_comparable(reference: Clip, distorted: Clip) -> None:
    from codec_lab.errors import CodecLabError

    if (reference.width, reference.height) != (distorted.width, distorted.height):
        raise CodecLabError(
            f"sizes differ: reference {reference.width}x{reference.height}, distorted {distorted.width}x{distorted.height}"
        )
    if distorted.num_frames < reference.num_frames:
        raise CodecLabError(
            f"the distorted clip has {distorted.num_frames} frames, the reference {reference.num_frames}: "
            "evaluate on fewer frames (--frames)"
        )
    if min(reference.width, reference.height) < 7:
        raise CodecLabError(f"frames of {reference.width}x{reference.height} are too small for SSIM (7x7 window)")


def evaluate(reference: Clip, distorted: Clip, *, with_ms_ssim: bool = True) -> Quality:
    """Quality of `distorted` against `reference` on the reference's frames (8-bit 4:2:0)."""
    check_comparable(reference, distorted)
    frames = reference.num_frames
    distorted = distorted.head(frames)
    per_plane = np.array(
        [[psnr(r[i], d[i]) for r, d in zip(reference.planes(), distorted.planes())] for i in range(frames)]
    )
    per_frame_yuv = [psnr_yuv(*row) for row in per_plane]
    ssim = float(np.mean([ssim_y(reference.y[i], distorted.y[i]) for i in range(frames)]))
    return Quality(
        frames=frames,
        psnr_y=float(per_plane[:, 0].mean()),
        psnr_u=float(per_plane[:, 1].mean()),
        psnr_v=float(per_plane[:, 2].mean()),
        psnr_yuv=float(np.mean(per_frame_yuv)),
        ssim=ssim,
        ms_ssim=ms_ssim_y(reference.y, distorted.y) if with_ms_ssim else None,
    )


def bitrate_kbps(payload_bytes: int, frames: int, fps: float) -> float:
    return payload_bytes * 8.0 * float(fps) / frames / 1000.0


def bits_per_pixel(payload_bytes: int, frames: int, width: int, height: int) -> float:
    return payload_bytes * 8.0 / (frames * width * height)


def tops_per_frame(mac_per_pixel: float, width: int, height: int) -> float:
    return 2.0 * mac_per_pixel * width * height / 1e12
