"""Read any video we accept into a `Clip` of 8-bit 4:2:0 planes, or probe what it holds.

Inputs: everything PyAV demuxes (mp4, mkv, webm, ivf, mpeg, ogv, avi, y4m, ...),
raw Annex-B H.264/H.265 streams (.264/.h264/.265/.hevc; no timing inside, so
fps comes from `fps=` or is assumed 25 and said so), and headerless .yuv
(size from `size=` or a `WxH` in the file name; yuv420p or yuv420p10le).

Decisions, each recorded in `Clip.notes` / `VideoInfo.notes`:
- Odd sizes are kept as they are (chroma is ceil(W/2) x ceil(H/2)); codecs
  that need even sizes pad and crop back, so metrics use the original size.
- 10-bit 4:2:0 is rounded to 8 bits; other formats (4:4:4, 4:2:2, RGB) are
  converted to yuv420p by swscale. yuvj420p (full range) is kept as it is.
- Rotation metadata is reported, not applied: every codec here works on the
  coded orientation, and the metrics compare coded frames.
- Variable frame rate is reported; frames are used in decode order at the
  stream's average rate.
- A size change mid-stream is refused, naming the frame.
- A stream that breaks after some frames keeps the frames before the break, with a note.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from codec_lab.contracts import VideoInfo
from codec_lab.errors import VideoInputError
from codec_lab.video.frames import Clip, chroma_shape
from codec_lab.video.planes import HIGH_BIT_DEPTH_420, frame_to_planes

ANNEXB_FORMATS = {".264": "h264", ".h264": "h264", ".avc": "h264", ".265": "hevc", ".h265": "hevc", ".hevc": "hevc"}
RAW_YUV_SUFFIXES = {".yuv"}
RAW_YUV_FORMATS = {"yuv420p": 8, **HIGH_BIT_DEPTH_420}
DEFAULT_FPS = Fraction(25)
# FFmpeg will "decode" text files as ANSI art and single pictures as one-frame videos: not videos here.
TEXT_CODECS = {"ansi", "bintext", "xbin", "idf", "tty"}
# A clip is held in memory whole; past this, ask for fewer frames instead of swapping.
MAX_CLIP_BYTES = 8 * 1024**3

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class _Source:
    """An opened input: what it is, and a generator of its frames as planes."""

    path: Path
    container: str
    codec: str
    pix_fmt: str
    fps: Fraction
    fps_source: str
    rotation: int = 0
    notes: list[str] = field(default_factory=list)
    # (frame shape (H, W), a function converting the frame to (planes, note), pts): conversion on demand
    frames: Iterator[tuple[tuple[int, int], Callable[[], tuple[Planes, str | None]], int | None]] = iter(())


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match[1]) == 0 or int(match[2]) == 0:
        raise VideoInputError(f"size {text!r} is not WIDTHxHEIGHT (for example 352x288)")
    return int(match[1]), int(match[2])


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoInputError(f"{path}: no such file")
    if not path.is_file():
        raise VideoInputError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise VideoInputError(f"{path}: the file is empty (0 bytes); was the upload or copy interrupted?")


def _open_raw_yuv(path: Path, fps: Fraction | None, size: tuple[int, int] | None, pix_fmt: str | None) -> _Source:
    notes = []
    if size is None:
        match = re.search(r"(\d{2,5})x(\d{2,5})", path.name)
        if not match:
            raise VideoInputError(f"{path}: a headerless .yuv file needs its size: pass --size WIDTHxHEIGHT")
        size = (int(match[1]), int(match[2]))
        notes.append(f"size {size[0]}x{size[1]} taken from the file name")
    if pix_fmt is None:
        pix_fmt = "yuv420p10le" if re.search(r"10le|10bit", path.name, re.I) else "yuv420p"
        notes.append(f"pixel format {pix_fmt} assumed (pass --pix-fmt to change)")
    if pix_fmt not in RAW_YUV_FORMATS:
        raise VideoInputError(f"{path}: raw pixel format {pix_fmt!r} is not supported; use one of {sorted(RAW_YUV_FORMATS)}")
    width, height = size
    depth = RAW_YUV_FORMATS[pix_fmt]
    dtype = np.dtype(np.uint8) if depth == 8 else np.dtype("<u2")
    ch, cw = chroma_shape(height, width)
    frame_items = width * height + 2 * ch * cw
    frame_bytes = frame_items * dtype.itemsize
    total = path.stat().st_size
    count, rest = divmod(total, frame_bytes)
    if count == 0:
        raise VideoInputError(f"{path}: {total} bytes is less than one {width}x{height} {pix_fmt} frame ({frame_bytes} bytes); check --size and --pix-fmt")
    if rest:
        notes.append(f"{rest} trailing bytes after {count} whole frames ignored (wrong --size or a truncated file?)")
    if fps is None:
        notes.append(f"no timing in a raw .yuv file: {DEFAULT_FPS} fps assumed (pass --fps to change)")

    data = np.memmap(path, dtype=dtype, mode="r", shape=(count, frame_items))

    def planes(i: int) -> tuple[Planes, str | None]:
        flat = np.asarray(data[i])
        y = flat[: width * height].reshape(height, width)
        u = flat[width * height : width * height + ch * cw].reshape(ch, cw)
        v = flat[width * height + ch * cw :].reshape(ch, cw)
        if depth == 8:
            return (y.copy(), u.copy(), v.copy()), None
        shift = depth - 8
        rounded = [np.clip((p.astype(np.uint32) + (1 << (shift - 1))) >> shift, 0, 255).astype(np.uint8) for p in (y, u, v)]
        return tuple(rounded), f"{depth}-bit {pix_fmt} rounded to 8 bits"

    def frames():
        for i in range(count):
            yield (height, width), (lambda i=i: planes(i)), None

    return _Source(
        path=path, container="rawyuv", codec="rawvideo", pix_fmt=pix_fmt,
        fps=fps or DEFAULT_FPS, fps_source="given (--fps)" if fps else "assumed",
        notes=notes, frames=frames(),
    )


def _av_error(path: Path, exc: Exception) -> VideoInputError:
    return VideoInputError(
        f"{path}: cannot be read as video ({exc}); it may be truncated, corrupt or not a video. "
        "Accepted: mp4, mkv, webm, ivf, avi, mpeg, ogv, y4m, raw .264/.265, .yuv with --size"
    )


def _open_with_pyav(path: Path, fps: Fraction | None) -> _Source:
    forced_format = ANNEXB_FORMATS.get(path.suffix.lower())
    try:
        container = av.open(str(path), format=forced_format)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise _av_error(path, exc) from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise VideoInputError(f"{path}: holds no video stream (found: {', '.join(kinds)}); give a video file")
    stream = container.streams.video[0]
    demuxer = container.format.name
    if stream.codec_context.name in TEXT_CODECS or demuxer == "tty":
        container.close()
        raise VideoInputError(f"{path}: is a text file, not a video; give a video file")
    if demuxer == "image2" or demuxer.endswith("_pipe"):
        container.close()
        raise VideoInputError(f"{path}: is a still image ({demuxer}), not a video; give a video file")
    notes: list[str] = []
    if forced_format:
        rate, fps_source = fps or DEFAULT_FPS, "given (--fps)" if fps else "assumed"
        if not fps:
            notes.append(f"raw {forced_format} stream carries no timing: {DEFAULT_FPS} fps assumed (pass --fps to change)")
    elif fps:
        rate, fps_source = fps, "given (--fps)"
    elif stream.average_rate and stream.average_rate > 0:
        rate, fps_source = Fraction(stream.average_rate), "stream"
    elif stream.guessed_rate and stream.guessed_rate > 0:
        rate, fps_source = Fraction(stream.guessed_rate), "guessed by FFmpeg"
    else:
        rate, fps_source = DEFAULT_FPS, "assumed"
        notes.append(f"stream has no frame rate: {DEFAULT_FPS} fps assumed (pass --fps to change)")
    source = _Source(
        path=path,
        container="annexb" if forced_format else container.format.name,
        codec=stream.codec_context.name,
        pix_fmt=stream.codec_context.pix_fmt or "unknown",
        fps=rate,
        fps_source=fps_source,
        notes=notes,
    )

    def frames():
        decoded = 0
        try:
            for frame in container.decode(stream):
                if decoded == 0:
                    source.pix_fmt = frame.format.name
                    source.rotation = int(getattr(frame, "rotation", 0) or 0)
                decoded += 1
                yield (frame.height, frame.width), (lambda frame=frame: frame_to_planes(frame)), frame.pts
        except (av.error.FFmpegError, ValueError) as exc:
            if decoded == 0:
                raise _av_error(path, exc) from None
            source.notes.append(f"decoding stopped after {decoded} frames: {exc} (truncated or damaged file?)")
        finally:
            container.close()

    source.frames = frames()
    return source


def _open(path: str | os.PathLike, fps: Fraction | float | None, size: tuple[int, int] | None, pix_fmt: str | None) -> _Source:
    path = Path(path)
    _check_file(path)
    fps = Fraction(fps).limit_denominator(1001) if fps else None
    if fps is not None and fps <= 0:
        raise VideoInputError(f"fps must be positive, got {fps}")
    if path.suffix.lower() in RAW_YUV_SUFFIXES:
        return _open_raw_yuv(path, fps, size, pix_fmt)
    return _open_with_pyav(path, fps)


def _frames_checked(source: _Source, limit: int | None):
    """The source's frames (shape, converter, pts) up to `limit`, refusing a size change."""
    first_shape = None
    for index, (shape, convert, pts) in enumerate(source.frames):
        if limit is not None and index >= limit:
            source.frames.close()
            return
        if first_shape is None:
            first_shape = shape
        elif shape != first_shape:
            source.frames.close()
            raise VideoInputError(
                f"{source.path}: frame {index} is {shape[1]}x{shape[0]} but the video started at "
                f"{first_shape[1]}x{first_shape[0]}; a size change mid-stream is not supported: "
                f"use --frames {index} or re-encode the clip at one size"
            )
        yield shape, convert, pts


