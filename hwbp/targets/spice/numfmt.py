"""Vectorized text of float64 arrays, byte for byte ``'%.17g' % v`` (and netlist lines built from it).

A large netlist is mostly numbers: the 784-256-256-10 MLP has 269k conductances,
and Python's float formatting (``'%.17g' % v``, ~0.5 us each) was most of the time
spent writing it.  :func:`g17_matrix` computes the same text for a whole array with
numpy:

* the 17 significant digits ``D = round(|v| * 10**(16 - E))`` are found exactly:
  ``|v| * 10**k`` is a double-double product (Dekker's exact two-product with
  ``10**k`` held as a double-double from a table made with exact fractions), whose
  error is below 1e-14 of a unit of the last digit, so rounding to the nearest integer
  is correct except within 1e-9 of a tie; those values, and non-finite, subnormal or
  beyond-1e280 ones, are formatted by Python itself, so the output always equals
  ``'%.17g' % v``;
* the characters are laid out in a fixed-width ``uint8`` matrix in which unused cells
  are NUL; deleting the NULs (``bytes.translate``) leaves the text.

17 significant digits always read back to the same double (ngspice included).
:func:`layer_blocks` builds the G-element lines of a dense synapse layer the same way:
row and column name pieces broadcast into one ``(rows, cols, width)`` matrix next to
the conductances' text, then one NUL removal.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

import numpy as np

__all__ = ["g17_matrix", "g17_strings", "padded", "layer_blocks"]

_KMIN, _KMAX = -300, 300


def _pow10_table() -> tuple[np.ndarray, np.ndarray]:
    """``10**k`` for ``k`` in ``[_KMIN, _KMAX]`` as double-doubles ``hi + lo`` (exact
    fractions rounded twice: ``hi`` the nearest double, ``lo`` the nearest to the rest)."""
    hi = np.empty(_KMAX - _KMIN + 1)
    lo = np.empty_like(hi)
    for k in range(_KMIN, _KMAX + 1):
        v = Fraction(10) ** k
        hi[k - _KMIN] = h = float(v)
        lo[k - _KMIN] = float(v - Fraction(h))
    return hi, lo


_HI, _LO = _pow10_table()
#: Dekker's splitter 2**27 + 1.
_SPLIT = 134217729.0
#: 0..9999 as four ASCII digits packed in one little-endian uint32 each (byte b: digit b).
_LUT4 = np.frombuffer(b"".join(b"%04d" % i for i in range(10000)), dtype="<u4")
#: Trailing zero digits of 0..9999 written with four digits.
_TZ4 = np.array([4 if i == 0 else len(str(i)) - len(str(i).rstrip("0")) for i in range(10000)], np.int8)
_E16, _E17 = 10 ** 16, 10 ** 17
_POS = np.arange(17, dtype=np.int8)
#: Column layout of one value: sign, "0.000" lead, digits before the point, the point,
#: digits after it, exponent "e+dd"/"e-ddd", newline.
_SIGN, _LEAD, _A, _DOT, _B, _EXP, _NL = 0, 1, 6, 23, 24, 41, 46
#: Width of a value's row (NUL padded).
VALUE_WIDTH = 47
#: Character matrix per block of rows in :func:`layer_blocks` (bytes): small enough to
#: stay in cache and be reused by the allocator, large enough to amortize numpy calls.
BLOCK_BYTES = 1 << 21


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = _SPLIT * x
    h = c - (c - x)
    return h, x - h


def _round17(mag: np.ndarray, e10: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``P = mag * 10**(16 - e10)``: ``floor(P)``, ``P`` rounded to the nearest
    integer, and where that rounding is not certain (within 1e-9 of a tie)."""
    k = 16 - e10 - _KMIN
    hi, lo = _HI[k], _LO[k]
    p = mag * hi
    ah, al = _split(mag)
    bh, bl = _split(hi)
    err = ((ah * bh - p) + ah * bl + al * bh) + al * bl  # mag * hi == p + err exactly
    ip = np.floor(p)
    r = (p - ip) + err + mag * lo
    rf = np.floor(r)
    f = r - rf
    floor = ip.astype(np.int64) + rf.astype(np.int64)
    return floor, floor + (f > 0.5), np.abs(f - 0.5) < 1e-9


