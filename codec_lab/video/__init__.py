"""Reading and writing video: every input becomes a `Clip` of 8-bit 4:2:0 planes."""

from codec_lab.video.frames import Clip

__all__ = ["Clip"]
