"""`Clip`: the one in-memory form of a video that every codec and metric works on.

Frames are 8-bit 4:2:0 planes kept at the source's own size. For odd widths or
heights the chroma planes are ceil(W/2) x ceil(H/2), as FFmpeg's yuv420p does;
codecs that need even sizes pad by edge replication and crop back (see
`Clip.padded`), so metrics are always computed on the original size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


def chroma_shape(height: int, width: int) -> tuple[int, int]:
    return (height + 1) // 2, (width + 1) // 2


@dataclass(frozen=True, eq=False)
class Clip:
    y: np.ndarray  # (T, H, W) uint8
    u: np.ndarray  # (T, ceil(H/2), ceil(W/2)) uint8
    v: np.ndarray  # (T, ceil(H/2), ceil(W/2)) uint8
    fps: Fraction
    notes: tuple[str, ...] = field(default=())  # what the reader had to decide (converted, padded, ...)

    def __post_init__(self) -> None:
        for name in ("y", "u", "v"):
            plane = getattr(self, name)
            if plane.dtype != np.uint8 or plane.ndim != 3:
                raise ValueError(f"plane {name} must be uint8 (T, H, W), got {plane.dtype} {plane.shape}")
        t, h, w = self.y.shape
        expected = (t, *chroma_shape(h, w))
        if self.u.shape != expected or self.v.shape != expected:
            raise ValueError(f"chroma planes must be {expected}, got {self.u.shape} and {self.v.shape}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")

    @property
    def num_frames(self) -> int:
        return int(self.y.shape[0])

    @property
    def height(self) -> int:
        return int(self.y.shape[1])

    @property
    def width(self) -> int:
        return int(self.y.shape[2])

    @property
    def pixels_per_frame(self) -> int:
        return self.width * self.height

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.y, self.u, self.v

    def head(self, n: int) -> Clip:
        """The first n frames (all of them if the clip is shorter)."""
        return Clip(self.y[:n], self.u[:n], self.v[:n], self.fps, self.notes)

    def padded(self, multiple: int = 2) -> Clip:
        """Edge-replicated to a size that is a multiple of `multiple` (chroma follows)."""
        h, w = self.height, self.width
        ph, pw = -h % multiple, -w % multiple
        if ph == 0 and pw == 0:
            return self
        y = np.pad(self.y, ((0, 0), (0, ph), (0, pw)), mode="edge")
        ch, cw = chroma_shape(h + ph, w + pw)
        u = np.pad(self.u, ((0, 0), (0, ch - self.u.shape[1]), (0, cw - self.u.shape[2])), mode="edge")
        v = np.pad(self.v, ((0, 0), (0, ch - self.v.shape[1]), (0, cw - self.v.shape[2])), mode="edge")
        return Clip(y, u, v, self.fps, self.notes)

    def cropped(self, height: int, width: int) -> Clip:
        """Back to a (smaller) original size after a codec that worked on a padded one."""
        ch, cw = chroma_shape(height, width)
        return Clip(
            np.ascontiguousarray(self.y[:, :height, :width]),
            np.ascontiguousarray(self.u[:, :ch, :cw]),
            np.ascontiguousarray(self.v[:, :ch, :cw]),
            self.fps,
            self.notes,
        )

    def with_notes(self, *notes: str) -> Clip:
        return Clip(self.y, self.u, self.v, self.fps, self.notes + notes)

    @staticmethod
    def concat(frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]], fps: Fraction, notes: tuple[str, ...] = ()) -> Clip:
        ys, us, vs = zip(*frames)
        return Clip(np.stack(ys), np.stack(us), np.stack(vs), fps, notes)
