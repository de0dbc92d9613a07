"""Pydantic models that cross a process boundary (JSON on the wire). No torch here.

One definition of each contract. Every model forbids unknown fields so that a
payload that does not match names the offending field when validated.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

CONTRACT_VERSION = 1


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VideoInfo(Contract):
    """What probing a video found, before any frame is decoded for real."""

    version: int = CONTRACT_VERSION
    path: str
    container: str = Field(description="container format, or 'annexb'/'y4m'/'rawyuv'")
    codec: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    frames: int = Field(ge=0, description="frames counted by decoding (exact)")
    fps: float = Field(gt=0)
    fps_source: str = Field(description="where fps came from: 'stream', 'y4m header', 'assumed (--fps)', ...")
    pix_fmt: str
    bit_depth: int
    rotation: int = Field(default=0, description="display rotation in degrees from metadata")
    duration_s: float = Field(ge=0)
    size_bytes: int = Field(ge=0)
    variable_frame_rate: bool = False
    notes: list[str] = Field(default_factory=list)


class Targets(Contract):
    """The seed's targets; every experiment and anchor point is scored against them."""

    max_kbps: float = Field(default=1000.0, gt=0)
    min_psnr_yuv: float = Field(default=35.0)
    min_ssim: float = Field(default=0.95, ge=0, le=1)
    max_tops_per_frame: float = Field(default=1.33, gt=0, description="40 TOPS edge chip at 30 fps")

    def met_by(self, kbps: float, psnr_yuv: float, ssim: float, tops_per_frame: float | None = None) -> bool:
        decoder_ok = tops_per_frame is None or tops_per_frame <= self.max_tops_per_frame
        return kbps <= self.max_kbps and psnr_yuv >= self.min_psnr_yuv and ssim >= self.min_ssim and decoder_ok


class Quality(Contract):
    """Distortion of a decoded clip against its reference (definitions in `codec_lab.metrics`)."""

    frames: int = Field(ge=1)
    psnr_y: float
    psnr_u: float
    psnr_v: float
    psnr_yuv: float = Field(description="mean over frames of (6*Y + U + V)/8, each per-frame PSNR capped")
    ssim: float = Field(description="scikit-image SSIM on Y, data_range=255, mean over frames")
    ms_ssim: float | None = Field(default=None, description="pytorch-msssim on Y; None when the frame is too small")


class RDPoint(Contract):
    """One encode of one clip at one setting: the row every bench, run and report reads."""

    codec: str
    settings: dict[str, str | int | float | bool]
    frames: int = Field(ge=1)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fps: float = Field(gt=0)
    payload_bytes: int = Field(ge=0, description="bytes of coded video data (the bitrate is computed from these)")
    file_bytes: int = Field(ge=0, description="bytes of the file on disk; file_bytes - payload_bytes is container overhead")
    kbps: float
    bpp: float = Field(description="bits per pixel per frame, from payload_bytes")
    quality: Quality
    encode_seconds: float
    decode_seconds: float
    mac_per_pixel: float | None = Field(default=None, description="decoder MACs per pixel (neural codecs)")
    tops_per_frame: float | None = Field(default=None, description="decoder tera-ops (2 x MACs) per frame")
    estimated_kbps: float | None = Field(default=None, description="entropy model's own estimate, a check only")
    meets_target: bool
    path: str = Field(description="the encoded file, kept so anyone can check it")
