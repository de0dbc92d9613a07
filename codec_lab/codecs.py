"""The codecs a bench or a run can sweep, by name, behind one small protocol.

Classical anchors live in `codec_lab.baselines`; the neural strategies register
here by import path so that naming them never imports torch until they are used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from codec_lab.errors import CodecLabError
from codec_lab.video.frames import Clip

Settings = dict[str, str | int | float | bool]


@dataclass(frozen=True)
class Encoded:
    """A file one encode wrote, and what it cost."""

    path: Path
    payload_bytes: int  # coded data the bitrate is computed from
    file_bytes: int  # the file on disk; the difference is container overhead
    encode_seconds: float
    mac_per_pixel: float | None = None  # decoder cost, for neural codecs
    estimated_bits: float | None = None  # an entropy model's own estimate, a check only


class SweepCodec(Protocol):
    """Anything `codec-lab bench` can put on an RD curve."""

    name: str

    def sweep(self, clip: Clip) -> list[Settings]:
        """Settings for the default RD points, highest quality first."""

    def beyond(self, settings: Settings, direction: str) -> Settings | None:
        """The next setting past `settings` towards 'higher' or 'lower' quality, or None at the limit."""

    def encode(self, clip: Clip, settings: Settings, out_stem: Path) -> Encoded:
        """Encode the whole clip to a file named `out_stem` plus the codec's suffix."""

    def decode(self, path: Path) -> Clip:
        """Decode a file this codec wrote (may be larger than the source: callers crop)."""


# name -> "module:factory" (imported on first use)
REGISTRY: dict[str, str] = {
    "x264": "codec_lab.baselines:x264",
    "x265": "codec_lab.baselines:x265",
    "av1": "codec_lab.baselines:svt_av1",
    "semantic_latent": "codec_lab.codec.sweep:SemanticLatentCodec",
}
ALIASES = {"svt-av1": "av1", "svtav1": "av1", "hevc": "x265", "avc": "x264", "h264": "x264", "h265": "x265"}


def get_codec(name: str, **options) -> SweepCodec:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in REGISTRY:
        raise CodecLabError(f"unknown codec {name!r}; choose from {', '.join(REGISTRY)}")
    module_name, factory_name = REGISTRY[key].split(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as exc:
        raise CodecLabError(f"codec {key!r} is not available in this install ({exc})") from None
    return factory(**options)


def parse_codec_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise CodecLabError("--codecs is empty; give a comma-separated list such as x264,x265,av1")
    for name in names:
        if ALIASES.get(name.lower(), name.lower()) not in REGISTRY:
            raise CodecLabError(f"unknown codec {name!r}; choose from {', '.join(REGISTRY)}")
    return [ALIASES.get(n.lower(), n.lower()) for n in names]
