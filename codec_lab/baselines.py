"""Classical anchors through PyAV: x264 and x265 (preset medium), SVT-AV1 (preset 6).

Two rate modes: constant quality (`crf`) and a target bitrate (`kbps`: two-pass
for x264 and x265 with a stats file, SVT-AV1's one-pass VBR rate control, which
is all FFmpeg's libsvtav1 wrapper offers). Files are MP4 and kept. The payload
is the sum of coded packets plus the decoder configuration (SPS/PPS/VPS or the
AV1 sequence header) held in the extradata; the rest of the file is container
overhead, reported apart. Encoder-settings text (x264's and x265's user-data SEI) is kept
out of the stream: it is not video, and on a short clip it would be a large share of the bits.

Sizes that are odd are padded to even by edge replication (4:2:0 encoders need
even sizes); the bench crops the decoded frames back before measuring.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.bitstream import BitStreamFilterContext

from codec_lab.codecs import Encoded, Settings
from codec_lab.errors import CodecLabError
from codec_lab.video.frames import Clip
from codec_lab.video.planes import frame_to_planes, planes_to_frame

# SVT-AV1 prints its banner at info level unless told otherwise.
os.environ.setdefault("SVT_LOG", "1")
X265_PARAMS = "log-level=error:info=0"


@dataclass(frozen=True)
class ClassicalCodec:
    name: str
    encoder: str  # PyAV / FFmpeg encoder name
    preset: str
    crf_points: tuple[int, ...]  # default sweep, highest quality first
    crf_limits: tuple[int, int]
    crf_step: int
    private_params_key: str | None = None  # "x264-params" / "x265-params"
    # Bytes that are not video and that no decoder needs are kept out of the file: x264's
    # encoder-settings SEI is filtered out, x265's is switched off (info=0), AV1's temporal delimiters go.
    strip_filter: str | None = None
    # H.264/HEVC in MP4 carry their parameter sets only in the extradata (counted as payload);
    # SVT-AV1 also repeats its sequence header in the first packet, so its extradata is not counted twice.
    config_in_extradata: bool = True

    def sweep(self, clip: Clip) -> list[Settings]:
        return [{"crf": crf, "preset": self.preset} for crf in self.crf_points]

    def beyond(self, settings: Settings, direction: str) -> Settings | None:
        if "crf" not in settings:
            return None
        current = int(settings["crf"])
        low, high = self.crf_limits
        crf = max(low, current - self.crf_step) if direction == "higher" else min(high, current + self.crf_step)
        return None if crf == current else {**settings, "crf": crf}

    def encode(self, clip: Clip, settings: Settings, out_stem: Path) -> Encoded:
        path = Path(f"{out_stem}.mp4")
        preset = str(settings.get("preset", self.preset))
        if "kbps" in settings:
            if "keyint" in settings:
                raise CodecLabError(f"{self.name}: keyint is a crf-mode setting; leave it out with a target bitrate")
            kbps = float(settings["kbps"])
            if kbps <= 0:
                raise CodecLabError(f"target bitrate must be positive, got {kbps} kbps")
            return self._encode_bitrate(clip, preset, kbps, path)
        crf = int(settings["crf"])
        if not self.crf_limits[0] <= crf <= self.crf_limits[1]:
            raise CodecLabError(f"{self.name}: crf {crf} is outside {self.crf_limits[0]}..{self.crf_limits[1]}")
        options = {"crf": str(crf), "preset": preset}
        params = [X265_PARAMS] if self.private_params_key == "x265-params" else []
        if "keyint" in settings:  # a fixed intra period (e.g. to match a codec's), no scene-cut keyframes
            keyint = int(settings["keyint"])
            if self.private_params_key is None or keyint < 1:
                raise CodecLabError(f"{self.name}: keyint {settings['keyint']!r} is not supported (x264 and x265 take a keyint of 1 or more)")
            params.append(f"keyint={keyint}:min-keyint={keyint}:scenecut=0")
        if params:
            options[self.private_params_key] = ":".join(params)
        return self._encode_once(clip, options, path, bit_rate=None)

    def _encode_bitrate(self, clip: Clip, preset: str, kbps: float, path: Path) -> Encoded:
        bit_rate = int(kbps * 1000)
        if self.private_params_key is None:  # SVT-AV1: one-pass VBR
            return self._encode_once(clip, {"preset": preset}, path, bit_rate=bit_rate)
        with tempfile.TemporaryDirectory() as tmp:
            stats = Path(tmp) / "stats.log"
            extra = f"{X265_PARAMS}:" if self.private_params_key == "x265-params" else ""
            first = self._encode_once(
                clip, {"preset": preset, self.private_params_key: f"{extra}pass=1:stats={stats}"}, Path(tmp) / "pass1.mp4", bit_rate
            )
            second = self._encode_once(
                clip, {"preset": preset, self.private_params_key: f"{extra}pass=2:stats={stats}"}, path, bit_rate
            )
        return Encoded(second.path, second.payload_bytes, second.file_bytes, first.encode_seconds + second.encode_seconds)

    def _encode_once(self, clip: Clip, options: dict[str, str], path: Path, bit_rate: int | None) -> Encoded:
        padded = clip.padded(2)
        start = time.perf_counter()
        payload = 0
        try:
            with av.open(str(path), "w") as container:
                stream = container.add_stream(self.encoder, rate=clip.fps, options=options)
                stream.width, stream.height, stream.pix_fmt = padded.width, padded.height, "yuv420p"
                if bit_rate:
                    stream.bit_rate = bit_rate
                strip = BitStreamFilterContext(self.strip_filter, stream) if self.strip_filter else None
                for index in range(padded.num_frames + 1):
                    frame = None
                    if index < padded.num_frames:
                        frame = planes_to_frame(padded.y[index], padded.u[index], padded.v[index])
                        frame.pts = index
                    packets = stream.encode(frame)
                    if strip is not None:
                        packets = [out for packet in packets for out in strip.filter(packet)]
                        packets += strip.filter(None) if frame is None else []
                    for packet in packets:
                        packet.stream = stream
                        payload += packet.size
                        container.mux(packet)
                if self.config_in_extradata:
                    payload += len(stream.codec_context.extradata or b"")
        except av.error.FFmpegError as exc:
            raise CodecLabError(f"{self.name} failed to encode with {options}: {exc}") from None
        except OSError as exc:
            raise CodecLabError(f"{path}: cannot write the encoded file ({exc})") from None
        seconds = time.perf_counter() - start
        return Encoded(path=path, payload_bytes=payload, file_bytes=path.stat().st_size, encode_seconds=seconds)

    def decode(self, path: Path) -> Clip:
        frames = []
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = stream.average_rate or Fraction(25)  # the caller measures at the source's rate anyway
            for frame in container.decode(stream):
                frames.append(frame_to_planes(frame)[0])
        if not frames:
            raise CodecLabError(f"{path}: the decoder returned no frames")
        return Clip.concat(frames, fps)


def x264(preset: str = "medium") -> ClassicalCodec:
    return ClassicalCodec("x264", "libx264", preset, (18, 23, 28, 33, 38), (0, 51), 5, "x264-params",
                          strip_filter="filter_units=remove_types=6")


def x265(preset: str = "medium") -> ClassicalCodec:
    return ClassicalCodec("x265", "libx265", preset, (20, 25, 30, 35, 40), (0, 51), 5, "x265-params")


def svt_av1(preset: str | int = 6) -> ClassicalCodec:
    # Temporal delimiters (2 bytes a frame) are dropped: the MP4 muxer drops them too (AV1-in-ISOBMFF),
    # so counting them would bill AV1 for bytes that are not in the file.
    return ClassicalCodec("av1", "libsvtav1", str(preset), (24, 32, 40, 48, 56), (1, 63), 8, None,
                          strip_filter="filter_units=remove_types=2", config_in_extradata=False)
