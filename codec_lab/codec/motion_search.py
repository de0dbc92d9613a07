"""Motion estimation for `prediction=motion` (encoder only): block matching of each frame on its source reference.

Full search of whole-pixel vectors within +-`SEARCH_RANGE` (on frames over
`COARSE_PIXELS`: coarse to fine, a full search on frames 4x smaller, then +-2
pixels around each vector at full size), then a half-pixel refinement (the 8
neighbours) and, with sharp interpolation, a quarter-pixel one, scored on the
decoder's own interpolation. A
block's cost is its luma SAD plus a smoothness (SAD per bit: `LAMBDA_SAD`, or
each of `SMOOTHNESS`) per estimated bit of its vector's difference from the
median predictor, so that the field stays smooth where the picture gives no
reason to change it (a smooth field codes in few bits). The source, not the
decoded, reference frame is searched: the decoded one does not exist until
training ends.
"""

from __future__ import annotations

import numpy as np
import torch

from codec_lab.codec import entropy
from codec_lab.codec.model import bi_mean
from codec_lab.codec.motion import (
    MV_FRAC,
    cheaper_base,
    children,
    compensate_source,
    field_bits,
    grid,
    leaf_predictor,
    median_predictors,
    mirrored,
    plane_taps,
    predict,
    sharp_phases,
    vector_units,
)
from codec_lab.metrics import PSNR_YUV_WEIGHTS

MIN_BLOCK = 4  # the smallest block a quadtree splits down to
SEARCH_RANGE = 16  # luma pixels, between neighbouring frames
FAR_SEARCH_RANGE = 28  # ... and between frames further apart (key prediction); under WHOLE_LIMIT (large frames: +-31 for both)
LAMBDA_SAD = 16.0  # SAD (8-bit levels summed over a block) per estimated bit of a vector difference
# The smoothness candidates (LAMBDA_SAD values) choose_motion weighs, with the block sizes, by the
# codec's lambda, frame by frame (per_frame_smoothness): Foreman QCIF 16x16, 48 instead of 16: 36%
# fewer motion bytes for 0.07 dB of prediction.
SMOOTHNESS = (16.0, 48.0)
# The share of a prediction error that prediction_cost counts as distortion: the inter latents
# correct the rest, at a price below lambda x its MSE. Foreman 30 frames, lambda 2e-3: at 1 (the
# whole error) 8x8 vectors, 3,498 B, 28% of the file; at 0.5 16x16, 854 B, and +0.3 dB at equal
# rate (docs/codec.md, session 9).
PREDICTION_ERROR_KEPT = 0.5
COARSE_PIXELS = 400_000  # frames larger than this (~730x548) are searched coarse to fine
COARSE = 4  # ... on frames this many times smaller first
REFINE = 2  # ... then within +-REFINE whole pixels of the coarse vector, at full size
# Whole-pixel vectors stay within +-WHOLE_LIMIT: with the half-pixel step that keeps |v| <= 63 half
# pixels, so a difference from the median predictor stays codable (<= entropy.RMAX). (+-34 pixels
# reached a difference of 136 on a scene cut.) Quarter-pixel vectors (sharp): +-15 pixels.
def whole_limit(sharp: bool = False) -> int:
    """The largest whole-pixel vector component the search keeps (WHOLE_LIMIT in half pixels)."""
    return entropy.RMAX // (2 * vector_units(sharp))


WHOLE_LIMIT = whole_limit()


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