def read_clip(
    path: str | os.PathLike,
    *,
    frames: int | None = None,
    fps: Fraction | float | None = None,
    size: tuple[int, int] | None = None,
    pix_fmt: str | None = None,
) -> Clip:
    """Decode the first `frames` frames (all when None) as 8-bit 4:2:0. Same input, same planes, every time."""
    if frames is not None and frames < 1:
        raise VideoInputError(f"--frames must be at least 1 (got {frames}); leave it out to use every frame")
    source = _open(path, fps, size, pix_fmt)
    collected: list[Planes] = []
    budget_frames = None
    for _shape, convert, _pts in _frames_checked(source, frames):
        try:
            planes, note = convert()
        except (av.error.FFmpegError, ValueError) as exc:
            source.frames.close()
            raise _av_error(source.path, exc) from None
        if note and note not in source.notes:
            source.notes.append(note)
        if budget_frames is None:
            frame_bytes = sum(p.nbytes for p in planes)
            budget_frames = MAX_CLIP_BYTES // frame_bytes
        if len(collected) >= budget_frames:
            source.frames.close()
            raise VideoInputError(
                f"{source.path}: more than {budget_frames} frames of this size would not fit in memory; pass --frames N"
            )
        collected.append(planes)
    if not collected:
        raise VideoInputError(f"{source.path}: no frame could be decoded; the file holds a video stream but no pictures")
    if frames is not None and len(collected) < frames:
        source.notes.append(f"asked for {frames} frames but the clip has {len(collected)}: using {len(collected)}")
    if source.rotation:
        source.notes.append(f"rotation metadata of {source.rotation} degrees reported, not applied")
    return Clip.concat(collected, source.fps, tuple(source.notes))


