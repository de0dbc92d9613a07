"""Integer entropy model tables and range coding of latents (shared by encoder and decoder).

Every latent is coded with a quantized Laplace distribution whose parameters come
from the fixed-point ARM (see `model.arm_fixed`) as two small integers:

- the mean, clamped to [-LMAX, LMAX], split into an integer part `m` and a
  fraction index `f` in 0..NF-1 (the table uses the bin centre (f + 0.5) / NF);
- the log2 of the scale, rounded to 1/S_RES steps in [S_MIN, S_MAX] -> index `s`.

For each (f, s) pair there is one table of integer frequencies summing to 2**PREC
over the symbols r = q - m in [-RMAX, RMAX]. The tables are built with IEEE
basic operations only (+, -, *, /, floor, ldexp; our own `det_exp` instead of a
libm `exp`), so they are bit-identical on every machine. Probabilities handed to
constriction are exact dyadic numbers (count / 2**PREC), so the coder sees
the same inputs everywhere, and its own quantization is deterministic Rust.

Every table gives each symbol at least one count and keeps at least ~2**-12
of the mass off its most likely symbol: every coded latent costs at least
~3.5e-4 bits, which bounds how many symbols a section of a given length can
hold (`max_symbols_for`), so a hostile header cannot make the decoder run for
long on a short file.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

LMAX = 63  # latents live in [-LMAX, LMAX]
RMAX = 2 * LMAX  # symbol offsets r = q - floor(mu) live in [-RMAX, RMAX]
K = 2 * RMAX + 1  # alphabet size
NF = 16  # mean fraction steps
S_MIN = -5.0  # log2 scale range
S_MAX = 5.0
S_RES = 4  # steps per unit of log2 scale
NS = int((S_MAX - S_MIN) * S_RES) + 1
PREC = 24
TOTAL = 1 << PREC
RESERVE = 1 << 12  # mass kept off the most likely symbol (see module doc)
MIN_BITS_PER_SYMBOL = 3.4e-4  # lower bound on -log2(max probability) given RESERVE
N_TABLES = NF * NS

_LN2 = 0.6931471805599453
_INV_LN2 = 1.4426950408889634


def det_exp(x: np.ndarray) -> np.ndarray:
    """exp(x) for x <= 0 with IEEE basic operations only: the same bits on every machine."""
    x = np.maximum(np.asarray(x, dtype=np.float64), -700.0)
    k = np.floor(x * _INV_LN2 + 0.5)
    r = x - k * _LN2
    p = np.ones_like(r)
    for n in range(16, 0, -1):  # Horner on the Taylor series of exp(r), |r| <= ln2/2
        p = 1.0 + p * r / float(n)
    return np.ldexp(p, k.astype(np.int64))


def _scales() -> np.ndarray:
    # b = 2**(S_MIN + i/S_RES) = 2**floor * 2**(frac): frac in {0, 1/4, 1/2, 3/4} from fixed literals.
    frac = np.array([1.0, 1.189207115002721, 1.4142135623730951, 1.681792830507429], dtype=np.float64)
    i = np.arange(NS)
    whole = np.floor(S_MIN + i / S_RES)
    return np.ldexp(frac[i % S_RES], whole.astype(np.int64))


@lru_cache(maxsize=1)
def frequency_tables() -> np.ndarray:
    """(NF * NS, K) int64 frequencies, each row summing to TOTAL. Deterministic across machines."""
    f = (np.arange(NF, dtype=np.float64) + 0.5) / NF  # bin centres of the mean fraction
    b = _scales()
    edges = np.arange(K + 1, dtype=np.float64) - (RMAX + 0.5)  # symbol r covers [r - 0.5, r + 0.5]
    d = edges[None, None, :] - f[:, None, None]  # (NF, 1, K+1)
    d = np.broadcast_to(d, (NF, NS, K + 1))
    e = det_exp(-np.abs(d) / b[None, :, None])
    cdf = np.where(d < 0, 0.5 * e, 1.0 - 0.5 * e)
    cdf[..., 0] = 0.0
    cdf[..., -1] = 1.0
    pmf = np.maximum(cdf[..., 1:] - cdf[..., :-1], 0.0).reshape(N_TABLES, K)
    counts = 1 + np.floor(pmf * float(TOTAL - K - RESERVE)).astype(np.int64)
    rem = TOTAL - counts.sum(axis=1)
    counts += (rem // K)[:, None]
    counts[np.arange(N_TABLES), 0] += rem % K
    assert np.all(counts.sum(axis=1) == TOTAL)
    return counts


@lru_cache(maxsize=N_TABLES)
def _model(tid: int):
    import constriction

    probs = frequency_tables()[tid].astype(np.float64) / float(TOTAL)
    return constriction.stream.model.Categorical(probs, perfect=False)


FLAG_STEPS = 32  # a binary flag's probability of 1 is k / FLAG_STEPS, k = 1 .. FLAG_STEPS - 1 (a flag costs >= 0.046 bits)


@lru_cache(maxsize=FLAG_STEPS)
def _flag_model(k: int):
    import constriction

    return constriction.stream.model.Categorical(np.array([FLAG_STEPS - k, k], np.float64) / FLAG_STEPS, perfect=False)


def flag_bits(k: int, flags: np.ndarray) -> float:
    """Ideal code length of binary `flags` when a 1 has probability k / FLAG_STEPS."""
    ones = int(np.count_nonzero(flags))
    return float(ones * (np.log2(FLAG_STEPS) - np.log2(k)) + (len(flags) - ones) * (np.log2(FLAG_STEPS) - np.log2(FLAG_STEPS - k)))


def best_flag_step(flags: np.ndarray) -> int:
    """The k (1 .. FLAG_STEPS - 1) that codes these flags in the fewest bits."""
    return min(range(1, FLAG_STEPS), key=lambda k: flag_bits(k, flags))


def table_bits(tid: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Ideal code length in bits of each symbol (index into 0..K-1) under its table (a check only)."""
    counts = frequency_tables()[tid, symbols]
    return PREC - np.log2(counts.astype(np.float64))


