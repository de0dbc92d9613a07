"""Write a `Clip` losslessly: .y4m (yuv4mpegpipe) or, for viewing, .mkv/.mp4 with lossless x264."""

from __future__ import annotations

import os
from pathlib import Path

import av

from codec_lab.errors import VideoInputError
from codec_lab.video.frames import Clip
from codec_lab.video.planes import planes_to_frame


def write_clip(clip: Clip, path: str | os.PathLike) -> Path:
    """.y4m keeps the exact planes at any size; .mp4/.mkv use x264 with qp=0 (lossless, even sizes only)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".y4m":
        container = _open_for_writing(path, format="yuv4mpegpipe")
        stream = container.add_stream("rawvideo", rate=clip.fps)
    elif suffix in (".mp4", ".mkv"):
        if clip.width % 2 or clip.height % 2:
            raise VideoInputError(f"{path}: lossless x264 needs an even size, the clip is {clip.width}x{clip.height}; write .y4m instead")
        container = _open_for_writing(path)
        stream = container.add_stream("libx264", rate=clip.fps, options={"qp": "0", "preset": "veryfast"})
    else:
        raise VideoInputError(f"{path}: write .y4m (exact) or .mp4/.mkv (lossless x264)")
    stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, "yuv420p"
    try:
        with container:
            for index in range(clip.num_frames):
                frame = planes_to_frame(clip.y[index], clip.u[index], clip.v[index])
                frame.pts = index
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    except (av.error.FFmpegError, OSError) as exc:
        path.unlink(missing_ok=True)
        raise VideoInputError(f"{path}: cannot be written ({exc}); check the folder exists and is writable") from None
    return path


def _open_for_writing(path: Path, **kwargs):
    try:
        return av.open(str(path), "w", **kwargs)
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoInputError(f"{path}: cannot be written ({exc}); check the folder exists and is writable") from None


def write_y4m(clip: Clip, path: str | os.PathLike) -> Path:
    if Path(path).suffix.lower() != ".y4m":
        raise VideoInputError(f"{path}: expected a .y4m path")
    return write_clip(clip, path)