def _choose(sad: np.ndarray, candidates: np.ndarray, lam: float, base: np.ndarray | None = None) -> np.ndarray:
    """Per block, the candidate vector minimising SAD + lam * bits(vector - predictor), the predictor
    being the median of blocks chosen before it in raster order (left, top, top-right or top-left).

    Blocks on one wavefront (2i + j constant) find all those neighbours on earlier wavefronts, so a
    wavefront is chosen at once: the raster order's choice (ties to the first candidate alike), with
    one numpy pass per wavefront instead of a Python step per block.
    With a `base` (a B-frame's first field mirrored, in the candidates' units) the bits are those of
    the vectors coded on it (motion.py's mode 1): the predictor works on field - base.
    sad: (n, by, bx); candidates: (n, by, bx, 2) vectors in half pixels."""
    _, by, bx = sad.shape
    base = np.zeros((by, bx, 2), np.int64) if base is None else base
    rel = np.zeros((by, bx, 2), np.int64)  # the chosen field - base
    for d in range(2 * (by - 1) + bx):
        i = np.arange(max(0, (d - bx + 2) // 2), min(by - 1, d // 2) + 1)
        j = d - 2 * i
        cand = candidates[:, i, j]  # (n, k, 2)
        cost = sad[:, i, j] + lam * _vector_bits(cand - base[i, j][None] - median_predictors(rel, i, j)[None])
        rel[i, j] = cand[np.argmin(cost, axis=0), np.arange(len(i))] - base[i, j]
    return rel + base


def _whole_pixel_sads(ref: np.ndarray, cur: np.ndarray, block: int, search: int) -> tuple[np.ndarray, np.ndarray]:
    """Every whole-pixel vector within +-search: the SAD of each block under each (n, by, bx) and the
    vectors as candidates (n, by, bx, 2) in half pixels, as they are coded."""
    h, w = cur.shape
    by, bx = grid(h, w, block)
    padded = np.pad(ref, search, mode="edge")  # the decoder clamps reads to the edge: the same values
    offsets = np.arange(-search, search + 1)
    shifts = np.array([(dy, dx) for dy in offsets for dx in offsets])
    sad = np.stack([_block_sad(padded[search + dy : search + dy + h, search + dx : search + dx + w], cur, block, by, bx) for dy, dx in shifts])
    return sad, np.broadcast_to(MV_FRAC * shifts[:, None, None, :], (len(shifts), by, bx, 2))  # a view: no copy per block


def _full_search(ref: np.ndarray, cur: np.ndarray, block: int, search: int, lam: float) -> np.ndarray:
    """Whole-pixel vectors (by, bx, 2), in whole pixels, by full search within +-search."""
    return _choose(*_whole_pixel_sads(ref, cur, block, search), lam) // MV_FRAC


def _shrink(plane: np.ndarray, factor: int) -> np.ndarray:
    """Box-filtered, `factor` times smaller (edges repeated to a multiple of it)."""
    h, w = plane.shape
    padded = np.pad(plane, ((0, -h % factor), (0, -w % factor)), mode="edge")
    return padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).mean((1, 3))


def _coarse_to_fine(ref: np.ndarray, cur: np.ndarray, block: int, search: int, lam: float, limit: int = WHOLE_LIMIT) -> np.ndarray:
    """Whole-pixel vectors (by, bx, 2), in whole pixels: a full search on both frames COARSE times
    smaller (the range twice the full search's), then, at full size, each block's coarse vector
    x COARSE and its neighbours within +-REFINE."""
    h, w = cur.shape
    by, bx = grid(h, w, block)
    # coarse blocks of at least 4 samples a side: 2x2 ones (an 8x8 block shrunk) match noise (-2.8 dB of prediction)
    coarse_block = max(4, block // COARSE)
    # never past what WHOLE_LIMIT keeps (+-8 coarse samples): a longer range (FAR_SEARCH_RANGE) would only
    # find vectors clipped back to the limit, and cost 3x the candidates
    coarse_range = min(2 * search // COARSE, -(-limit // COARSE))
    coarse = _full_search(_shrink(ref, COARSE), _shrink(cur, COARSE), coarse_block, coarse_range, lam)
    span = coarse_block * COARSE // block  # fine blocks per coarse block, along each axis
    start = COARSE * coarse[np.arange(by)[:, None] // span, np.arange(bx)[None, :] // span]
    steps = np.array([(dy, dx) for dy in range(-REFINE, REFINE + 1) for dx in range(-REFINE, REFINE + 1)])
    ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
    sads, candidates = [], []
    for step in steps:
        vec = np.clip(start + step, -limit, limit)  # (by, bx, 2)
        per_pixel = vec[ys // block, xs // block]
        pred = ref[np.clip(ys + per_pixel[..., 0], 0, h - 1), np.clip(xs + per_pixel[..., 1], 0, w - 1)]
        sads.append(_block_sad(pred, cur, block, by, bx))
        candidates.append(MV_FRAC * vec)
    return _choose(np.stack(sads), np.stack(candidates), lam) // MV_FRAC


def estimate_field(ref: np.ndarray, cur: np.ndarray, block: int, *, search: int = SEARCH_RANGE, lam: float = LAMBDA_SAD,
                   sharp: bool = False) -> np.ndarray:
    """Vectors (by, bx, 2) in half pixels (quarter pixels if `sharp`) predicting luma `cur` (H, W) from
    luma `ref`. Frames of more than COARSE_PIXELS are searched coarse to fine (a 1080p frame: full
    search ~15 s, this ~2 s)."""
    return estimate_fields(ref, cur, block, search=search, lams=(lam,), sharp=sharp)[0]


def estimate_fields(ref: np.ndarray, cur: np.ndarray, block: int, *, search: int = SEARCH_RANGE,
                    lams: tuple[float, ...] = (LAMBDA_SAD,), sharp: bool = False, base: np.ndarray | None = None) -> list[np.ndarray]:
    """estimate_field for each smoothness `lams` (SAD per bit). On small frames they share the full
    search's SADs; coarse to fine (large frames) searches once per smoothness (~2x the time).
    The whole-pixel search stays within whole_limit(sharp), whatever `search` asks. base: a B-frame's
    first field mirrored, which the fractional steps count the vectors' bits on (`_choose`)."""
    h, w = cur.shape
    by, bx = grid(h, w, block)
    ref = ref.astype(np.float32)
    cur = cur.astype(np.float32)
    limit = whole_limit(sharp)
    search = min(search, limit)
    if h * w > COARSE_PIXELS:
        whole = [_coarse_to_fine(ref, cur, block, search, lam, limit) for lam in lams]
    else:
        sad, candidates = _whole_pixel_sads(ref, cur, block, search)
        whole = [_choose(sad, candidates, lam) // MV_FRAC for lam in lams]

    units = vector_units(sharp)
    ref_t = torch.from_numpy(ref.astype(np.float64))
    source = sharp_phases(ref_t) if sharp else ref_t  # once for every candidate
    fields = [units * field for field in whole]
    for step in range(units // 2, 0, -1):  # half pixels, then (sharp) quarter pixels around the best half
        steps = step * np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
        refined, sads = [], {}
        for field, lam in zip(fields, lams):
            candidates = field[None] + steps[:, None, None, :]
            key = field.tobytes()  # the smoothness values often agree on the field: score its candidates once
            if key not in sads:
                preds = np.stack([compensate_source(source, plane_taps(torch.from_numpy(c), block, h, w, 1, sharp=sharp)).numpy()
                                  for c in candidates])
                sads[key] = _block_sad(preds, cur, block, by, bx)
            refined.append(_choose(sads[key], candidates, lam, base))
        fields = refined
    return fields


def _references(frames: list[int], references: list[int] | None) -> list[int]:
    return [t - 1 for t in frames] if references is None else references


def _search_range(t: int, r: int) -> int:
    return FAR_SEARCH_RANGE if abs(t - r) > 1 else SEARCH_RANGE


def bi_partners(frames: list[int]) -> dict[int, int]:
    """For each field of a B-frame (its frame listed twice in a row in `frames`, as
    CodecConfig.predictions lists them), the index of the frame's other field."""
    pairs = [(n, n + 1) for n in range(len(frames) - 1) if frames[n] == frames[n + 1]]
    return {n: m for a, b in pairs for n, m in ((a, b), (b, a))}


def bi_target(cur: np.ndarray, other: np.ndarray) -> np.ndarray:
    """What one of a B-frame's two predictions should be for their mean (model.bi_mean) to be `cur`,
    given the other: 2 cur - other. Its SAD is twice the mean's, so a search against it weighs the
    vectors' bits at twice the smoothness to trade as a P-frame's search does (twice but for the
    mean's rounding: at most a level a sample)."""
    return 2.0 * cur.astype(np.float64) - other


# Joint passes over a B-frame's two fields (each searched again against bi_target of the other's
# prediction). Foreman QCIF, 30 frames (25 B-frames), one pass: alone, the motion choice's cost falls
# 3-6.5% at lambdas 6e-4 to 6e-3 (at 6e-4 the same B prediction for 19% fewer vector bytes); with
# the smoothness per frame 3.1-8.4%; the search takes ~1.8x as long (docs/codec.md, session 15).
BI_ROUNDS = 1


def refine_bidirectional(ref0: np.ndarray, ref1: np.ndarray, cur: np.ndarray, field0: np.ndarray, field1: np.ndarray,
                         block: int, lam: float, searches: tuple[int, int], sharp: bool = False,
                         rounds: int = BI_ROUNDS, predictions: tuple[tuple[int, int], tuple[int, int]] | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """A B-frame's two fields, each searched alone on its reference, searched again in turn for the
    mean of the two predictions: the first against bi_target of the second's prediction, then the
    second against the first's new one (`searches`: each one's range). With the fields'
    `predictions` ((frame, reference) each) the second is searched twice, its bits counted on
    its neighbours alone and on the first mirrored (`motion.mirrored`, the section's mode 1).
    The pair of least mean SAD + lam x the fields' bits is kept: the one searched alone if the
    joint search found no better."""
    best, best_cost = (field0, field1), _bi_cost(ref0, ref1, cur, field0, field1, block, lam, sharp, predictions)
    for _ in range(rounds):
        field0 = estimate_fields(ref0, bi_target(cur, _compensated(ref1, field1, block, sharp=sharp)), block,
                                 search=searches[0], lams=(2 * lam,), sharp=sharp)[0]
        target = bi_target(cur, _compensated(ref0, field0, block, sharp=sharp))
        bases = [None] + ([mirrored(field0, predictions[0][0], predictions[0][1], predictions[1][1])] if predictions else [])
        for base in bases:
            field1 = estimate_fields(ref1, target, block, search=searches[1], lams=(2 * lam,), sharp=sharp, base=base)[0]
            cost = _bi_cost(ref0, ref1, cur, field0, field1, block, lam, sharp, predictions)
            if cost < best_cost:
                best, best_cost = (field0, field1), cost
    return best


def _bi_cost(ref0: np.ndarray, ref1: np.ndarray, cur: np.ndarray, field0: np.ndarray, field1: np.ndarray, block: int,
             lam: float, sharp: bool, predictions: tuple[tuple[int, int], tuple[int, int]] | None = None) -> float:
    """SAD of a B-frame's mean prediction (uniform fields, plain compensation) + lam x the fields' coded bits."""
    mean = bi_mean(torch.from_numpy(_compensated(ref0, field0, block, sharp=sharp)), torch.from_numpy(_compensated(ref1, field1, block, sharp=sharp)))
    return float(np.abs(mean.numpy() - cur).sum()) + lam * field_bits([field0, field1], 0, predictions)


def estimate_motion(y: np.ndarray, block: int, frames: list[int], references: list[int] | None = None,
                    lams: tuple[float, ...] = (LAMBDA_SAD,), sharp: bool = False) -> list[list[np.ndarray]]:
    """For each smoothness of `lams`, the fields of the predicted `frames` of luma `y` (T, H, W), each
    searched on its reference's source frame (default: the frame before it; further apart, within
    FAR_SEARCH_RANGE), a B-frame's two then jointly (refine_bidirectional)."""
    refs = _references(frames, references)
    per_frame = [estimate_fields(y[r], y[t], block, search=_search_range(t, r), lams=lams, sharp=sharp) for t, r in zip(frames, refs)]
    out = [[fields[k] for fields in per_frame] for k in range(len(lams))]
    for n, m in bi_partners(frames).items():
        if n < m:
            t = frames[n]
            for fields, lam in zip(out, lams):
                fields[n], fields[m] = refine_bidirectional(y[refs[n]], y[refs[m]], y[t], fields[n], fields[m], block, lam,
                                                            (_search_range(t, refs[n]), _search_range(t, refs[m])), sharp,
                                                            predictions=((t, refs[n]), (t, refs[m])))
    return out


def overlapped_motion(y: np.ndarray, block: int, frames: list[int], fields: list[list[np.ndarray]],
                      references: list[int] | None = None, lams: tuple[float, ...] = (LAMBDA_SAD,),
                      sharp: bool = False) -> list[list[np.ndarray]]:
    """estimate_motion's `fields` (per smoothness of `lams`, per frame) refined for overlapped
    compensation (`refine_overlapped`) on frames up to COARSE_PIXELS; larger ones keep them as they
    are (each candidate is a compensation of the whole frame: ~5 s at 1080p)."""
    _, h, w = y.shape
    if h * w > COARSE_PIXELS:
        return fields
    refs = _references(frames, references)
    partners = bi_partners(frames)
    out = []
    for lam, per_frame in zip(lams, fields):
        refined = list(per_frame)
        for n, (t, r) in enumerate(zip(frames, refs)):
            if n in partners:  # a B-frame's: for the mean with its other field's prediction (the refined one, if it came first)
                m = partners[n]
                other = _compensated(y[refs[m]], refined[m], block, overlap=True, sharp=sharp)
                base = cheaper_base(per_frame[n], mirrored(refined[m], t, refs[m], r)) if m < n else None
                refined[n] = refine_overlapped(y[r], np.rint(bi_target(y[t], other)), per_frame[n], block, 2 * lam, sharp=sharp, base=base)
            else:
                refined[n] = refine_overlapped(y[r], y[t], per_frame[n], block, lam, sharp=sharp)
        out.append(refined)
    return out


OVERLAP_ROUNDS = 2  # refine_overlapped's passes over a field (a third changed little on Foreman)


def _grown_sums(err: np.ndarray, block: int, by: int, bx: int) -> np.ndarray:
    """(by, bx): the sum of err (H, W) over each block grown by block / 2 on every side, the samples
    whose overlapped prediction its vector reaches."""
    h, w = err.shape
    half = block // 2
    padded = np.zeros((by * block + block + 1, bx * block + block + 1))
    padded[1 + half:1 + half + h, 1 + half:1 + half + w] = err
    s = padded.cumsum(0).cumsum(1)
    i0, j0 = np.arange(by)[:, None] * block, np.arange(bx)[None, :] * block
    i1, j1 = i0 + 2 * block, j0 + 2 * block
    return s[i1, j1] - s[i0, j1] - s[i1, j0] + s[i0, j0]


class _OverlappedPrediction:
    """motion.compensate's overlapped prediction of one luma plane under uniform fields (depth 0),
    fast enough to score thousands of fields: the reference's samples at every vector position
    (bilinear half-pixel sums x MV_FRAC**2, or the sharp phase samples) computed once, then a field
    is three lookups and a weighted sum, ~10x faster than building its taps. The same integers as
    the decoder's (a test compares them)."""

    def __init__(self, ref: np.ndarray, block: int, sharp: bool = False) -> None:
        h, w = ref.shape
        pad = whole_limit(sharp) + 2  # whole pixels, past the largest vector: the edge repeated, as the decoder clamps its reads
        p = np.pad(ref.astype(np.int64), pad, mode="edge")
        units = vector_units(sharp)
        if sharp:  # up[4i + fy, 4j + fx]: phase (fy, fx) at position (i, j) of p
            hp, wp = p.shape
            phases = sharp_phases(torch.from_numpy(p.astype(np.float64))).numpy().astype(np.int64)
            phases = phases.reshape(4, 4, hp + 5, wp + 5)[:, :, 3:3 + hp, 3:3 + wp]
            self.up, scale = phases.transpose(2, 0, 3, 1).reshape(4 * hp, 4 * wp), 1
        else:
            up = np.empty((2 * p.shape[0] - 1, 2 * p.shape[1] - 1), np.int64)  # up[2i + fy, 2j + fx]
            up[0::2, 0::2] = 4 * p
            up[0::2, 1::2] = 2 * (p[:, :-1] + p[:, 1:])
            up[1::2, 0::2] = 2 * (p[:-1] + p[1:])
            up[1::2, 1::2] = p[:-1, :-1] + p[:-1, 1:] + p[1:, :-1] + p[1:, 1:]
            self.up, scale = up, MV_FRAC * MV_FRAC
        ys, xs = np.arange(h), np.arange(w)
        by, bx = grid(h, w, block)
        u, v = ys % block, xs % block
        self.cy, self.cx = (ys // block)[:, None], (xs // block)[None, :]
        self.ny = np.clip(np.where(2 * u < block, ys // block - 1, ys // block + 1), 0, by - 1)[:, None]
        self.nx = np.clip(np.where(2 * v < block, xs // block - 1, xs // block + 1), 0, bx - 1)[None, :]
        self.wy, self.wx = np.abs(2 * u + 1 - block)[:, None], np.abs(2 * v + 1 - block)[None, :]
        self.wown = 2 * block - self.wy - self.wx
        self.gy, self.gx = (units * (ys + pad))[:, None], (units * (xs + pad))[None, :]
        self.norm = scale * 2 * block

    def _at(self, vectors: np.ndarray) -> np.ndarray:
        return self.up[self.gy + vectors[..., 0], self.gx + vectors[..., 1]]

    def __call__(self, field: np.ndarray) -> np.ndarray:
        total = (self.wown * self._at(field[self.cy, self.cx]) + self.wy * self._at(field[self.ny, self.cx])
                 + self.wx * self._at(field[self.cy, self.nx]))
        return (total + self.norm // 2) // self.norm


def refine_overlapped(ref: np.ndarray, cur: np.ndarray, field: np.ndarray, block: int, lam: float,
                      rounds: int = OVERLAP_ROUNDS, sharp: bool = False, base: np.ndarray | None = None) -> np.ndarray:
    """A uniform field searched block by block, refined for overlapped compensation: each block's
    vector (with its 8 neighbours a half pixel away, a quarter pixel if `sharp`, as candidates) scored by the SAD of the overlapped
    prediction over the samples it reaches (the block grown by half a block) + lam x the estimated
    bits of its difference from its median predictor. A block's vector reaches no further than the
    middle of its neighbours, so the blocks of one of the four 2x2 phases (i % 2, j % 2) are
    refined together, each of the 9 candidates one prediction of the frame. Foreman QCIF's 26
    predicted frames: +0.5-0.6 dB of overlapped prediction for 20-50% more vector bytes (docs/codec.md).
    base: as `_choose`'s, the bits counted on it when the field is coded on a B-frame's first."""
    overlapped = _OverlappedPrediction(ref, block, sharp)
    offset = np.zeros_like(field, dtype=np.int64) if base is None else base
    cur = cur.astype(np.int64)
    by, bx = field.shape[:2]
    units = vector_units(sharp)
    limit = units * whole_limit(sharp) + units - 1  # as the search leaves them: differences stay codable
    steps = np.array([(0, 0)] + [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
    rows, cols = np.meshgrid(np.arange(by), np.arange(bx), indexing="ij")
    field = field.copy()
    for _ in range(rounds):
        changed = 0
        for phase in ((0, 0), (0, 1), (1, 0), (1, 1)):
            at = (rows % 2 == phase[0]) & (cols % 2 == phase[1])
            i, j = rows[at], cols[at]
            predictors = median_predictors(field - offset, i, j) + offset[i, j]
            candidates = np.clip(field[i, j][None] + steps[:, None], -limit, limit)  # (9, k, 2)
            costs = []
            for vectors in candidates:
                trial = field.copy()
                trial[i, j] = vectors
                sad = _grown_sums(np.abs(overlapped(trial) - cur).astype(np.float64), block, by, bx)
                costs.append(sad[i, j] + lam * _vector_bits(vectors - predictors))
            best = np.argmin(np.stack(costs), 0)
            changed += int(np.count_nonzero(best))
            field[i, j] = candidates[best, np.arange(len(i))]
        if not changed:
            break
    return field


def prediction_cost(y: np.ndarray, fields: list[np.ndarray], block: int, lmbda: float, frames: list[int],
                    references: list[int] | None = None, depth: int = 0, overlap: bool = False, sharp: bool = False) -> float:
    """D + lmbda * R of the motion alone, in the training loss' units: the luma MSE of the
    motion-compensated source frames (weighted as in the loss, times PREDICTION_ERROR_KEPT) plus
    the fields' bits per pixel (a frame listed twice, a B-frame, by the mean of its two predictions;
    `block`: the smallest block; `depth`: their quadtrees'; `overlap`:
    compensated as the decoder will, overlapped; `sharp`: quarter-pixel vectors, 6-tap)."""
    t, h, w = y.shape
    preds: dict[int, list[np.ndarray]] = {}
    for k, r, field in zip(frames, _references(frames, references), fields):
        preds.setdefault(k, []).append(_compensated(y[r], field, block, overlap, depth, sharp))
    mse = 0.0
    for k, (pred, *other) in preds.items():  # a B-frame (listed twice) is predicted by the mean of its two
        if other:
            pred = bi_mean(torch.from_numpy(pred), torch.from_numpy(other[0])).numpy()
        mse += float(np.mean(((pred - y[k]) / 255.0) ** 2)) / t
    bits = field_bits(fields, depth, list(zip(frames, _references(frames, references))))
    return PREDICTION_ERROR_KEPT * PSNR_YUV_WEIGHTS[0] / sum(PSNR_YUV_WEIGHTS) * mse + lmbda * bits / (t * h * w)


def _compensated(ref: np.ndarray, field: np.ndarray, block: int, overlap: bool = False, depth: int = 0, sharp: bool = False) -> np.ndarray:
    return predict(torch.from_numpy(ref.astype(np.float64)), field, block, 1, overlap, depth, sharp).numpy()


def quadtree_field(levels: list[np.ndarray], sads: list[np.ndarray], lam: float) -> np.ndarray:
    """A quadtree field (the grid of the smallest blocks, `motion.py`) from uniform fields of one
    frame: levels[d] (by_d, bx_d, 2) has blocks of the root size >> d, sads[d] each of its blocks'
    SAD under its own vector. Root by root in coding order, depth first, a block stays whole or
    takes its four children (each deciding the same way) by SAD + lam x (the estimated bits of the
    vectors' differences from their predictors as the decoder will form them, plus a bit a flag)."""
    depth = len(levels) - 1
    by, bx = levels[-1].shape[:2]
    vectors = [[[tuple(v) for v in row] for row in level.tolist()] for level in levels]
    settled = _same_below(levels)
    rows: list[list[tuple[int, int]]] = [[(0, 0)] * bx for _ in range(by)]
    known = np.zeros((by, bx), bool)

    def set_block(i: int, j: int, size: int, v: tuple[int, int]) -> None:
        for r in range(i, min(i + size, by)):
            rows[r][j:min(j + size, bx)] = [v] * (min(j + size, bx) - j)
        known[i:i + size, j:j + size] = True

    def decide(i: int, j: int, size: int, d: int) -> float:
        v = vectors[d][i // size][j // size]
        py, px = leaf_predictor(rows, known, i, j, size)
        whole = sads[d][i // size, j // size] + lam * (_vector_bits(np.array([v[0] - py, v[1] - px])) + (size > 1))
        if size == 1 or settled[d][i // size, j // size]:  # splitting would predict the same for more bits
            set_block(i, j, size, v)
            return whole
        saved_rows = [row[j:j + size] for row in rows[i:i + size]]
        saved_known = known[i:i + size, j:j + size].copy()
        split = lam + sum(decide(ci, cj, csize, d + 1) for ci, cj, csize in children((i, j, size), by, bx))
        if split < whole:
            return split
        for r, saved in zip(range(i, by), saved_rows):
            rows[r][j:j + len(saved)] = saved
        known[i:i + size, j:j + size] = saved_known
        set_block(i, j, size, v)
        return whole

    span = 1 << depth
    for i in range(0, by, span):
        for j in range(0, bx, span):
            decide(i, j, span, 0)
    return np.array(rows, np.int64).reshape(by, bx, 2)


def _same_below(levels: list[np.ndarray]) -> list[np.ndarray]:
    """Per level, whether each block's finer levels all hold its own vector (blocks cut off by the
    frame's edge do not count): there a split cannot change the prediction. Most of a smooth field."""
    same = [np.ones(levels[-1].shape[:2], bool)]
    for parent, child in zip(levels[-2::-1], levels[:0:-1]):
        by, bx = parent.shape[:2]
        cy, cx = child.shape[:2]
        agree = np.ones((2 * by, 2 * bx), bool)
        agree[:cy, :cx] = (child == np.repeat(np.repeat(parent, 2, 0), 2, 1)[:cy, :cx]).all(-1) & same[0]
        same.insert(0, agree.reshape(by, 2, bx, 2).all((1, 3)))
    return same


def quadtree_fields(y: np.ndarray, root: int, depth: int, frames: list[int], searched: dict,
                    references: list[int] | None = None, smoothness: tuple[float, ...] = SMOOTHNESS,
                    sharp: bool = False) -> list[list[np.ndarray]]:
    """For each smoothness, the quadtree fields (roots `root`, `depth` split levels) of the predicted
    `frames`, built from the uniform fields of each level's block size (searched, by block size, as
    choose_motion keeps them; filled here, and the trees too, under (root, depth): they do not
    depend on lmbda either)."""
    if (root, depth) in searched:
        return searched[(root, depth)]
    sizes = [root >> d for d in range(depth + 1)]
    for block in sizes:
        if block not in searched:
            searched[block] = estimate_motion(y, block, frames, references, smoothness, sharp)
    refs = _references(frames, references)
    partners = bi_partners(frames)
    out = []
    for k, lam in enumerate(smoothness):

        def tree(n: int, target: np.ndarray, lam: float) -> np.ndarray:
            levels = [searched[block][k][n] for block in sizes]
            sads = [_block_sad(_compensated(y[refs[n]], level, block, sharp=sharp), target, block, *grid(*target.shape, block))
                    for level, block in zip(levels, sizes)]
            return quadtree_field(levels, sads, lam)

        fields: dict[int, np.ndarray] = {}
        for n, t in enumerate(frames):
            if n not in partners:
                fields[n] = tree(n, y[t].astype(np.float64), lam)
            elif n < partners[n]:  # a B-frame's two trees, each scored at every level against one prediction of the other:
                m = partners[n]    # the first against the other's finest uniform field, the second against the first's tree
                finest = _compensated(y[refs[m]], searched[sizes[-1]][k][m], sizes[-1], sharp=sharp)
                fields[n] = tree(n, bi_target(y[t], finest), 2 * lam)
                first = _compensated(y[refs[n]], fields[n], sizes[-1], depth=depth, sharp=sharp)
                fields[m] = tree(m, bi_target(y[t], first), 2 * lam)
        out.append([fields[n] for n in range(len(frames))])
    searched[(root, depth)] = out
    return out


def choose_motion(y: np.ndarray, blocks: tuple[int, ...], lmbda: float, frames: list[int],
                  searched: dict | None = None, references: list[int] | None = None,
                  smoothness: tuple[float, ...] = SMOOTHNESS, split_depth: int = 0,
                  overlap: bool = False, sharp: bool = False) -> tuple[tuple[int, int], list[np.ndarray]]:
    """The motion layout, (smallest block, split depth), and smoothness (and the fields of the
    predicted `frames`) of least `prediction_cost`: small blocks follow motion better, large ones
    cost fewer bits, and so does a smoother field, which matters more the lower the rate (the
    larger lmbda). With `split_depth`, each of `blocks` is also tried as the root of quadtrees that
    split down to split_depth levels (not below MIN_BLOCK), which spend small blocks only where
    they pay (frames up to COARSE_PIXELS: on larger ones their search costs minutes a frame). Within
    a layout each frame takes its own smoothness (per_frame_smoothness). searched: the uniform fields of earlier calls on the same `y`, `frames`,
    `references` (default: each frame's previous one) and `smoothness`, by block size (and the
    trees by (root, depth)), which it fills (neither depends on lmbda). overlap: the fields are
    weighed under overlapped compensation, the uniform ones refined for it (`overlapped_motion`,
    kept under ("overlapped", block)), the trees as searched. sharp: quarter-pixel vectors, 6-tap
    luma interpolation (searched for it; `searched` must come from calls with the same `sharp`)."""
    searched = {} if searched is None else searched
    if y.shape[1] * y.shape[2] > COARSE_PIXELS:  # the 4x4 level and the trees: ~2 min a 1080p frame (docs/codec.md, session 11)
        split_depth = 0
    candidates: list[tuple[tuple[int, int], list[list[np.ndarray]]]] = []
    for block in blocks:
        if block not in searched:
            searched[block] = estimate_motion(y, block, frames, references, smoothness, sharp)
        uniform = searched[block]
        if overlap:  # refined for the overlapped prediction (the trees keep their block-wise vectors)
            if ("overlapped", block) not in searched:
                searched[("overlapped", block)] = overlapped_motion(y, block, frames, uniform, references, smoothness, sharp)
            uniform = searched[("overlapped", block)]
        candidates.append(((block, 0), uniform))
        depth = min(split_depth, (block // MIN_BLOCK).bit_length() - 1)
        if depth:
            candidates.append(((block >> depth, depth), quadtree_fields(y, block, depth, frames, searched, references, smoothness, sharp)))
    best = None
    for (block, depth), per_smoothness in candidates:
        fields, cost = per_frame_smoothness(y, per_smoothness, block, lmbda, frames, references, depth, overlap, sharp)
        if best is None or cost < best[0]:
            best = (cost, (block, depth), fields)
    return best[1], best[2]


def per_frame_smoothness(y: np.ndarray, per_smoothness: list[list[np.ndarray]], block: int, lmbda: float, frames: list[int],
                         references: list[int] | None = None, depth: int = 0, overlap: bool = False,
                         sharp: bool = False) -> tuple[list[np.ndarray], float]:
    """Of one layout's fields at each smoothness, each frame's (a B-frame's two together: they were
    searched for each other) at the smoothness of its least prediction_cost, and the fields' cost,
    the sum of the frames' (prediction_cost sums over frames): anchors far from their reference
    want finer fields than the B-frames between them."""
    refs = _references(frames, references)
    chosen, total = list(per_smoothness[0]), 0.0
    for t in dict.fromkeys(frames):
        group = [n for n, k in enumerate(frames) if k == t]
        costs = [prediction_cost(y, [fields[n] for n in group], block, lmbda, [t] * len(group), [refs[n] for n in group], depth, overlap, sharp)
                 for fields in per_smoothness]
        k = int(np.argmin(costs))
        total += costs[k]
        for n in group:
            chosen[n] = per_smoothness[k][n]
    return chosen, total
