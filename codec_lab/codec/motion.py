"""Block motion of inter frames: compensation (shared, integer-exact) and the motion section's coding.

A motion field holds one vector per `block` x `block` luma block of the padded
frame (the last row / column of blocks may be cut by the frame edge), in half
luma pixels (`MV_FRAC`). Chroma (4:2:0) uses the same vector, which is in
quarter chroma pixels there. A predicted sample is the bilinear mix of the 4
reference samples around its position, computed on 8-bit integers and rounded
(`(sum w_i * p_i + n/2) // n` with n = 4 for luma, 16 for chroma), with the
reference's edges repeated outwards: every value is an exact integer, so the
decoder's prediction is the same on every machine, and training rounds the
same way with a straight-through gradient.

A field may be a *quadtree* (format version 7, `depth` > 0): its root blocks are
`block << depth` a side, and each block larger than `block` is either whole (one
vector) or split in four. In memory a field is always the grid of the smallest
blocks (a whole block's vector repeated over its cells), so compensation does not
know about the tree; coding derives the tree from the field (a block is split
exactly when its cells do not all hold one vector).

With *overlap* (format version 8) each predicted sample mixes three such bilinear
predictions: under its whole block's vector and under the vectors of the cells just past
the block's nearer edge vertically and horizontally (`plane_taps`). The whole blocks are
derived from the field too (`leaf_layout`: the largest aligned block of at most 2**depth
cells holding one vector, which is the tree's leaf whenever the encoder split canonically),
and n grows by 2**(depth + 1) x the plane's block: still a power of 2, still exact.

With *sharp* interpolation (format version 9) luma vectors are in quarter pixels
(`vector_units`) and a luma sample at a fractional position is read from the
reference's 16 *phase planes* (`sharp_phases`): the reference filtered by a
separable 6-tap kernel per quarter phase (H.264's half-pixel kernel
(1, -5, 20, 20, -5, 1) / 32; the quarter phases the mean of it and the whole
sample), each rounded and clipped to 8 bits, so a prediction reads one phase
sample per vector (three with overlap) instead of mixing 4 neighbours. Bilinear
half-pixel reads blur the reference at every step of a chain of predictions;
the 6-tap kernel keeps its detail (Foreman QCIF, 16x16 blocks: prediction +2.1 dB
from the source, +0.5 dB from a decoded reference; docs/codec.md, session 13).
Chroma stays bilinear, in eighths of its samples.

The motion section: per inter frame one scale id byte per component (y, x), then
(quadtree only) one flag step id per depth, then constriction range-coder words.
Per frame: the split flags depth by depth (depth 0: the roots in raster order,
depth d: the children of depth d - 1's split blocks, in their parents' order,
each parent's four in Z order), each depth under a binary table
(`entropy.FLAG_STEPS`), then the vectors of the whole blocks (the leaves: roots
in raster order, depth first, Z order inside). Each vector is coded as its
difference from the median of its left, top and top-right neighbours (H.264's
predictor; the top-right one only if already coded, else the top-left) under the
Laplace table of its frame's scale (`entropy.frequency_tables`). Since format
version 11 a B-frame's second field may be coded on its first *mirrored* (mode 1,
held in its y scale id byte as id + NS x mode): the predictor then works on each
cell's offset from that base (`mirrored`), and the encoder picks the cheaper mode.
Estimation lives with the encoder (`motion_search`); nothing here trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from codec_lab.codec import entropy
from codec_lab.errors import BitstreamError

MV_FRAC = 2  # luma vectors in half pixels (bilinear files); quarter pixels with sharp interpolation
MV_MAX = 2 * entropy.LMAX  # the largest vector component a file may hold, in vector units
# The sharp luma kernels, one per quarter phase, taps at offsets -2 .. 3, out of 64 each
SHARP_KERNELS = ((0, 0, 64, 0, 0, 0), (1, -5, 52, 20, -5, 1), (2, -10, 40, 40, -10, 2), (1, -5, 20, 52, -5, 1))
SHARP_REACH = 3  # phase samples exist at positions -3 .. size + 1: every read further out sees only the edge sample
_MEAN_TABLE = 0  # mean fraction index of the tables used for vector differences


@dataclass(frozen=True)
class Taps:
    """Where each predicted sample of one plane reads the reference, and with which integer weights."""

    index: torch.Tensor  # (n, h*w) int64 into the flattened reference plane (n = 4, 12 with overlap), or its phase planes
    weight: torch.Tensor  # (n, h*w) integer weights summing to `norm`
    norm: int
    shape: tuple[int, int]
    phases: bool = False  # the index reads `sharp_phases` of the reference (n = 1, 3 with overlap)


def vector_units(sharp: bool) -> int:
    """Vector units per luma pixel: 2 (half pixels, bilinear), 4 with sharp interpolation."""
    return 4 if sharp else MV_FRAC


def source_samples(height: int, width: int, phases: bool) -> int:
    """Samples of what the taps of a `height` x `width` plane index: the plane, or its `sharp_phases`."""
    return 16 * (height + 2 * SHARP_REACH - 1) * (width + 2 * SHARP_REACH - 1) if phases else height * width


def sharp_phases(ref: torch.Tensor, straight_through: bool = False) -> torch.Tensor:
    """The 16 quarter phases of 8-bit reference planes (..., h, w): (..., 16 * (h + 5), w + 5), phase
    4 * fy + fx at rows [p * (h + 5), (p + 1) * (h + 5)), position (y, x) at row y + 3, column x + 3
    (y from -3 to h + 1, edges repeated). Each sample is the separable SHARP_KERNELS filter of the
    reference, rounded and clipped to 8 bits: integers below 2**24 before rounding, exact in float32
    (elementwise sums only: a convolution may take an inexact algorithm, a matmul TF32). float32
    whatever `ref` is (64 bytes a pixel). straight_through: the same values, the gradient of the
    unrounded filter (training)."""
    h, w = ref.shape[-2:]
    lead = ref.shape[:-2]
    pad = SHARP_REACH + 2
    flat = ref.reshape(-1, 1, h, w).float()  # exact for every sum here, and twice as fast as float64
    padded = torch.nn.functional.pad(flat, (pad, pad, pad, pad), mode="replicate")[:, 0]  # (n, h + 10, w + 10)
    size_y, size_x = h + 2 * SHARP_REACH - 1, w + 2 * SHARP_REACH - 1

    def filtered(plane: torch.Tensor, kernel: tuple[int, ...], dim: int, size: int) -> torch.Tensor:
        return sum(k * plane.narrow(dim, t, size) for t, k in enumerate(kernel) if k)

    across = torch.stack([filtered(padded, k, -1, size_x) for k in SHARP_KERNELS], 1)  # (n, 4 fx, h + 10, w + 5)
    both = torch.stack([filtered(across, k, -2, size_y) for k in SHARP_KERNELS], 1)  # (n, 4 fy, 4 fx, h + 5, w + 5)
    scaled = both / 4096.0
    rounded = torch.floor(scaled.detach() + 0.5).clamp(0, 255)
    if straight_through:
        rounded = scaled + (rounded - scaled.detach())
    return rounded.reshape(*lead, 16 * size_y, size_x)


def grid(height: int, width: int, block: int) -> tuple[int, int]:
    """Blocks per column and per row covering a (padded) frame."""
    return (height + block - 1) // block, (width + block - 1) // block


def _bilinear(vec: torch.Tensor, precision: int, ys: torch.Tensor, xs: torch.Tensor, height: int, width: int):
    """(index, weight), each (4, n, w): the 4 samples of a `height` x `width` reference around each
    sample (rows ys (n, 1), columns xs (1, w)) moved by `vec` (n, w, 2) in 1/precision samples,
    and their integer bilinear weights (summing to precision**2)."""
    py, px = precision * ys + vec[..., 0], precision * xs + vec[..., 1]
    iy, ix = torch.div(py, precision, rounding_mode="floor"), torch.div(px, precision, rounding_mode="floor")
    fy, fx = py - iy * precision, px - ix * precision
    rows = [iy.clamp(0, height - 1), (iy + 1).clamp(0, height - 1)]
    cols = [ix.clamp(0, width - 1), (ix + 1).clamp(0, width - 1)]
    wy, wx = [precision - fy, fy], [precision - fx, fx]
    index = torch.stack([rows[a] * width + cols[b] for a in (0, 1) for b in (0, 1)])
    weight = torch.stack([wy[a] * wx[b] for a in (0, 1) for b in (0, 1)])
    return index, weight


def leaf_layout(field: np.ndarray, depth: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(top, left, size), each (by, bx) int64: the whole block (quadtree leaf) each cell of `field`
    belongs to, in cells: the largest aligned block of at most 2**depth cells a side that holds the
    cell and a single vector (cells past the frame's edge do not count), as `tree` finds it."""
    by, bx = field.shape[:2]
    top, left = np.repeat(np.arange(by)[:, None], bx, 1), np.repeat(np.arange(bx)[None, :], by, 0)
    size = np.ones((by, bx), np.int64)
    for d in range(1, depth + 1):
        s = 1 << d
        py, px = -by % s, -bx % s
        padded = np.pad(field.astype(np.float64), ((0, py), (0, px), (0, 0)), constant_values=np.nan)
        blocks = padded.reshape((by + py) // s, s, (bx + px) // s, s, 2)
        whole = (np.nanmax(blocks, (1, 3)) == np.nanmin(blocks, (1, 3))).all(-1)
        whole = np.repeat(np.repeat(whole, s, 0), s, 1)[:by, :bx]
        top = np.where(whole, top // s * s, top)  # uniform at size s: so at every smaller size
        left = np.where(whole, left // s * s, left)
        size = np.where(whole, s, size)
    return top, left, size


def _phase_sample(vec: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, height: int, width: int):
    """(index, weight), each (1, n, w): the `sharp_phases` sample each luma sample moved by `vec`
    (n, w, 2) in quarter pixels reads, with weight 1."""
    py, px = 4 * ys + vec[..., 0], 4 * xs + vec[..., 1]
    iy, ix = torch.div(py, 4, rounding_mode="floor"), torch.div(px, 4, rounding_mode="floor")
    rows = iy.clamp(-SHARP_REACH, height + SHARP_REACH - 2) + SHARP_REACH
    cols = ix.clamp(-SHARP_REACH, width + SHARP_REACH - 2) + SHARP_REACH
    size_y, size_x = height + 2 * SHARP_REACH - 1, width + 2 * SHARP_REACH - 1
    index = ((4 * (py - 4 * iy) + px - 4 * ix) * size_y + rows) * size_x + cols
    return index[None], torch.ones_like(index)[None]


def plane_taps(field: torch.Tensor, block: int, height: int, width: int, subsample: int, dtype=torch.float64,
               overlap: bool = False, depth: int = 0, band: tuple[int, int] | None = None, sharp: bool = False) -> Taps:
    """Taps of a plane of `height` x `width` that is the luma subsampled by `subsample` (1 or 2).

    overlap (format version 8): overlapped block motion compensation, as H.263's but over each
    whole block of the field's quadtree of `depth` split levels (`leaf_layout`) rather than each
    cell. A sample at offset u in a whole block of L samples mixes the prediction under its block's vector with those under the vectors of the cells just
    past the block's nearer edge above or below it and left or right of it, each with the weight
    |2u + 1 - L| / 2L (nearly half at the block's edge, 1/2L in its middle); its own vector keeps
    the rest. Where neighbouring vectors differ, the step at a block edge shrinks to about 1/L of
    the plain one; where they agree nothing changes (at the frame's edges the neighbour is the block itself). 12 taps a sample
    instead of 4, still exact integers (norm 2**(depth + 1) * plane block * precision**2).

    field: (by, bx, 2) int64, on the device the taps are wanted on. About 60 bytes a pixel with
    float32 weights (180 with overlap). band: (first, end) rows, the taps of those rows only
    (`predict` works in bands to bound the decoder's memory whatever size a file claims).
    sharp (format version 9): vectors in quarter pixels; luma reads `sharp_phases` (1 tap a vector,
    norm 1), chroma stays bilinear in eighths of its samples."""
    precision = vector_units(sharp) * subsample  # vector units per sample of this plane
    phases = sharp and subsample == 1
    taps_of = _phase_sample if phases else (lambda vec, ys, xs, h, w: _bilinear(vec, precision, ys, xs, h, w))
    plane_block = block // subsample
    device = field.device
    first, end = band or (0, height)
    rows = torch.arange(first, end, device=device)[:, None]
    cols = torch.arange(width, device=device)[None, :]
    n = end - first
    ys, xs = (rows // plane_block).expand(n, width), (cols // plane_block).expand(n, width)
    index, weight = taps_of(field[ys, xs], rows, cols, height, width)
    norm = 1 if phases else precision * precision
    if overlap:
        layout = leaf_layout(field.cpu().numpy(), depth)
        top, left, size = (torch.as_tensor(a, device=device)[ys, xs] for a in layout)
        span = size * plane_block  # the whole block's side, in samples
        u, v = rows - top * plane_block, cols - left * plane_block
        scale = (1 << depth) // size  # weights out of 2**(depth + 1) * plane_block for every block size
        wy, wx = (2 * u + 1 - span).abs() * scale, (2 * v + 1 - span).abs() * scale
        ny = torch.where(2 * u < span, top - 1, top + size).clamp(0, field.shape[0] - 1)
        nx = torch.where(2 * v < span, left - 1, left + size).clamp(0, field.shape[1] - 1)
        index_y, weight_y = taps_of(field[ny, xs], rows, cols, height, width)
        index_x, weight_x = taps_of(field[ys, nx], rows, cols, height, width)
        total = (2 << depth) * plane_block
        index = torch.cat([index, index_y, index_x])
        weight = torch.cat([weight * (total - wy - wx), weight_y * wy, weight_x * wx])
        norm *= total
    return Taps(index.reshape(index.shape[0], -1), weight.reshape(weight.shape[0], -1).to(dtype), norm, (n, width), phases)


def frame_taps(field: torch.Tensor | np.ndarray, block: int, height: int, width: int, dtype=torch.float64,
               overlap: bool = False, depth: int = 0, sharp: bool = False) -> tuple[Taps, Taps]:
    """(luma taps, chroma taps) of one inter frame of the padded size; `overlap`: overlapped block
    compensation over the whole blocks of the field's quadtree of `depth` split levels; `sharp`:
    quarter-pixel vectors, the luma read from its phase planes."""
    field = torch.as_tensor(np.asarray(field, dtype=np.int64)) if isinstance(field, np.ndarray) else field
    return (plane_taps(field, block, height, width, 1, dtype, overlap, depth, sharp=sharp),
            plane_taps(field, block, height // 2, width // 2, 2, dtype, overlap, depth, sharp=sharp))


BAND_SAMPLES = 1 << 18  # `predict` builds the taps of this many samples at a time (~50 MB with overlap)


def predict(ref_pixels: torch.Tensor, field: np.ndarray, block: int, subsample: int, overlap: bool = False,
            depth: int = 0, sharp: bool = False) -> torch.Tensor:
    """The decoder's prediction (compensate) of one plane of 8-bit reference samples (..., h, w)
    (float64 integers) under `field`, band of rows by band of rows: the same values as one set of
    taps for the plane, the taps in bounded memory (sharp: the whole reference's phase planes,
    64 bytes a pixel, are made first)."""
    height, width = ref_pixels.shape[-2:]
    field_t = torch.as_tensor(np.asarray(field, dtype=np.int64))
    source = sharp_phases(ref_pixels) if sharp and subsample == 1 else ref_pixels
    step = max(1, BAND_SAMPLES // width)
    return torch.cat([compensate_source(source, plane_taps(field_t, block, height, width, subsample, torch.float64,
                                                           overlap, depth, (first, min(first + step, height)), sharp))
                      for first in range(0, height, step)], dim=-2)


class _TakeTaps(torch.autograd.Function):
    """flat[..., index] with a backward pass that gives the same bits on every run.

    Autograd's own backward of that indexing is index_put_(accumulate=True), which on the CPU adds
    with atomics from several threads: training with motion then wrote a different file each run.
    scatter_add_ is serial along the indexed dim on the CPU; on CUDA it is atomic, while
    index_put_(accumulate=True) sorts the indices there, so each device gets the one that is
    deterministic on it."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.flat_shape = flat.shape
        return flat[..., index]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (index,) = ctx.saved_tensors
        lead, flat_index = ctx.flat_shape[:-1], index.reshape(-1)
        grad = grad.reshape(*lead, -1)
        out = grad.new_zeros(ctx.flat_shape)
        if out.is_cuda:
            out.movedim(-1, 0).index_put_((flat_index,), grad.movedim(-1, 0), accumulate=True)  # a view: fills out
        else:
            out.scatter_add_(-1, flat_index.expand(*lead, -1), grad)
        return out, None


def weighted_sum(ref: torch.Tensor, taps: Taps) -> torch.Tensor:
    """sum_i w_i * ref[index_i] over the leading dims of `ref` (..., h, w) (`sharp_phases` of the
    reference for phase taps), divided by `norm`: the prediction, unrounded. Returns (..., *taps.shape)."""
    flat = ref.reshape(*ref.shape[:-2], -1)
    taken = _TakeTaps.apply(flat, taps.index) if flat.requires_grad else flat[..., taps.index]
    return (taken * taps.weight).sum(-2).reshape(*ref.shape[:-2], *taps.shape) / taps.norm


def _rounded(mixed: torch.Tensor, straight_through: bool = False) -> torch.Tensor:
    if straight_through:
        return mixed + (torch.floor(mixed.detach() + 0.5) - mixed.detach())
    return torch.floor(mixed + 0.5)


def compensate_source(source: torch.Tensor, taps: Taps) -> torch.Tensor:
    """`compensate` of a reference already expanded to what the taps read (`sharp_phases` of it for
    phase taps, else itself): to score many fields on one reference without filtering it again."""
    return _rounded(weighted_sum(source, taps))


def compensate(ref_pixels: torch.Tensor, taps: Taps, straight_through: bool = False) -> torch.Tensor:
    """The decoder's prediction of one plane (..., h, w) from 8-bit reference samples: integers, exact
    (floor(S / n + 1/2) with S an integer and n a power of 2). `straight_through`: the same values,
    with the gradient of the unrounded mix (training). Phase taps (sharp luma): the leading dims of
    `ref_pixels` are frames whose taps are stacked along the plane's rows (training's waves), or none."""
    if taps.phases:
        phases = sharp_phases(ref_pixels, straight_through)
        return _rounded(weighted_sum(phases.reshape(-1, phases.shape[-1]), taps), straight_through).reshape(ref_pixels.shape)
    return _rounded(weighted_sum(ref_pixels, taps), straight_through)


# --------------------------------------------------------------------------- the motion section


def _median3(a: int, b: int, c: int) -> int:
    return max(min(a, b), min(max(a, b), c))


def _predictor(rows: list[list[tuple[int, int]]], i: int, j: int, bx: int) -> tuple[int, int]:
    """H.264's vector predictor: the left vector on the first row, else the median of left, top, top-right
    (top-left when there is no top-right); a neighbour outside the frame counts as zero.
    On Python ints: the decoder runs it once per block (numpy per block was 4x slower)."""
    left = rows[i][j - 1] if j > 0 else (0, 0)
    if i == 0:
        return left
    top = rows[i - 1][j]
    corner = rows[i - 1][j + 1] if j + 1 < bx else (rows[i - 1][j - 1] if j > 0 else (0, 0))
    return _median3(left[0], top[0], corner[0]), _median3(left[1], top[1], corner[1])


def median_predictors(field: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """_predictor of blocks (i, j) of a (by, bx, 2) field at once, (k, 2): for the encoder's search,
    which knows every neighbour of a wavefront of blocks before choosing it."""
    bx = field.shape[1]
    zero = np.zeros((len(i), 2), np.int64)
    left = np.where((j > 0)[:, None], field[i, np.maximum(j - 1, 0)], zero)
    up = np.maximum(i - 1, 0)
    top = field[up, j]
    corner = np.where((j + 1 < bx)[:, None], field[up, np.minimum(j + 1, bx - 1)],
                      np.where((j > 0)[:, None], field[up, np.maximum(j - 1, 0)], zero))
    median = np.maximum(np.minimum(left, top), np.minimum(np.maximum(left, top), corner))
    return np.where((i > 0)[:, None], median, left)


def differences(field: np.ndarray) -> np.ndarray:
    """(by, bx, 2) vectors -> their differences from the median predictor, in raster order."""
    by, bx = field.shape[:2]
    field = field.astype(np.int64)
    i, j = (a.reshape(-1) for a in np.meshgrid(np.arange(by), np.arange(bx), indexing="ij"))
    return field - median_predictors(field, i, j).reshape(by, bx, 2)  # every neighbour is known here


def _undifferences(diffs: np.ndarray) -> np.ndarray:
    by, bx = diffs.shape[:2]
    rows: list[list[tuple[int, int]]] = []
    for i, drow in enumerate(diffs.tolist()):
        rows.append([])
        for j, (dy, dx) in enumerate(drow):
            py, px = _predictor(rows, i, j, bx)
            vy, vx = py + dy, px + dx
            if abs(vy) > MV_MAX or abs(vx) > MV_MAX:
                raise BitstreamError(f"a motion vector is beyond +-{MV_MAX} vector units: the file is damaged")
            rows[i].append((vy, vx))
    return np.array(rows, np.int64).reshape(by, bx, 2)


# --------------------------------------------------------------------------- quadtree fields

Node = tuple[int, int, int]  # (row, column, size), in cells of the smallest block


def children(node: Node, by: int, bx: int) -> list[Node]:
    i, j, size = node
    half = size // 2
    return [(i + a, j + b, half) for a in (0, half) for b in (0, half) if i + a < by and j + b < bx]


def tree(blocks: tuple[int, int], depth: int, split) -> tuple[list[np.ndarray], list[Node]]:
    """Walk the quadtree of a field of `blocks` = (by, bx) smallest blocks with roots 2**depth of
    them a side: `split(nodes)` gives the flags (0/1 array) of one depth's flagged nodes, in coding
    order. Returns the flags by depth and the leaves in coding order. The encoder's `split` reads
    its field, the decoder's reads the file: both walk the same tree."""
    by, bx = blocks
    span = 1 << depth
    roots = [(i, j, span) for i in range(0, by, span) for j in range(0, bx, span)]
    nodes, flags, is_split = roots, [], {}
    while nodes and nodes[0][2] > 1:
        these = np.asarray(split(nodes), np.int64)
        flags.append(these)
        is_split.update(zip(nodes, these.tolist()))
        nodes = [child for node, f in zip(nodes, these.tolist()) if f for child in children(node, by, bx)]

    def leaves(node: Node):
        if is_split.get(node):
            for child in children(node, by, bx):
                yield from leaves(child)
        else:
            yield node

    return flags, [leaf for root in roots for leaf in leaves(root)]


def canonical_split(field: np.ndarray):
    """The encoder's `split` for `tree`: a block is split when its cells do not all hold one vector."""
    def split(nodes: list[Node]) -> list[int]:
        return [int((field[i:i + s, j:j + s] != field[i, j]).any()) for i, j, s in nodes]
    return split


def leaf_predictor(rows: list[list], known: np.ndarray, i: int, j: int, size: int) -> tuple[int, int]:
    """H.264's predictor for a leaf at cell (i, j) of `size` cells: as `_predictor`, the top-right
    neighbour (the cell above-right of the leaf) used only once coded. Its left and top neighbours
    always are (roots in raster order, Z order inside)."""
    bx = known.shape[1]
    left = rows[i][j - 1] if j > 0 else (0, 0)
    if i == 0:
        return left
    top = rows[i - 1][j]
    if j + size < bx and known[i - 1, j + size]:
        corner = rows[i - 1][j + size]
    else:
        corner = rows[i - 1][j - 1] if j > 0 else (0, 0)
    return _median3(left[0], top[0], corner[0]), _median3(left[1], top[1], corner[1])


def _leaf_differences(field: np.ndarray, leaves: list[Node], base: np.ndarray | None = None) -> np.ndarray:
    """The leaves' vectors (n, 2) minus their predictors, in coding order. With a `base` field
    (a B-frame's mirrored first field, `mirrored`) the predictor works on the cells' field - base
    and is added to base at the leaf."""
    rel = field.astype(np.int64) - (0 if base is None else base)
    rows = [[tuple(v) for v in row] for row in rel.tolist()]
    known = np.zeros(field.shape[:2], bool)
    out = np.empty((len(leaves), 2), np.int64)
    for n, (i, j, size) in enumerate(leaves):
        py, px = leaf_predictor(rows, known, i, j, size)
        out[n] = rows[i][j][0] - py, rows[i][j][1] - px
        known[i:i + size, j:j + size] = True
    return out


def _undo_leaf_differences(diffs: np.ndarray, leaves: list[Node], blocks: tuple[int, int],
                           base: np.ndarray | None = None) -> np.ndarray:
    by, bx = blocks
    base_rows = np.zeros((by, bx, 2), np.int64).tolist() if base is None else base.tolist()
    rows: list[list] = [[(0, 0)] * bx for _ in range(by)]  # field - base, cell by cell
    out = np.zeros((by, bx, 2), np.int64)
    known = np.zeros(blocks, bool)
    for (dy, dx), (i, j, size) in zip(diffs.tolist(), leaves):
        py, px = leaf_predictor(rows, known, i, j, size)
        by0, bx0 = base_rows[i][j]
        vy, vx = by0 + py + dy, bx0 + px + dx
        if abs(vy) > MV_MAX or abs(vx) > MV_MAX:
            raise BitstreamError(f"a motion vector is beyond +-{MV_MAX} vector units: the file is damaged")
        i1, j1 = min(i + size, by), min(j + size, bx)
        out[i:i1, j:j1] = vy, vx
        for r in range(i, i1):
            rows[r][j:j1] = [(vy - cy, vx - cx) for cy, cx in base_rows[r][j:j1]]
        known[i:i + size, j:j + size] = True
    return out


MIRROR_VERSION = 11  # the first format version whose B-frames' second fields may be coded on their first
MODES = 2  # [version 11] a field's vectors predicted from its neighbours alone (0) or, a B-frame's second field, on its first mirrored (1)


def mirrored(field: np.ndarray, t: int, r0: int, r1: int) -> np.ndarray:
    """The field of frame t from r0 carried to reference r1 as linear motion would: each vector
    times (t - r1) / (t - r0), rounded half up (a B-frame between equally far references: -field)."""
    num, den = t - r1, t - r0
    if den < 0:
        num, den = -num, -den
    return np.clip(np.floor_divide(2 * field.astype(np.int64) * num + den, 2 * den), -MV_MAX, MV_MAX)


def readable_predictions(predictions: list[tuple[int, int]], version: int) -> list[tuple[int, int]] | None:
    """What decode_fields may use of a file's predictions: before MIRROR_VERSION no field has a base."""
    return predictions if version >= MIRROR_VERSION else None


def _mirror_pairs(predictions: list[tuple[int, int]] | None, count: int) -> list[tuple[int, int, int] | None]:
    """Per field, (t, r0, r1) if it is a B-frame's second field (its frame the field before's, in
    CodecConfig.predictions' order), which may be coded on the first mirrored; None for the others."""
    out: list[tuple[int, int, int] | None] = [None] * count
    for n in range(1, count if predictions else 0):
        (t0, r0), (t1, r1) = predictions[n - 1], predictions[n]
        if t0 == t1:
            out[n] = (t1, r0, r1)
    return out


def mirror_bases(fields: list[np.ndarray], predictions: list[tuple[int, int]] | None) -> list[np.ndarray | None]:
    """Per field, the base its vectors may be coded on: a B-frame's second field's is the first
    mirrored; None for the others."""
    pairs = _mirror_pairs(predictions, len(fields))
    return [None if pair is None else mirrored(fields[n - 1], *pair) for n, pair in enumerate(pairs)]


def coded_form(field: np.ndarray, depth: int = 0, base: np.ndarray | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """What the motion section holds for one field: its split flags by depth and its vector
    differences (n, 2) in coding order (with depth 0: no flags, every block in raster order),
    predicted on `base` if given (mode 1)."""
    field = field.astype(np.int64)
    if depth == 0:
        return [], differences(field - (0 if base is None else base)).reshape(-1, 2)
    flags, leaves = tree(field.shape[:2], depth, canonical_split(field))
    return flags, _leaf_differences(field, leaves, base)


def difference_bits(diffs: np.ndarray, scale_id: int) -> float:
    """Ideal bits of one component's differences under the table of `scale_id`."""
    tid = np.full(diffs.size, _MEAN_TABLE * entropy.NS + scale_id)
    return float(entropy.table_bits(tid, diffs.reshape(-1) + entropy.RMAX).sum())


def _scale_ids(diffs: np.ndarray) -> list[int]:
    """Per component, the table scale that codes these differences (n, 2) in the fewest bits."""
    return [min(range(entropy.NS), key=lambda s: difference_bits(diffs[:, c], s)) for c in (0, 1)]


@dataclass
class _Coded:
    """One field as the motion section codes it."""

    mode: int
    flags: list[np.ndarray]
    diffs: np.ndarray
    scale_ids: list[int]
    bits: float  # ideal size: id bytes, flags, vectors

    @property
    def ids(self) -> list[int]:
        return [self.scale_ids[0] + entropy.NS * self.mode, self.scale_ids[1]]


def _code_field(field: np.ndarray, depth: int, base: np.ndarray | None) -> _Coded:
    """The field's cheaper mode: on its neighbours alone, or (with a base) on the base too, each
    tried only when every difference (and, on the base, every vector's offset from it) stays
    codable; ValueError if neither does."""
    field = field.astype(np.int64)
    flags, diffs = coded_form(field, depth)
    forms = [(0, diffs)] if np.abs(diffs).max(initial=0) <= entropy.RMAX else []
    if base is not None and np.abs(field - base).max(initial=0) <= MV_MAX:
        _, on_base = coded_form(field, depth, base)
        if np.abs(on_base).max(initial=0) <= entropy.RMAX:
            forms.append((1, on_base))
    if not forms:
        raise ValueError(f"motion vector differences must stay within +-{entropy.RMAX} vector units")
    flag_bits = 8 * (2 + depth) + sum(entropy.flag_bits(entropy.best_flag_step(f), f) for f in flags)
    best = None
    for mode, d in forms:
        ids = _scale_ids(d)
        bits = flag_bits + sum(difference_bits(d[:, c], s) for c, s in enumerate(ids))
        if best is None or bits < best.bits:
            best = _Coded(mode, flags, d, ids, bits)
    return best


def cheaper_base(field: np.ndarray, base: np.ndarray, depth: int = 0) -> np.ndarray | None:
    """`base` if the field codes in fewer bits on it (mode 1) than on its neighbours alone, else None."""
    return base if _code_field(field, depth, base).mode else None


def field_bits(fields: list[np.ndarray], depth: int = 0, predictions: list[tuple[int, int]] | None = None) -> float:
    """Ideal size in bits of the motion section of these fields (the range coder adds at most a word);
    with their `predictions` ((frame, reference) each), B-frames' second fields may be coded on their first."""
    return sum(_code_field(f, depth, b).bits for f, b in zip(fields, mirror_bases(fields, predictions)))


def encode_fields(fields: list[np.ndarray], depth: int = 0, predictions: list[tuple[int, int]] | None = None) -> bytes:
    """The motion section for the predictions' fields (a P-frame's one, a B-frame's two; each (by, bx, 2) smallest blocks, |component|
    <= MV_MAX; quadtrees of `depth` levels under roots 2**depth blocks a side). With `predictions`
    ((frame, reference) per field, version 11) a B-frame's second field is coded on its first
    mirrored where that is cheaper."""
    for field in fields:
        if np.abs(field).max(initial=0) > MV_MAX:
            raise ValueError(f"motion vectors must stay within +-{MV_MAX} vector units")
    coder = entropy.LatentEncoder()
    ids = bytearray()
    for field, base in zip(fields, mirror_bases(fields, predictions)):
        coded = _code_field(field, depth, base)
        steps = [entropy.best_flag_step(f) for f in coded.flags] + [1] * (depth - len(coded.flags))  # a depth no block reached: any id
        ids += bytes(coded.ids + steps)
        for k, f in zip(steps, coded.flags):
            coder.code_flags(k, f)
        tid = (_MEAN_TABLE * entropy.NS + np.array(coded.scale_ids))[None, :].repeat(len(coded.diffs), 0).reshape(-1)
        coder.code(tid, coded.diffs.reshape(-1) + entropy.RMAX)
    return bytes(ids) + coder.finish()


def field_modes(data: bytes, count: int, depth: int = 0) -> list[int]:
    """Each of the `count` fields' modes, as a motion section that decode_fields accepted holds them."""
    return [b // entropy.NS for b in data[: (2 + depth) * count : 2 + depth]]


def decode_fields(data: bytes, count: int, blocks: tuple[int, int], frame_bits: list[float] | None = None,
                  depth: int = 0, predictions: list[tuple[int, int]] | None = None) -> list[np.ndarray]:
    """The `count` fields of `blocks` = (by, bx) smallest blocks each from a motion section (quadtrees
    of `depth` levels); BitstreamError if damaged. predictions: (frame, reference) per field, given
    for version 11 files, whose B-frames' second fields may be coded on their first. frame_bits: if
    a list, gets each field's bits (its id bytes, its flags' and vectors' ideal code lengths; stats only)."""
    by, bx = blocks
    per_frame = 2 + depth
    n_ids = per_frame * count
    if len(data) < n_ids:
        raise BitstreamError(f"motion section holds {len(data)} bytes, fewer than the {n_ids} table ids of {count} motion fields")
    capacity = entropy.max_symbols_for(len(data) - n_ids)
    ids = np.frombuffer(data[:n_ids], dtype=np.uint8).astype(np.int64).reshape(count, per_frame)
    modes, ids[:, 0] = ids[:, 0] // entropy.NS, ids[:, 0] % entropy.NS
    if ids[:, 1].max(initial=0) >= entropy.NS:
        raise BitstreamError(f"motion scale id {int(ids[:, 1].max())} is beyond the {entropy.NS} tables: the file is damaged")
    steps = ids[:, 2:]
    if steps.size and (steps.min() < 1 or steps.max() >= entropy.FLAG_STEPS):
        raise BitstreamError(f"motion split flag step {int(steps.max() if steps.max() >= entropy.FLAG_STEPS else steps.min())} "
                             f"is outside 1..{entropy.FLAG_STEPS - 1}: the file is damaged")
    pairs = _mirror_pairs(predictions, count)
    for n, mode in enumerate(modes.tolist()):
        if mode >= MODES or (mode and pairs[n] is None):
            raise BitstreamError(f"motion field {n} has prediction mode {mode}, which "
                                 f"{'does not exist' if mode >= MODES else 'only a B-frame second field of a version 11 file has'}: the file is damaged")
    decoder = entropy.LatentDecoder(data[n_ids:], "motion")
    coded = 0  # symbols taken so far: a short section cannot make the decoder walk a huge field

    def take(n: int) -> None:
        nonlocal coded
        coded += n
        if coded > capacity:
            raise BitstreamError(f"a motion section of {len(data)} bytes cannot hold {count} fields of {by}x{bx} vectors: the file is damaged")

    fields: list[np.ndarray] = []
    for n, (frame_ids, mode) in enumerate(zip(ids, modes.tolist())):
        flag_bits = 0.0
        if depth:
            depth_steps = iter(frame_ids[2:].tolist())

            def split(nodes: list[Node]) -> np.ndarray:
                nonlocal flag_bits
                take(len(nodes))
                k = next(depth_steps)
                flags = decoder.code_flags(k, len(nodes))
                flag_bits += entropy.flag_bits(k, flags)
                return flags

            _, leaves = tree(blocks, depth, split)
            count_n = len(leaves)
        else:
            count_n = by * bx
        take(2 * count_n)
        tid = (_MEAN_TABLE * entropy.NS + frame_ids[:2])[None, :].repeat(count_n, 0).reshape(-1)
        symbols = decoder.code(tid)
        if frame_bits is not None:
            frame_bits.append(8.0 * per_frame + flag_bits + float(entropy.table_bits(tid, symbols).sum()))
        diffs = (symbols - entropy.RMAX).reshape(count_n, 2)
        base = mirrored(fields[n - 1], *pairs[n]) if mode else None
        if depth:
            fields.append(_undo_leaf_differences(diffs, leaves, blocks, base))
        else:
            field = _undifferences(diffs.reshape(by, bx, 2)) + (0 if base is None else base)
            if np.abs(field).max(initial=0) > MV_MAX:
                raise BitstreamError(f"a motion vector is beyond +-{MV_MAX} vector units: the file is damaged")
            fields.append(field)
    return fields