def probe(
    path: str | os.PathLike,
    *,
    fps: Fraction | float | None = None,
    size: tuple[int, int] | None = None,
    pix_fmt: str | None = None,
    frames: int | None = None,
) -> VideoInfo:
    """What the file holds. Frames are decoded (not converted) so the count is exact; with
    `frames`, decoding stops there and the count is 'at least' (said in the notes)."""
    source = _open(path, fps, size, pix_fmt)
    count, first_shape, pts_list = 0, None, []
    for shape, _convert, pts in _frames_checked(source, frames):
        count += 1
        first_shape = first_shape or shape
        if pts is not None:
            pts_list.append(pts)
    if count == 0:
        raise VideoInputError(f"{source.path}: no frame could be decoded; the file holds a video stream but no pictures")
    if frames is not None and count == frames:
        source.notes.append(f"probed the first {frames} frames only: the file may hold more")
    steps = np.diff(np.sort(np.asarray(pts_list, dtype=np.int64))) if len(pts_list) > 2 else np.array([])
    vfr = bool(steps.size and (steps.max() - steps.min()) > max(1, int(0.01 * steps.mean())))
    if vfr:
        source.notes.append("variable frame rate: frames are used in decode order at the average rate")
    bit_depth = RAW_YUV_FORMATS.get(source.pix_fmt, _bit_depth(source.pix_fmt))
    return VideoInfo(
        path=str(source.path),
        container=source.container,
        codec=source.codec,
        width=int(first_shape[1]),
        height=int(first_shape[0]),
        frames=count,
        fps=float(source.fps),
        fps_source=source.fps_source,
        pix_fmt=source.pix_fmt,
        bit_depth=bit_depth,
        rotation=source.rotation,
        duration_s=count / float(source.fps),
        size_bytes=source.path.stat().st_size,
        variable_frame_rate=vfr,
        notes=source.notes,
    )


def _bit_depth(pix_fmt: str) -> int:
    try:
        return int(av.VideoFormat(pix_fmt).components[0].bits)
    except (ValueError, av.error.FFmpegError, IndexError):
        return 8
