"""A demo clip that needs no download: a pan over scikit-image's bundled astronaut photograph.

Used by `codec-lab run --demo` and by the tests, at any size (odd ones too).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from codec_lab.video.frames import Clip, chroma_shape


def demo_clip(frames: int = 30, width: int = 176, height: int = 144, fps: Fraction = Fraction(25), step: int = 2) -> Clip:
    """`frames` crops moving `step` pixels down and 1 right per frame, as BT.601 8-bit 4:2:0."""
    from skimage import data
    from skimage.color import rgb2ycbcr

    photo = rgb2ycbcr(data.astronaut()[60:, 100:])  # float, Y in 16..235
    even_h, even_w = height + height % 2, width + width % 2
    if frames * step + even_h > photo.shape[0] or frames + even_w > photo.shape[1]:
        raise ValueError(f"a {width}x{height} pan of {frames} frames does not fit the photograph")
    ch, cw = chroma_shape(height, width)
    ys, us, vs = [], [], []
    for i in range(frames):
        crop = photo[i * step : i * step + even_h, i : i + even_w]
        ys.append(np.clip(np.rint(crop[:height, :width, 0]), 0, 255).astype(np.uint8))
        for channel, out in ((1, us), (2, vs)):
            down = crop[..., channel].reshape(ch, 2, cw, 2).mean(axis=(1, 3))
            out.append(np.clip(np.rint(down), 0, 255).astype(np.uint8))
    return Clip(np.stack(ys), np.stack(us), np.stack(vs), fps)
