"""Reading and writing video: every input becomes a `Clip` of 8-bit 4:2:0 planes."""

from codec_lab.video.frames import Clip
from codec_lab.video.reader import parse_size, probe, read_clip
from codec_lab.video.writer import write_clip, write_y4m

__all__ = ["Clip", "parse_size", "probe", "read_clip", "write_clip", "write_y4m"]
