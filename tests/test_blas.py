"""BLAS-1 kernels against NumPy, including reproducibility across thread counts."""
import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitsolve.kernels.cpu import blas


@pytest.mark.parametrize("n", [0, 1, 3, 4097, 100_003])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_dot_nrm2(n, dtype, rng):
    x = rng.standard_normal(n).astype(dtype)
    y = rng.standard_normal(n).astype(dtype)
    if np.iscomplexobj(x):
        x = x + 1j * rng.standard_normal(n)
        y = y + 2j * rng.standard_normal(n)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    ref = np.vdot(x.astype(np.complex128 if np.iscomplexobj(x) else np.float64), y)
    assert abs(blas.dot(x, y) - ref) <= tol * max(1.0, np.abs(x).dot(np.abs(y)))
    assert abs(blas.nrm2(x) - np.linalg.norm(x.astype(np.complex128 if np.iscomplexobj(x) else np.float64))) \
        <= tol * max(1.0, np.linalg.norm(x))


def test_nrm2_no_overflow_or_underflow():
    big = np.full(1000, 1e200)
    assert blas.nrm2(big) == pytest.approx(1e200 * np.sqrt(1000), rel=1e-14)
    tiny = np.full(1000, 1e-200)
    assert blas.nrm2(tiny) == pytest.approx(1e-200 * np.sqrt(1000), rel=1e-14)
    assert blas.nrm2(np.zeros(10)) == 0.0
    assert np.isnan(blas.nrm2(np.array([1.0, np.nan])))
    assert np.isinf(blas.nrm2(np.array([1.0, np.inf])))


def test_axpy_xpay(rng):
    x, y = rng.standard_normal(10_001), rng.standard_normal(10_001)
    y1 = y.copy()
    blas.axpy(0.3, x, y1)
    np.testing.assert_allclose(y1, y + 0.3 * x, rtol=1e-15)
    y2 = y.copy()
    blas.xpay(x, -1.7, y2)
    np.testing.assert_allclose(y2, x - 1.7 * y, rtol=1e-15)


def test_cg_update(rng):
    n = 50_000
    p, ap, x, r = (rng.standard_normal(n) for _ in range(4))
    x1, r1 = x.copy(), r.copy()
    rr = blas.cg_update(0.37, p, ap, x1, r1)
    np.testing.assert_array_equal(x1, x + 0.37 * p)
    np.testing.assert_array_equal(r1, r - 0.37 * ap)
    assert rr == pytest.approx(np.dot(r1, r1), rel=1e-13)


def test_reductions_reproducible_across_thread_counts(rng):
    x = rng.standard_normal(1_000_003) * np.exp(rng.uniform(-20, 20, 1_000_003))
    y = rng.standard_normal(1_000_003)
    results = []
    saved = numba.get_num_threads()
    try:
        for t in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(t)
            p, ap, xx, r = x.copy(), y.copy(), np.zeros_like(x), y.copy()
            results.append((blas.dot(x, y), blas.nrm2(x), blas.cg_update(0.5, p, ap, xx, r)))
    finally:
        numba.set_num_threads(saved)
    assert all(res == results[0] for res in results)   # bit for bit


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=300))
def test_property_dot(values):
    x = np.array(values, dtype=np.float64)
    y = x[::-1].copy()
    ref = float(np.dot(x, y)) if x.size else 0.0
    assert abs(blas.dot(x, y) - ref) <= 1e-12 * max(1.0, float(np.abs(x).dot(np.abs(y))))


@pytest.mark.parametrize("n", [1, 5, 4096, 4099, 100_003])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_copy_sumsq_is_a_copy_and_sumsq_bits(n, dtype, rng):
    """``copy_sumsq``: the copy exactly, and the bits of ``sumsq`` (so of ``nrm2``)."""
    x = rng.standard_normal(n).astype(dtype)
    if np.iscomplexobj(x):
        x = x + 1j * rng.standard_normal(n)
    y = np.full(n, np.nan, dtype)
    s = blas.copy_sumsq(x, y)
    np.testing.assert_array_equal(y, x)
    assert s == blas.sumsq(x)
    assert blas.norm_of_sumsq(y, s) == blas.nrm2(x)
    assert s == pytest.approx(np.vdot(x, x).real, rel=1e-13)


def test_copy_sumsq_sees_every_nan_and_inf_and_norm_of_sumsq_rescales(rng):
    x = rng.standard_normal(20_000)
    for i in (0, 4095, 4096, 19_999):
        for bad in (np.nan, np.inf, -np.inf):
            z = x.copy()
            z[i] = bad
            assert not np.isfinite(blas.copy_sumsq(z, np.empty_like(z)))
    big = np.full(5000, 1e200)          # finite entries whose squares overflow
    y = np.empty_like(big)
    s = blas.copy_sumsq(big, y)
    assert np.isinf(s)
    assert blas.norm_of_sumsq(y, s) == pytest.approx(1e200 * np.sqrt(5000), rel=1e-14)
    tiny = np.full(5000, 1e-200)
    assert blas.norm_of_sumsq(tiny, blas.sumsq(tiny)) == pytest.approx(1e-200 * np.sqrt(5000),
                                                                       rel=1e-14)
    assert blas.norm_of_sumsq(np.zeros(0), 0.0) == 0.0


def test_fill(rng):
    x = rng.standard_normal(70_001)
    blas.fill(x, 0.0)
    assert not np.any(x) and not np.signbit(x).any()
    blas.fill(x, -2.5)
    assert (x == -2.5).all()
