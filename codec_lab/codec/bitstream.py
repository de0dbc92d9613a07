"""The .clv file: one self-describing file per encoded video (no torch here).

Layout (all integers big-endian):

    offset  size  field
    0       4     magic b"CLVF"
    4       1     format version (10; versions 1 to 9, which lack the later fields, still decode)
    5       2     header length Hn (bytes that follow, before the sections)
    7       Hn    header: strategy u8, width u16, height u16, frames u16,
                  fps numerator u32, fps denominator u32,
                  levels u8, temporal stride u8 x levels,
                  synthesis layers u8, per layer (out u8, kernel u8, flags u8: 1 relu, 2 residual),
                  ARM hidden width u8, ARM hidden layers u8,
                  synthesis weight shift u8, ARM weight shift u8,
                  [version 2] inter synthesis layers u8 (0: every frame intra), per layer
                  (out u8, kernel u8, flags u8), inter weight shift u8,
                  [version 3] motion block size u8 (0: no motion vectors),
                  [version 4] intra period u16 (0: only frame 0 is intra),
                  [version 5] ARM context u8 (0: 2x2 phases, the only one before version 5;
                  1: raster-causal, decoded by wavefronts; see `model.py`),
                  [version 6] key prediction u8 (0: frames 0, P, 2P, ... are intra; 1: only
                  frame 0 is, and key frame kP is predicted from key frame (k-1)P; needs an
                  intra period P),
                  [version 7] motion split depth u8 (0: one vector per motion block; d: root
                  blocks of motion block << d a side, each split in four or not, down to
                  the motion block; see `motion.py`)
                  [version 8] overlapped motion compensation u8 (0: each block's own
                  vector; 1: blended across the edges of whole blocks, the largest aligned
                  blocks of at most 2**depth cells that hold one vector; see `motion.plane_taps`)
                  [version 9] sharp interpolation u8 (0: vectors in half pixels, bilinear;
                  1: in quarter pixels, luma through 6-tap phase planes; see `motion.sharp_phases`)
                  [version 10] bidirectional u8 (0: every predicted frame has one reference;
                  1: with key prediction, the frames between two anchors (the key frames, and
                  the clip's last frame) are B-frames, each predicted by the mean of its two
                  motion-compensated references, the anchors around it bisected: see
                  `frame_references`)
    ...     4+W   weights section: length u32, then the weights as signed
                  exp-Golomb codes (per tensor: [version 4] 3-bit coarsening c, then
                  4-bit order k, then the values), synthesis, then inter synthesis,
                  then ARM; a tensor's values are integers x 2**(c - its network's shift)
    ...     4+M   [version 3] motion section: length u32, then (with a motion block size)
                  the predictions' motion fields, a P-frame's one, a B-frame's two (see
                  `motion.py`; [version 11] a B-frame's second field may be coded on its
                  first mirrored, `motion.MODES`); empty otherwise
    ...     4+L   latents section: length u32, then constriction range-coder words (u32 little-endian)
    end-4   4     CRC-32 of every byte before it

Every length is checked against what is left of the file, and every size the
header implies (pixels, latents, weights) against fixed caps and against the
most the sections could hold, before anything is allocated.
"""

from __future__ import annotations

import struct
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from codec_lab.errors import BitstreamError

MAGIC = b"CLVF"
VERSION = 11
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
STRATEGIES = {1: "semantic_latent"}
STRATEGY_IDS = {v: k for k, v in STRATEGIES.items()}
SUFFIX = ".clv"

MAX_DIM = 8192
MAX_FRAMES = 10000
MAX_LEVELS = 10
MAX_CHANNELS = 64
MAX_LAYERS = 8
MAX_ARM_LAYERS = 4
MAX_SHIFT = 16
MAX_FPS = 1000
DEFAULT_MAX_PIXELS = 1 << 28  # frames x width x height the decoder agrees to produce
EG_MAX_ZEROS = 20
WEIGHT_LIMIT = (1 << 15) - 1
MOTION_BLOCKS = (4, 8, 16, 32)  # the block sizes `motion.py` may use
MAX_MOTION_ROOT = 64  # the largest quadtree root block (motion block << split depth)
MAX_INTRA_PERIOD = MAX_FRAMES
ARM_CONTEXTS = ("phases", "raster")  # header ids 0, 1 (model.py: what each is)


