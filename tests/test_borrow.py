"""Borrowed array references (kernels/cpu/borrow.py): same data, no ownership, and the
loops that use them give the results of the plain loops bit for bit."""
import sys

import numpy as np
from numba import njit

from jitsolve.kernels.cpu.borrow import borrow, keep_alive


@njit(cache=False)
def _scale_rows(a, c):
    b = borrow(a)
    for i in range(b.shape[0]):
        row = b[i]                   # a view of a borrowed array: no reference counting
        for j in range(row.size):
            row[j] *= c
    return b.shape[0], b.strides[0], b[0, 0]


@njit(cache=False)
def _sum_local(n):
    own = np.arange(n) * 1.0
    v = borrow(own)
    s = 0.0
    for i in range(v.size):
        s += v[i]
    keep_alive(own)                  # the owner lives until here
    return s


@njit(cache=False)
def _rowsum(a, borrowed):
    x = borrow(a) if borrowed else a
    out = np.zeros(x.shape[0])
    for i in range(x.shape[0]):
        r = x[i]
        for j in range(r.size):
            out[i] += r[j] * 0.5 + 1e-3
    return out


def test_borrow_is_the_same_array_written_through():
    a = np.arange(12.0).reshape(3, 4)
    ref = sys.getrefcount(a)
    rows, stride, first = _scale_rows(a, 2.0)
    assert (rows, stride, first) == (3, 32, 0.0)
    assert np.array_equal(a, 2.0 * np.arange(12.0).reshape(3, 4))
    assert sys.getrefcount(a) == ref          # nothing kept, nothing leaked


def test_local_owner_kept_alive():
    for n in (1, 7, 1000):
        assert _sum_local(n) == n * (n - 1) / 2.0


def test_borrowed_loop_equals_plain_loop_bitwise():
    rng = np.random.default_rng(3)
    for shape in ((1, 1), (5, 3), (64, 7)):
        a = rng.standard_normal(shape)
        assert np.array_equal(_rowsum(a, True), _rowsum(a, False))
        assert np.allclose(_rowsum(a, True), (a * 0.5 + 1e-3).sum(axis=1), rtol=1e-13,
                           atol=1e-13)


def test_borrow_rejects_non_arrays():
    import pytest
    from numba.core.errors import TypingError

    @njit(cache=False)
    def bad(x):
        return borrow(x)

    with pytest.raises(TypingError):
        bad(1.0)
