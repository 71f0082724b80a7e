"""Borrowed array references (kernels/cpu/borrow.py): same data, no ownership, and the
loops that use them give the results of the plain loops bit for bit; column views
(``column``) equal ``A[:, l]`` and let a loop over the columns vectorise."""
import re
import sys

import numpy as np
from numba import njit

from jitsolve.kernels.cpu.borrow import borrow, column, keep_alive


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


@njit(cache=False, error_model="numpy")
def _lorenz(du, u, p, t):
    du[0] = 10.0 * (u[1] - u[0])
    du[1] = u[0] * (p[0] - u[2]) - u[1]
    du[2] = u[0] * u[1] - 8.0 / 3.0 * u[2]


@njit(cache=False, error_model="numpy")
def _lorenz_columns(DU, U, P):
    for l in range(U.shape[1]):
        _lorenz(column(DU, l), column(U, l), column(P, l), 0.0)


@njit(cache=False)
def _column_facts(a, l):
    c = column(a, l)
    c[0] += 1.0                       # written through to a[0, l]
    return c.shape[0], c.strides[0], c.sum()


def test_column_is_the_column_written_through():
    rng = np.random.default_rng(4)
    for rows, cols in ((1, 1), (3, 5), (4, 64)):
        a = rng.standard_normal((rows, cols))
        ref = sys.getrefcount(a)
        for l in (0, cols - 1, cols // 2):
            before = a[:, l].copy()
            n, stride, total = _column_facts(a, l)
            assert (n, stride) == (rows, cols * 8)
            assert total == (before + np.eye(rows)[0]).sum()
            assert a[0, l] == before[0] + 1.0 and np.array_equal(a[1:, l], before[1:])
        assert sys.getrefcount(a) == ref


def test_column_loop_vectorises_and_equals_rows():
    # Numba's own a[:, l] takes the column offset from the run-time strides: gathers; the
    # column views compile to consecutive SIMD loads and stores, with the same bits as the
    # row-by-row evaluation
    rng = np.random.default_rng(5)
    L = 64
    U = rng.standard_normal((3, L))
    P = rng.uniform(20.0, 30.0, (1, L))
    DU = np.zeros((3, L))
    _lorenz_columns(DU, U, P)
    ref = np.zeros(3)
    for l in range(L):
        _lorenz(ref, np.ascontiguousarray(U[:, l]), P[:, l].copy(), 0.0)
        assert np.array_equal(DU[:, l], ref)
    ir = _lorenz_columns.inspect_llvm(_lorenz_columns.signatures[0])
    assert "masked.gather" not in ir
    assert re.search(r"load <\d+ x double>", ir) and re.search(r"store <\d+ x double>", ir)


def test_column_rejects_other_layouts():
    import pytest
    from numba.core.errors import TypingError

    @njit(cache=False)
    def bad(x):
        return column(x, 0)

    with pytest.raises(TypingError):
        bad(np.zeros(4))                    # 1-D
    with pytest.raises(TypingError):
        bad(np.zeros((4, 3)).T)             # not C-contiguous