def group_order(tid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coding order within one parallel step: symbols grouped by table, stable inside a group."""
    order = np.argsort(tid, kind="stable")
    uniq, starts = np.unique(tid[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    return order, uniq, np.stack([starts, ends], axis=1)


class LatentEncoder:
    def __init__(self) -> None:
        import constriction

        self._enc = constriction.stream.queue.RangeEncoder()
        self.ideal_bits = 0.0

    def code(self, tid: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        order, uniq, spans = group_order(tid)
        sym = symbols[order].astype(np.int32)
        for t, (a, b) in zip(uniq.tolist(), spans.tolist()):
            self._enc.encode(np.ascontiguousarray(sym[a:b]), _model(int(t)))
        self.ideal_bits += float(table_bits(tid, symbols).sum())
        return symbols

    def code_flags(self, k: int, flags: np.ndarray) -> np.ndarray:
        """Binary flags, a 1 having probability k / FLAG_STEPS."""
        if len(flags):
            self._enc.encode(np.ascontiguousarray(flags, dtype=np.int32), _flag_model(k))
        self.ideal_bits += flag_bits(k, flags)
        return flags

    def finish(self) -> bytes:
        return self._enc.get_compressed().astype("<u4").tobytes()


class LatentDecoder:
    def __init__(self, data: bytes, section: str = "latent") -> None:
        import constriction

        self.section = section

        if len(data) % 4:
            from codec_lab.errors import BitstreamError

            raise BitstreamError(f"{section} section length is not a multiple of 4 bytes: the file is damaged")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        self._dec = constriction.stream.queue.RangeDecoder(words)

    def _decode(self, model, n: int) -> np.ndarray:
        try:
            return self._dec.decode(model, n)
        except BaseException as exc:  # constriction raises (or panics, a BaseException) on data it cannot decode
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            from codec_lab.errors import BitstreamError

            raise BitstreamError(f"{self.section} data cannot be decoded ({exc}): the file is damaged") from None

    def code(self, tid: np.ndarray, symbols: np.ndarray | None = None) -> np.ndarray:
        order, uniq, spans = group_order(tid)
        out = np.empty(len(tid), dtype=np.int64)
        for t, (a, b) in zip(uniq.tolist(), spans.tolist()):
            out[order[a:b]] = self._decode(_model(int(t)), int(b - a))
        return out

    def code_flags(self, k: int, n: int) -> np.ndarray:
        """`n` binary flags coded by LatentEncoder.code_flags(k, ...)."""
        return self._decode(_flag_model(k), n).astype(np.int64) if n else np.zeros(0, np.int64)


def max_symbols_for(section_bytes: int) -> int:
    """The most latents a section of this many bytes can carry (see the module doc), with slack."""
    return int((section_bytes * 8 + 64) / MIN_BITS_PER_SYMBOL) + 1024
