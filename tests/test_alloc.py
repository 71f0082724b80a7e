"""The loops' allocation intrinsics (kernels/cpu/alloc.py) against NumPy's constructors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numba import njit

from jitsolve.kernels.cpu.alloc import (empty1, empty1_complex, empty2, empty_rows, full1,
                                        zeros1, zeros1_int, zeros2)
from jitsolve.kernels.cpu.erk import _grow, _grow_rows


@njit(cache=False)
def _make(m, n, v):
    return (empty1(n), zeros1(n), empty2(m, n), zeros2(m, n), zeros1_int(n),
            empty1_complex(n), full1(n, v))


@njit(cache=False)
def _literal_and_narrow_sizes():
    # literal sizes and other integer types type as any size (no literal specialisation)
    return zeros1_int(5), zeros2(np.int32(3), 2), full1(np.uint8(4), 1), empty_rows(zeros2(2, 3), 7)


@njit(cache=False)
def _negative(n):
    return empty1(n)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 9), st.integers(0, 9), st.floats(-1e300, 1e300))
def test_allocations_match_numpy(m, n, v):
    got = _make(m, n, v)
    want = (np.empty(n), np.zeros(n), np.empty((m, n)), np.zeros((m, n)),
            np.zeros(n, np.int64), np.empty(n, np.complex128), np.full(n, v))
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert g.flags.c_contiguous and g.flags.writeable and g.flags.aligned
    for k in (1, 3, 4, 6):                   # the filled ones, bit for bit
        np.testing.assert_array_equal(got[k], want[k])
    got[2][...] = 1.0                        # the empty ones are writable memory of their own
    assert got[2].sum() == m * n


def test_literal_and_narrow_sizes_and_empty_rows():
    a, b, c, d = _literal_and_narrow_sizes()
    np.testing.assert_array_equal(a, np.zeros(5, np.int64))
    np.testing.assert_array_equal(b, np.zeros((3, 2)))
    np.testing.assert_array_equal(c, np.ones(4))
    assert d.shape == (7, 3) and d.dtype == np.float64 and d.flags.c_contiguous


def test_negative_size_raises_like_numpy():
    with pytest.raises(ValueError, match="negative dimensions"):
        _negative(-1)


@pytest.mark.parametrize("need", [0, 3, 4, 9])
def test_growing_buffers_keep_their_entries(need):
    a = np.arange(3.0)
    g = _grow(a, need)
    assert g.size == (3 if need <= 3 else max(need, 6))
    np.testing.assert_array_equal(g[:3], a)
    b = np.arange(6.0).reshape(3, 2)
    h = _grow_rows(b, need)
    assert h.shape == ((3 if need <= 3 else max(need, 6)), 2)
    np.testing.assert_array_equal(h[:3], b)