def key_frame(t: int, intra_period: int) -> bool:
    """Whether frame t of a clip with inter frames starts a GOP: frame 0, and every intra_period-th with one."""
    return t == 0 or (intra_period > 0 and t % intra_period == 0)


def intra_frame(t: int, intra_period: int, key_prediction: bool = False) -> bool:
    """Whether frame t of a clip with inter frames is intra: every key frame, or with key
    prediction frame 0 only (the later key frames are then predicted from the key frame before)."""
    return t == 0 if key_prediction else key_frame(t, intra_period)


def reference_frame(t: int, intra_period: int, key_prediction: bool = False) -> int:
    """The frame that predicted frame t is predicted from: t - 1, or with key prediction, for a key
    frame, the key frame before it."""
    return t - intra_period if key_prediction and key_frame(t, intra_period) else t - 1


def frame_references(t: int, frames: int, intra_period: int, key_prediction: bool = False,
                     bidirectional: bool = False) -> tuple[int, ...]:
    """The frames that frame t of a `frames`-frame clip with inter frames is predicted from: none
    for an intra frame, one for a P-frame (`reference_frame`), two, (before, after), for a B-frame.

    Bidirectional (needs key prediction): the *anchors* are the key frames and the clip's last
    frame, each a P-frame of the anchor before it; every other frame is a B-frame of the two
    nearest frames of the bisection of its anchors' interval (intra period 8: frame 4 from 0 and
    8, 2 from 0 and 4, 1 from 0 and 2, ...): hierarchical B-frames as in H.264/HEVC's random-access
    configuration: the frames between two anchors are at most the bisection's depth below the
    later one (the anchors themselves still form a chain)."""
    if intra_frame(t, intra_period, key_prediction):
        return ()
    if not bidirectional:
        return (reference_frame(t, intra_period, key_prediction),)
    if key_frame(t, intra_period):
        return (t - intra_period,)
    if t == frames - 1:
        return ((frames - 1) // intra_period * intra_period,)
    lo = t // intra_period * intra_period
    hi = min(lo + intra_period, frames - 1)
    while True:
        mid = (lo + hi) // 2
        if t == mid:
            return (lo, hi)
        lo, hi = (lo, mid) if t < mid else (mid, hi)


@dataclass(frozen=True)
class Header:
    strategy: str
    width: int
    height: int
    frames: int
    fps: Fraction
    levels: int
    temporal_strides: tuple[int, ...]
    synth: tuple[tuple[int, int, int], ...]  # (out, kernel, flags)
    arm_hidden: int
    arm_layers: int
    synth_shift: int
    arm_shift: int
    inter_synth: tuple[tuple[int, int, int], ...] = ()  # empty: every frame intra
    inter_shift: int = 0
    motion_block: int = 0  # 0: no motion vectors
    intra_period: int = 0  # 0: only frame 0 is intra
    arm_context: str = "raster"  # one of ARM_CONTEXTS (files before version 5: "phases")
    key_prediction: bool = False  # key frames after frame 0 predicted from the key frame before (version 6)
    motion_depth: int = 0  # motion fields as quadtrees of this many split levels (version 7)
    motion_overlap: bool = False  # overlapped block motion compensation (version 8)
    motion_sharp: bool = False  # quarter-pixel vectors, 6-tap luma interpolation (version 9)
    bidirectional: bool = False  # hierarchical B-frames between the anchors (version 10)

    @property
    def padded_size(self) -> tuple[int, int]:
        return self.height + self.height % 2, self.width + self.width % 2


@dataclass(frozen=True)
class Parsed:
    header: Header
    weights: bytes
    latents: bytes
    file_bytes: int
    motion: bytes = b""
    version: int = VERSION


def pack_header(h: Header) -> bytes:
    body = struct.pack(">BHHHII", STRATEGY_IDS[h.strategy], h.width, h.height, h.frames, h.fps.numerator, h.fps.denominator)
    body += struct.pack(">B", h.levels) + bytes(h.temporal_strides)
    body += struct.pack(">B", len(h.synth)) + b"".join(struct.pack(">BBB", *layer) for layer in h.synth)
    body += struct.pack(">BBBB", h.arm_hidden, h.arm_layers, h.synth_shift, h.arm_shift)
    body += struct.pack(">B", len(h.inter_synth)) + b"".join(struct.pack(">BBB", *layer) for layer in h.inter_synth)
    return body + struct.pack(">BBHBBBBBB", h.inter_shift, h.motion_block, h.intra_period, ARM_CONTEXTS.index(h.arm_context), h.key_prediction,
                              h.motion_depth, h.motion_overlap, h.motion_sharp, h.bidirectional)


def write_file(header: Header, weights: bytes, latents: bytes, motion: bytes = b"") -> bytes:
    body = pack_header(header)
    data = MAGIC + struct.pack(">BH", VERSION, len(body)) + body
    data += struct.pack(">I", len(weights)) + weights + struct.pack(">I", len(motion)) + motion
    data += struct.pack(">I", len(latents)) + latents
    return data + struct.pack(">I", zlib.crc32(data) & 0xFFFFFFFF)


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BitstreamError(f"{self.what} ends early: needs {n} more bytes at offset {self.pos}, has {len(self.data) - self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise BitstreamError(message)


def _layers(r: _Reader, n_layers: int, c_in: int, what: str) -> tuple[tuple[int, int, int], ...]:
    layers = []
    for _ in range(n_layers):
        out, kernel, flags = r.unpack(">BBB")
        _check(1 <= out <= MAX_CHANNELS and kernel in (1, 3) and flags < 4, f"bad {what} layer ({out}, {kernel}, {flags})")
        _check(not (flags & 2) or out == c_in, f"a residual {what} layer must keep its channel count")
        layers.append((out, kernel, flags))
        c_in = out
    _check(c_in == 3, f"the {what} must end with 3 channels, not {c_in}")
    return tuple(layers)


def parse_header(body: bytes, version: int = VERSION) -> Header:
    r = _Reader(body, "header")
    sid, width, height, frames, num, den = r.unpack(">BHHHII")
    _check(sid in STRATEGIES, f"unknown strategy id {sid} (this build knows {sorted(STRATEGIES)})")
    _check(1 <= width <= MAX_DIM and 1 <= height <= MAX_DIM, f"frame size {width}x{height} is outside 1..{MAX_DIM}")
    _check(1 <= frames <= MAX_FRAMES, f"frame count {frames} is outside 1..{MAX_FRAMES}")
    _check(num > 0 and den > 0 and Fraction(num, den) <= MAX_FPS, f"frame rate {num}/{den} is not a sane rate")
    (levels,) = r.unpack(">B")
    _check(1 <= levels <= MAX_LEVELS, f"latent levels {levels} outside 1..{MAX_LEVELS}")
    strides = tuple(r.take(levels))
    _check(all(s in (1, 2, 4, 8, 16, 32, 64) for s in strides), f"temporal strides {strides} must be powers of 2 up to 64")
    (n_layers,) = r.unpack(">B")
    _check(1 <= n_layers <= MAX_LAYERS, f"synthesis layers {n_layers} outside 1..{MAX_LAYERS}")
    synth = _layers(r, n_layers, levels, "synthesis")
    arm_hidden, arm_layers, synth_shift, arm_shift = r.unpack(">BBBB")
    _check(1 <= arm_hidden <= MAX_CHANNELS and arm_layers <= MAX_ARM_LAYERS, f"bad ARM size {arm_hidden}x{arm_layers}")
    _check(synth_shift <= MAX_SHIFT and arm_shift <= MAX_SHIFT, f"weight shifts {synth_shift}, {arm_shift} above {MAX_SHIFT}")
    inter_synth: tuple[tuple[int, int, int], ...] = ()
    inter_shift = 0
    if version >= 2:
        (n_inter,) = r.unpack(">B")
        _check(n_inter <= MAX_LAYERS, f"inter synthesis layers {n_inter} above {MAX_LAYERS}")
        inter_synth = _layers(r, n_inter, levels + 3, "inter synthesis") if n_inter else ()
        (inter_shift,) = r.unpack(">B")
        _check(inter_shift <= MAX_SHIFT, f"inter weight shift {inter_shift} above {MAX_SHIFT}")
    motion_block = 0
    if version >= 3:
        (motion_block,) = r.unpack(">B")
        _check(motion_block in (0, *MOTION_BLOCKS), f"motion block size {motion_block} is not one of 0, {', '.join(map(str, MOTION_BLOCKS))}")
        _check(not motion_block or inter_synth, "motion vectors without an inter synthesis")
    intra_period = 0
    if version >= 4:
        (intra_period,) = r.unpack(">H")
        _check(intra_period <= MAX_INTRA_PERIOD, f"intra period {intra_period} above {MAX_INTRA_PERIOD}")
    arm_context = 0
    if version >= 5:
        (arm_context,) = r.unpack(">B")
        _check(arm_context < len(ARM_CONTEXTS), f"ARM context id {arm_context} is not one of 0..{len(ARM_CONTEXTS) - 1}")
    key_prediction = 0
    if version >= 6:
        (key_prediction,) = r.unpack(">B")
        _check(key_prediction in (0, 1), f"key prediction flag {key_prediction} is not 0 or 1")
        _check(not key_prediction or (inter_synth and intra_period), "key prediction without an inter synthesis and an intra period")
    motion_depth = 0
    if version >= 7:
        (motion_depth,) = r.unpack(">B")
        _check(not motion_depth or (motion_block and motion_block << motion_depth <= MAX_MOTION_ROOT),
               f"motion split depth {motion_depth} does not fit motion block {motion_block} (roots up to {MAX_MOTION_ROOT})")
    motion_overlap = 0
    if version >= 8:
        (motion_overlap,) = r.unpack(">B")
        _check(motion_overlap in (0, 1), f"overlapped compensation flag {motion_overlap} is not 0 or 1")
        _check(not motion_overlap or motion_block, "overlapped compensation without a motion block")
    motion_sharp = 0
    if version >= 9:
        (motion_sharp,) = r.unpack(">B")
        _check(motion_sharp in (0, 1), f"sharp interpolation flag {motion_sharp} is not 0 or 1")
        _check(not motion_sharp or motion_block, "sharp interpolation without a motion block")
    bidirectional = 0
    if version >= 10:
        (bidirectional,) = r.unpack(">B")
        _check(bidirectional in (0, 1), f"bidirectional flag {bidirectional} is not 0 or 1")
        _check(not bidirectional or key_prediction, "B-frames without key prediction")
    _check(r.pos == len(body), f"header has {len(body) - r.pos} unexpected trailing bytes")
    return Header(STRATEGIES[sid], width, height, frames, Fraction(num, den), levels, strides, synth, arm_hidden, arm_layers,
                  synth_shift, arm_shift, inter_synth, inter_shift, motion_block, intra_period, ARM_CONTEXTS[arm_context],
                  bool(key_prediction), motion_depth, bool(motion_overlap), bool(motion_sharp), bool(bidirectional))


def parse_file(data: bytes) -> Parsed:
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitstreamError(f"not a codec-lab .clv file (magic {bytes(data[:4])!r}, expected {MAGIC!r})")
    r = _Reader(data, "file")
    r.take(4)
    (version,) = r.unpack(">B")
    if version > VERSION:
        raise BitstreamError(f"file format version {version} is newer than this codec-lab reads ({VERSION}); upgrade codec-lab")
    _check(version in READABLE_VERSIONS, f"unknown file format version {version}")
    if len(data) < 11:
        raise BitstreamError(f"file is truncated: {len(data)} bytes")
    (stored_crc,) = struct.unpack(">I", data[-4:])
    if zlib.crc32(data[:-4]) & 0xFFFFFFFF != stored_crc:
        raise BitstreamError("CRC-32 mismatch: the file is damaged or truncated")
    r = _Reader(data[:-4], "file")
    r.take(5)
    (header_len,) = r.unpack(">H")
    header = parse_header(r.take(header_len), version)
    (wlen,) = r.unpack(">I")
    weights = r.take(wlen)
    motion = b""
    if version >= 3:
        (mlen,) = r.unpack(">I")
        motion = r.take(mlen)
        predicted = sum(not intra_frame(t, header.intra_period, header.key_prediction) for t in range(header.frames))
        _check(bool(motion) == bool(header.motion_block and predicted),
               f"a motion section of {mlen} bytes does not fit a header with motion block {header.motion_block} and {predicted} predicted frames")
    (llen,) = r.unpack(">I")
    latents = r.take(llen)
    _check(r.pos == len(r.data), f"{len(r.data) - r.pos} unexpected bytes after the last section")
    return Parsed(header, weights, latents, len(data), motion, version)


def read_file(path: str | Path) -> bytes:
    """A .clv file's bytes, or a BitstreamError that says why they cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BitstreamError(f"{path}: cannot read ({exc.strerror})") from None


@contextmanager
def naming(path: str | Path):
    """BitstreamErrors raised inside name the file they are about."""
    try:
        yield
    except BitstreamError as exc:
        raise BitstreamError(f"{path}: {exc}") from None


def read_header(path: str | Path) -> Header:
    """The header of the .clv file at `path` (the whole file is checked as parse_file does)."""
    data = read_file(path)
    with naming(path):
        return parse_file(data).header


# --------------------------------------------------------------------------- weights (signed exp-Golomb)


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def write(self, value: int, n: int) -> None:
        self.bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    def to_bytes(self) -> bytes:
        pad = (-len(self.bits)) % 8
        return np.packbits(np.array(self.bits + [0] * pad, dtype=np.uint8)).tobytes()


class BitReader:
    def __init__(self, data: bytes) -> None:
        self.bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        self.pos = 0

    def read(self, n: int) -> int:
        if self.pos + n > len(self.bits):
            raise BitstreamError("weights section ends early: the file is damaged")
        value = 0
        for b in self.bits[self.pos : self.pos + n]:
            value = (value << 1) | int(b)
        self.pos += n
        return value


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def eg_bits(values: np.ndarray, k: int) -> int:
    u = np.where(values >= 0, 2 * values, -2 * values - 1).astype(np.int64) + (1 << k)
    nbits = np.floor(np.log2(u)).astype(np.int64) + 1
    return int(np.sum(2 * nbits - k - 1))


def write_eg(w: BitWriter, values: np.ndarray, k: int) -> None:
    for v in values.reshape(-1).tolist():
        u = _zigzag(int(v)) + (1 << k)
        n = u.bit_length()
        w.write(0, n - k - 1)
        w.write(u, n)


def read_eg(r: BitReader, count: int, k: int) -> np.ndarray:
    out = np.empty(count, dtype=np.int64)
    for i in range(count):
        zeros = 0
        while r.read(1) == 0:
            zeros += 1
            if zeros > EG_MAX_ZEROS:
                raise BitstreamError("weights section holds an impossible code: the file is damaged")
        u = (1 << (zeros + k)) | r.read(zeros + k)
        u -= 1 << k
        v = u // 2 if u % 2 == 0 else -(u + 1) // 2
        if abs(v) > WEIGHT_LIMIT:
            raise BitstreamError("a network weight is out of range: the file is damaged")
        out[i] = v
    return out


COARSEN_BITS = 3  # [version 4] per tensor: its step is 2**c times its network's, c < 2**COARSEN_BITS
MAX_COARSEN = (1 << COARSEN_BITS) - 1


def pack_weights(tensors: list[np.ndarray], coarsen: list[int] | None = None) -> bytes:
    """The weights section: each tensor's integers (and its coarsening, default 0)."""
    w = BitWriter()
    for i, t in enumerate(tensors):
        flat = t.reshape(-1).astype(np.int64)
        c = coarsen[i] if coarsen else 0
        if not 0 <= c <= MAX_COARSEN:
            raise ValueError(f"coarsening {c} outside 0..{MAX_COARSEN}")
        k = _eg_order(flat)
        w.write(c, COARSEN_BITS)
        w.write(k, 4)
        write_eg(w, flat, k)
    return w.to_bytes()


def _eg_order(flat: np.ndarray) -> int:
    """The exp-Golomb order that codes these values in the fewest bits."""
    return min(range(16), key=lambda k: eg_bits(flat, k))


def weight_bits(tensor: np.ndarray) -> int:
    """What `pack_weights` spends on one tensor, in bits."""
    flat = tensor.reshape(-1).astype(np.int64)
    return COARSEN_BITS + 4 + eg_bits(flat, _eg_order(flat))


def unpack_weights(data: bytes, shapes: list[tuple[int, ...]], version: int = VERSION) -> tuple[list[np.ndarray], list[int]]:
    """The tensors' integers and coarsenings (all 0 before version 4)."""
    r = BitReader(data)
    out, coarsen = [], []
    for shape in shapes:
        count = int(np.prod(shape))
        if count > len(r.bits) - r.pos:  # every code takes at least one bit
            raise BitstreamError("weights section is shorter than the networks the header describes")
        coarsen.append(r.read(COARSEN_BITS) if version >= 4 else 0)
        k = r.read(4)
        out.append(read_eg(r, count, k).reshape(shape))
    if len(r.bits) - r.pos >= 8:
        raise BitstreamError("weights section has unexpected trailing bytes")
    return out, coarsen
