"""Moving 8-bit 4:2:0 planes between numpy and PyAV frames, without copies of layout logic elsewhere.

Pixel formats are turned into 8-bit 4:2:0 here, with a note saying what was done:
- yuv420p and yuvj420p (full range) are taken as they are: the planes are the
  signal, and swscale would rescale a full-range clip's values.
- 10-bit (and 9/12-bit) 4:2:0 is rounded to 8 bits exactly: (x + 2^(d-9)) >> (d-8), clipped.
- Any other format (4:2:2, 4:4:4, RGB, gray, ...) is converted by swscale to yuv420p.
"""

from __future__ import annotations

import av
import numpy as np

PASSTHROUGH_FORMATS = {"yuv420p", "yuvj420p"}
HIGH_BIT_DEPTH_420 = {"yuv420p9le": 9, "yuv420p10le": 10, "yuv420p12le": 12}


def plane_array(plane, dtype=np.uint8) -> np.ndarray:
    """A frame plane as (height, width), dropping the row padding (`line_size`)."""
    itemsize = np.dtype(dtype).itemsize
    rows = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // itemsize)
    return rows[:, : plane.width]


def frame_to_planes(frame: av.VideoFrame) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], str | None]:
    """(Y, U, V) uint8 planes of a decoded frame, and a note when a conversion happened."""
    name = frame.format.name
    if name in PASSTHROUGH_FORMATS:
        return tuple(plane_array(p).copy() for p in frame.planes[:3]), None  # type: ignore[return-value]
    if name in HIGH_BIT_DEPTH_420:
        depth = HIGH_BIT_DEPTH_420[name]
        shift = depth - 8
        planes = []
        for p in frame.planes[:3]:
            wide = plane_array(p, np.dtype("<u2")).astype(np.uint32)
            planes.append(np.clip((wide + (1 << (shift - 1))) >> shift, 0, 255).astype(np.uint8))
        return tuple(planes), f"{depth}-bit {name} rounded to 8 bits"  # type: ignore[return-value]
    converted = frame.reformat(format="yuv420p")
    return tuple(plane_array(p).copy() for p in converted.planes[:3]), f"{name} converted to yuv420p by swscale"  # type: ignore[return-value]


def planes_to_frame(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> av.VideoFrame:
    """A yuv420p PyAV frame holding these planes (any size, odd included)."""
    height, width = y.shape
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, data in zip(frame.planes, (y, u, v)):
        plane_array(plane)[...] = data
    return frame