def g17_matrix(values: np.ndarray) -> np.ndarray:
    """``'%.17g' % v + '\\n'`` of every value as a NUL-padded ``(n, VALUE_WIDTH)``
    ``uint8`` matrix (row ``i``: value ``i`` of ``values.ravel()``)."""
    a = np.ascontiguousarray(values, dtype=np.float64).ravel()
    n = a.size
    mag = np.abs(a)
    zero = mag == 0
    ok = ((mag >= 1e-280) & (mag < 1e280)) | zero
    safe = np.where(ok & ~zero, mag, 1.0)
    e10 = np.floor(np.log10(safe)).astype(np.int64)
    floor, digits, unsure = _round17(safe, e10)
    for _ in range(2):  # log10 may miss the decade by one next to a power of ten
        fix = (floor < _E16) | (floor >= _E17)
        if not fix.any():
            break
        idx = np.nonzero(fix)[0]
        e10[idx] += np.where(floor[idx] >= _E17, 1, -1)
        floor[idx], digits[idx], unsure[idx] = _round17(safe[idx], e10[idx])
    bad = ~ok | unsure | (floor < _E16) | (floor >= _E17)
    up = digits == _E17  # rounded up to the next decade
    digits[up] = _E16
    e10[up] += 1
    e10 = e10.astype(np.int16)
    e10[zero] = 0

    # position-major (VALUE_WIDTH, n): every operation runs along the values
    out = np.zeros((VALUE_WIDTH, n), np.uint8)
    out[_SIGN] = np.signbit(a) * np.uint8(45)  # '-'
    q, c4 = np.divmod(digits, 10000)
    q, c3 = np.divmod(q, 10000)
    d0, q = np.divmod(q, 10000 ** 2)
    c1, c2 = np.divmod(q, 10000)
    dig = np.empty((17, n), np.uint8)
    dig[0] = d0 + 48
    for k, c in enumerate((c1, c2, c3, c4)):
        packed = _LUT4[c]
        for b in range(4):  # little-endian: byte b is the (b + 1)-th of the four digits
            dig[1 + 4 * k + b] = (packed >> np.uint32(8 * b)) & np.uint32(0xFF)
    dig[0, zero] = 48
    tz = np.zeros(n, np.int8)  # trailing zeros of the 17 digits
    run = np.ones(n, bool)
    for c in (c4, c3, c2, c1):
        t = _TZ4[c]
        tz += t * run
        run &= t == 4
    nsig = (17 - tz).astype(np.int8)
    nsig[zero] = 1
    fpos = (e10 >= 0) & (e10 < 17)
    fneg = (e10 >= -4) & (e10 < 0)
    expo = ~(fpos | fneg)
    len_a = np.where(fpos, e10 + 1, np.where(fneg, nsig, 1)).astype(np.int8)
    end_b = np.where(fneg, 0, nsig).astype(np.int8)
    lead = np.where(fneg, 1 - e10, 0).astype(np.int8)
    pos = _POS[:, None]
    out[_LEAD:_A] = np.frombuffer(b"0.000", np.uint8)[:, None] * (pos[:5] < lead)
    out[_A:_DOT] = dig * (pos < len_a)
    out[_DOT] = (end_b > len_a) * np.uint8(46)  # '.'
    out[_B:_EXP] = dig * ((pos >= len_a) & (pos < end_b))
    ae = np.abs(e10)
    three = ae >= 100
    h, t = np.divmod(ae, 100)
    t, o = np.divmod(t, 10)
    n_exp = np.where(expo, np.where(three, 5, 4), 0)
    out[_EXP] = (n_exp > 0) * np.uint8(101)  # 'e'
    out[_EXP + 1] = (n_exp > 0) * np.where(e10 < 0, 45, 43).astype(np.uint8)
    out[_EXP + 2] = (n_exp > 0) * (np.where(three, h, t) + 48).astype(np.uint8)
    out[_EXP + 3] = (n_exp > 0) * (np.where(three, t, o) + 48).astype(np.uint8)
    out[_EXP + 4] = (n_exp > 4) * (o + 48).astype(np.uint8)
    out[_NL] = 10
    for i in np.nonzero(bad)[0].tolist():  # rare: Python's own text
        text = ("%.17g" % a[i]).encode("ascii")
        out[:_NL, i] = 0
        out[:len(text), i] = np.frombuffer(text, np.uint8)
    return np.ascontiguousarray(out.T)


