"""Motion estimation for `prediction=motion` (encoder only): block matching of each frame on its source predecessor.

Full search of whole-pixel vectors within +-`SEARCH_RANGE`, then a half-pixel
refinement (the 8 neighbours) scored on the decoder's own interpolation. A
block's cost is its luma SAD plus `LAMBDA_SAD` per estimated bit of its vector's
difference from the median predictor, so that the field stays smooth where the
picture gives no reason to change it (a smooth field codes in few bits). The
source, not the decoded, previous frame is searched: the decoded one does not
exist until training ends.
"""

from __future__ import annotations

import numpy as np
import torch

from codec_lab.codec.motion import (
    MV_FRAC,
    compensate,
    field_bits,
    grid,
    median_predictor,
    plane_taps,
)
from codec_lab.metrics import PSNR_YUV_WEIGHTS

SEARCH_RANGE = 16  # luma pixels
LAMBDA_SAD = 16.0  # SAD (8-bit levels summed over a block) per estimated bit of a vector difference


def _vector_bits(diff: np.ndarray) -> np.ndarray:
    """Rough code length of vector differences (..., 2): an exp-Golomb-like 1 + 2 log2(1 + |d|) per component."""
    return (1.0 + 2.0 * np.log2(1.0 + np.abs(diff))).sum(-1)


def _block_sad(pred: np.ndarray, cur: np.ndarray, block: int, by: int, bx: int) -> np.ndarray:
    """(..., H, W) predictions -> (..., by, bx) SAD per block (blocks cut by the edge sum what they hold)."""
    h, w = cur.shape
    diff = np.abs(pred - cur)
    pad = [(0, 0)] * (diff.ndim - 2) + [(0, by * block - h), (0, bx * block - w)]
    diff = np.pad(diff, pad)
    return diff.reshape(*diff.shape[:-2], by, block, bx, block).sum((-3, -1))


def _choose(sad: np.ndarray, candidates: np.ndarray, lam: float) -> np.ndarray:
    """Per block, in raster order, the candidate vector minimising SAD + lam * bits(vector - predictor).

    sad: (n, by, bx); candidates: (n, by, bx, 2) vectors in half pixels."""
    _, by, bx = sad.shape
    field = np.zeros((by, bx, 2), np.int64)
    for i in range(by):
        for j in range(bx):
            cand = candidates[:, i, j]
            cost = sad[:, i, j] + lam * _vector_bits(cand - median_predictor(field, i, j))
            field[i, j] = cand[int(np.argmin(cost))]
    return field


def estimate_field(ref: np.ndarray, cur: np.ndarray, block: int, *, search: int = SEARCH_RANGE, lam: float = LAMBDA_SAD) -> np.ndarray:
    """Vectors (by, bx, 2) in half pixels predicting luma `cur` (H, W) from luma `ref`."""
    h, w = cur.shape
    by, bx = grid(h, w, block)
    ref = ref.astype(np.float32)
    cur = cur.astype(np.float32)
    padded = np.pad(ref, search, mode="edge")  # the decoder clamps reads to the edge: the same values
    offsets = np.arange(-search, search + 1)
    shifts = np.array([(dy, dx) for dy in offsets for dx in offsets])
    sad = np.stack([_block_sad(padded[search + dy : search + dy + h, search + dx : search + dx + w], cur, block, by, bx) for dy, dx in shifts])
    whole = MV_FRAC * shifts[:, None, None, :].repeat(by, 1).repeat(bx, 2)
    field = _choose(sad, whole, lam)

    steps = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    candidates = field[None] + steps[:, None, None, :]
    ref_t = torch.from_numpy(ref.astype(np.float64))
    preds = np.stack([compensate(ref_t, plane_taps(torch.from_numpy(c), block, h, w, 1)).numpy() for c in candidates])
    return _choose(_block_sad(preds, cur, block, by, bx), candidates, lam)


def estimate_motion(y: np.ndarray, block: int, frames: list[int], **kwargs) -> list[np.ndarray]:
    """The fields of the predicted `frames` of luma `y` (T, H, W), each searched on the source frame before it."""
    return [estimate_field(y[t - 1], y[t], block, **kwargs) for t in frames]


def prediction_cost(y: np.ndarray, fields: list[np.ndarray], block: int, lmbda: float, frames: list[int]) -> float:
    """D + lmbda * R of the motion alone, in the training loss' units: the luma MSE of the
    motion-compensated source frames (weighted as in the loss) plus the fields' bits per pixel."""
    t, h, w = y.shape
    mse = 0.0
    for k, field in zip(frames, fields):
        pred = compensate(torch.from_numpy(y[k - 1].astype(np.float64)), plane_taps(torch.from_numpy(field), block, h, w, 1)).numpy()
        mse += float(np.mean(((pred - y[k]) / 255.0) ** 2)) / t
    return PSNR_YUV_WEIGHTS[0] / sum(PSNR_YUV_WEIGHTS) * mse + lmbda * field_bits(fields) / (t * h * w)


def choose_motion(y: np.ndarray, blocks: tuple[int, ...], lmbda: float, frames: list[int],
                  searched: dict[int, list[np.ndarray]] | None = None) -> tuple[int, list[np.ndarray]]:
    """The block size (and the fields of the predicted `frames`) of least `prediction_cost`: small
    blocks follow motion better, large ones cost fewer bits, which matters more the lower the rate
    (the larger lmbda). searched: the fields of earlier calls on the same `y` and `frames`, by block
    size, which it fills (the search itself does not depend on lmbda)."""
    searched = {} if searched is None else searched
    best = None
    for block in blocks:
        if block not in searched:
            searched[block] = estimate_motion(y, block, frames)
        fields = searched[block]
        cost = prediction_cost(y, fields, block, lmbda, frames)
        if best is None or cost < best[0]:
            best = (cost, block, fields)
    return best[1], best[2]
