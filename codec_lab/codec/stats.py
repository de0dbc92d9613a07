"""Where a .clv file's bytes go: its sections, each network's weights, every frame's latents and motion vectors.

The per-frame latent figures are the ideal code lengths under the file's own (integer) tables,
computed while decoding; the range coder's section is within a few bytes of their sum. A latent
slice shared by several frames (temporal stride > 1) is counted in the first frame it serves.
With the source clip, every frame's PSNR is measured on the decoded frames as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec_lab.codec import bitstream, motion
from codec_lab.codec.decoder import decode_bytes
from codec_lab.codec.model import (
    arm_param_shapes,
    config_from_header,
    synth_param_shapes,
)
from codec_lab.metrics import bitrate_kbps, check_comparable, psnr, psnr_yuv
from codec_lab.video.frames import Clip


@dataclass(frozen=True)
class FrameStats:
    index: int
    kind: str  # "I" (from its latents alone), "P" (corrects its prediction from its reference frame) or "B" (from two)
    latent_bytes: float
    motion_bytes: float  # its motion vectors and their two scale ids (0 for an intra frame, or without motion)
    psnr_y: float | None = None
    psnr_yuv: float | None = None
    reference: str | None = None  # the frame a P-frame is predicted from ("8"), or a B-frame's two ("0,8")
    mirrored: bool = False  # a B-frame whose second field is coded on its first, mirrored (format version 11)


@dataclass(frozen=True)
class FileStats:
    path: str
    file_bytes: int
    kbps: float
    header_bytes: int
    framing_bytes: int  # magic, version, section lengths, CRC
    weight_bytes: dict[str, float]  # per network: synthesis, inter synthesis, ARM (ideal bits / 8)
    weights_section: int
    motion_section: int
    latent_section: int
    frames: list[FrameStats]

    def lines(self) -> list[str]:
        total = self.file_bytes

        def share(n: float) -> str:
            return f"{n:8.0f} B {100 * n / total:5.1f}%"

        out = [
            f"{self.path}: {total} bytes, {self.kbps:.1f} kbps, {len(self.frames)} frames",
            f"  header + framing {share(self.header_bytes + self.framing_bytes)}",
            f"  weights          {share(self.weights_section)}  ("
            + ", ".join(f"{name} {n:.0f} B" for name, n in self.weight_bytes.items()) + ")",
            f"  motion vectors   {share(self.motion_section)}",
            f"  latents          {share(self.latent_section)}",
            "",
            "frame kind   ref latent bytes motion bytes" + ("  PSNR-Y  PSNR-YUV" if self.frames and self.frames[0].psnr_y is not None else ""),
        ]
        for f in self.frames:
            quality = f"  {f.psnr_y:6.2f}  {f.psnr_yuv:8.2f}" if f.psnr_y is not None else ""
            ref = "" if f.reference is None else f.reference
            out.append(f"{f.index:5d}  {f.kind:<3}{ref:>6}{f.latent_bytes:13.0f}{f.motion_bytes:12.0f}{'m' if f.mirrored else ' '}{quality}".rstrip())
        if any(f.mirrored for f in self.frames):
            out.append("m: the B-frame's second motion field is coded on its first, mirrored")
        return out


def file_stats(path: str | Path, source: Clip | None = None, *, max_pixels: int = bitstream.DEFAULT_MAX_PIXELS) -> FileStats:
    """Decode `path` and account for its bytes; with `source` (its first frames are compared), per-frame PSNR."""
    data = bitstream.read_file(path)
    slices: list[tuple[int, int, float]] = []
    with bitstream.naming(path):
        decoded = decode_bytes(data, max_pixels=max_pixels, slice_bits=slices)
    parsed = bitstream.parse_file(data)
    header = parsed.header
    cfg = config_from_header(header)
    per_frame = np.zeros(header.frames)
    for level, n, bits in slices:
        per_frame[n * cfg.temporal_strides[level]] += bits
    motion_bits = dict.fromkeys(range(header.frames), 0.0)
    mirrored = set()
    predictions = cfg.predictions(header.frames)
    if cfg.motion_block and predictions:
        bits: list[float] = []
        motion.decode_fields(parsed.motion, len(predictions), motion.grid(*header.padded_size, cfg.motion_block), bits, cfg.motion_depth,
                            motion.readable_predictions(predictions, parsed.version))
        for (t, _), b, mode in zip(predictions, bits, motion.field_modes(parsed.motion, len(predictions), cfg.motion_depth)):
            motion_bits[t] += b
            if mode:
                mirrored.add(t)
    quality = frame_quality(source, decoded.clip) if source is not None else [(None, None)] * header.frames
    refs = [cfg.references(t, header.frames) for t in range(header.frames)]
    frames = [FrameStats(t, "IPB"[len(refs[t])], per_frame[t] / 8, motion_bits[t] / 8, *quality[t],
                         reference=",".join(map(str, refs[t])) or None, mirrored=t in mirrored) for t in range(header.frames)]
    header_bytes = int.from_bytes(data[5:7], "big")  # after the magic and the version (parse_file checked it)
    sections = len(parsed.weights) + len(parsed.motion) + len(parsed.latents)
    return FileStats(
        path=str(path), file_bytes=len(data), kbps=bitrate_kbps(len(data), header.frames, float(header.fps)),
        header_bytes=header_bytes, framing_bytes=len(data) - header_bytes - sections, weight_bytes=_network_bytes(parsed, cfg),
        weights_section=len(parsed.weights), motion_section=len(parsed.motion), latent_section=len(parsed.latents), frames=frames,
    )


def _network_bytes(parsed: bitstream.Parsed, cfg) -> dict[str, float]:
    shapes = {"synthesis": synth_param_shapes(cfg), "inter synthesis": synth_param_shapes(cfg, inter=True), "ARM": arm_param_shapes(cfg)}
    ints, _ = bitstream.unpack_weights(parsed.weights, [s for group in shapes.values() for s in group], parsed.version)
    no_coarsening = bitstream.COARSEN_BITS if parsed.version < 4 else 0  # a field weight_bits counts, added in version 4
    out, start = {}, 0
    for name, group in shapes.items():
        if group:
            out[name] = sum(bitstream.weight_bits(t) - no_coarsening for t in ints[start : start + len(group)]) / 8
        start += len(group)
    return out


def frame_quality(source: Clip, decoded: Clip) -> list[tuple[float, float]]:
    source = source.head(decoded.num_frames)
    check_comparable(source, decoded)
    out = []
    for t in range(decoded.num_frames):
        y, u, v = (psnr(getattr(source, p)[t], getattr(decoded, p)[t]) for p in ("y", "u", "v"))
        out.append((y, psnr_yuv(y, u, v)))
    return out