def g17_strings(values: np.ndarray) -> list[str]:
    """``['%.17g' % v for v in values.ravel()]``, computed with :func:`g17_matrix`."""
    text = g17_matrix(values).tobytes().translate(None, b"\0").decode("ascii")
    return text.split("\n")[:-1]


def padded(strings: Sequence[str]) -> np.ndarray:
    """``strings`` (ASCII, no NUL) as a NUL-padded ``(len, width)`` ``uint8`` matrix."""
    arr = np.array([s.encode("ascii") for s in strings], dtype=bytes)
    return arr.view(np.uint8).reshape(len(strings), arr.dtype.itemsize)


def layer_blocks(rows: Sequence[Sequence[str]], cols: Sequence[Sequence[str]],
                 values: np.ndarray | Sequence[np.ndarray], lines: Sequence[Sequence[tuple[str, int]]]) -> list[str]:
    """Text of a dense layer: for every row ``j`` and column ``i`` (row-major) the
    ``lines``, each a sequence of pieces ``("r", k)`` (``rows[k][j]``), ``("c", k)``
    (``cols[k][i]``) or ``("v", k)`` (``'%.17g' % values[k][j, i]``, ending the line;
    ``values`` is one ``(rows, cols)`` array or a sequence of them).

    Rows are written in blocks of about :data:`BLOCK_BYTES` of character matrix, so
    the working memory stays small and in cache whatever the layer's size; the result
    is one text per block, its lines joined by newlines, with no newline at the end
    (``"\\n".join`` of the blocks is the layer's text)."""
    arrays = [values] if isinstance(values, np.ndarray) else list(values)
    n_r, n_c = arrays[0].shape
    mats = {"r": [padded(r) for r in rows], "c": [padded(c) for c in cols]}
    width = sum(VALUE_WIDTH if kind == "v" else mats[kind][k].shape[1] for line in lines for kind, k in line)
    used = sorted({k for line in lines for kind, k in line if kind == "v"})
    step = max(1, BLOCK_BYTES // max(1, n_c * width))
    # one character matrix, reused block after block; numpy writes into the bytearray's
    # memory, which bytearray.translate then reads without another copy
    store = bytearray(min(step, n_r) * n_c * width)
    parts = []
    for r0 in range(0, n_r, step):
        r1 = min(n_r, r0 + step)
        size = (r1 - r0) * n_c * width
        block = store if size == len(store) else bytearray(size)
        buf = np.frombuffer(block, np.uint8).reshape(r1 - r0, n_c, width)
        vms = {k: g17_matrix(arrays[k][r0:r1]).reshape(r1 - r0, n_c, VALUE_WIDTH) for k in used}
        at = 0
        for line in lines:
            for kind, k in line:
                if kind == "v":
                    buf[:, :, at:at + VALUE_WIDTH] = vms[k]
                    at += VALUE_WIDTH
                elif kind == "r":
                    m = mats["r"][k]
                    buf[:, :, at:at + m.shape[1]] = m[r0:r1, None, :]
                    at += m.shape[1]
                else:
                    m = mats["c"][k]
                    buf[:, :, at:at + m.shape[1]] = m[None, :, :]
                    at += m.shape[1]
        del buf  # release the export before the bytearray is read
        parts.append(block.translate(None, b"\0")[:-1].decode("ascii"))
    return parts
