"""The step-size controllers' libm-free powers (kernels/cpu/fastpow.py) and the PI
controller built on them (kernels/cpu/stepcontrol.py): accuracy against exact
(50-digit decimal) and NumPy values over all magnitudes, the special values, and the
controllers' factors against the libm formula they replace."""
import math
from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numba import njit

from jitsolve.kernels.cpu import fastpow
from jitsolve.kernels.cpu.fastpow import fastpow_arrays
from jitsolve.kernels.cpu.stepcontrol import pi_factor, reject_factor

TINY = np.finfo(np.float64).tiny


def _exact_log2(x):
    with localcontext() as c:
        c.prec = 50
        return Decimal(x).ln() / Decimal(2).ln()


def _exact_exp2(z):
    with localcontext() as c:
        c.prec = 50
        return (Decimal(z) * Decimal(2).ln()).exp()


def _exact_pow(x, y):
    with localcontext() as c:
        c.prec = 50
        return (Decimal(y) * Decimal(x).ln()).exp()


def _log2_bound(exact):
    """The documented bound of log2_fast: 2e-16 absolute below |log2 x| = 1, 1.5 ulp above."""
    return max(2e-16, 1.5 * float(np.spacing(abs(float(exact)))))


def _pow_bound(x, y):
    """The documented relative bound of pow_fast."""
    z = abs(y * math.log2(x))
    return 5e-16 + 1.5e-16 * abs(y) + 3.1e-16 * z


def test_tables_and_coefficients_are_correctly_rounded():
    with localcontext() as c:
        c.prec = 50
        ln2 = Decimal(2).ln()
        logt = [float((1 + Decimal(i) / 128).ln() / ln2) for i in range(129)]
        expt = [float((Decimal(j) / 64 * ln2).exp()) for j in range(64)]
        lc = [float((-1) ** (k + 1) / (Decimal(k) * ln2)) for k in range(1, 7)]
        ec = [float((ln2 / 64) ** k / math.factorial(k)) for k in range(1, 6)]
    assert fastpow._LOG2_TABLE.tolist() == logt
    assert fastpow._EXP2_TABLE.tolist() == expt
    assert [fastpow._L1, fastpow._L2, fastpow._L3, fastpow._L4, fastpow._L5, fastpow._L6] == lc
    assert [fastpow._E1, fastpow._E2, fastpow._E3, fastpow._E4, fastpow._E5] == ec
    assert fastpow._LOG2_TABLE[0] == 0.0 and fastpow._LOG2_TABLE[128] == 1.0


def test_against_exact_values_over_all_magnitudes():
    rng = np.random.default_rng(7)
    n = 3000
    x = np.concatenate([10 ** rng.uniform(-307, 307, n), rng.uniform(0.5, 2.0, n),
                        1 + rng.uniform(-1e-3, 1e-3, n // 3),
                        2.0 ** rng.integers(-1074, -1022, 100) * rng.uniform(1, 2, 100)])
    lg = fastpow_arrays(x, 1.0)[0]
    err = [float(abs(Decimal(a) - _exact_log2(v))) / _log2_bound(_exact_log2(v))
           for a, v in zip(lg, x)]
    assert max(err) <= 1.0
    z = np.concatenate([rng.uniform(-1022, 1023, n), rng.uniform(-1, 1, n),
                        rng.uniform(-30, 30, n)])
    e2 = fastpow_arrays(z, 1.0)[1]
    rel = [float(abs(Decimal(a) / _exact_exp2(v) - 1)) for a, v in zip(e2, z)]
    assert max(rel) < 4.5e-16
    xs = np.concatenate([10 ** rng.uniform(-300, 300, n), 10 ** rng.uniform(-12, 0, n)])
    ys = np.concatenate([rng.uniform(-1, 1, n), rng.uniform(-0.5, 0.5, n)])
    pw = fastpow_arrays(xs, ys)[2]
    worst = max(float(abs(Decimal(a) / _exact_pow(xv, yv) - 1)) / _pow_bound(xv, yv)
                for a, xv, yv in zip(pw, xs, ys))
    assert worst <= 1.0
    # results in [1/16, 16] (the range of the controllers' unclipped factors): within 1e-15
    m = np.abs(ys * np.log2(xs)) <= 4.0
    assert m.sum() > 1000
    assert max(float(abs(Decimal(a) / _exact_pow(xv, yv) - 1))
               for a, xv, yv in zip(pw[m], xs[m], ys[m])) < 1e-15


def test_against_numpy_over_many_magnitudes():
    rng = np.random.default_rng(3)
    x = 10 ** rng.uniform(-307, 307, 200_000)
    y = rng.uniform(-1, 1, x.size)
    lg, _, pw = fastpow_arrays(x, y)
    ref = np.log2(x)
    # NumPy's log2 is itself within 0.51 ulp of the exact value here
    assert np.all(np.abs(lg - ref) <= np.maximum(2.6e-16, 2.1 * np.spacing(np.abs(ref))))
    zz = np.abs(y * ref)
    # NumPy's pow adds up to 1 ulp of its own
    assert np.all(np.abs(pw / x ** y - 1) <= 7.3e-16 + 1.5e-16 * np.abs(y) + 3.1e-16 * zz)
    z = rng.uniform(-1022, 1023, 200_000)
    e2 = fastpow_arrays(z, 1.0)[1]
    assert np.max(np.abs(e2 / np.exp2(z) - 1)) < 6.7e-16


@settings(max_examples=300, deadline=None)
@given(x=st.floats(min_value=5e-324, max_value=1.7e308, allow_nan=False, allow_infinity=False),
       y=st.floats(min_value=-3.0, max_value=3.0, allow_nan=False))
def test_property_log2_and_pow_within_bounds(x, y):
    lg, _, pw = fastpow_arrays(np.array([x]), np.array([y]))[:, 0]
    ex = _exact_log2(x)
    assert float(abs(Decimal(lg) - ex)) <= _log2_bound(ex)
    exact = _exact_pow(x, y)
    if Decimal("1e-300") < exact < Decimal("1e300"):     # away from under/overflow
        assert float(abs(Decimal(pw) / exact - 1)) <= _pow_bound(x, y)


@settings(max_examples=300, deadline=None)
@given(z=st.floats(min_value=-1022.0, max_value=1023.9, allow_nan=False))
def test_property_exp2_within_bound(z):
    e2 = fastpow_arrays(np.array([z]), 1.0)[1, 0]
    assert abs(Decimal(e2) / _exact_exp2(z) - 1) <= Decimal(4.5e-16)


def test_exact_cases_and_special_values():
    inf, nan = np.inf, np.nan
    x = np.array([1.0, 2.0, 0.5, 1024.0, 2.0 ** -1022, 5e-324, 2.0 ** -1060, 0.0, -0.0, inf,
                  nan, -1.0, -inf])
    lg = fastpow_arrays(x, 1.0)[0]
    np.testing.assert_array_equal(lg, [0.0, 1.0, -1.0, 10.0, -1022.0, -1074.0, -1060.0, -inf,
                                       -inf, inf, nan, nan, nan])
    z = np.array([0.0, 1.0, -1.0, 10.0, 1023.0, -1022.0, -1074.0, -1075.0, 1024.0, 2000.0,
                  -2000.0, inf, -inf, nan, 1023.999])
    e2 = fastpow_arrays(z, 1.0)[1]
    with np.errstate(over="ignore"):
        ref = np.exp2(z)
    np.testing.assert_array_equal(e2[:-1], ref[:-1])   # exact powers of two, 0, inf, nan
    assert e2[6] == 5e-324 and e2[7] == 0.0 and e2[8] == inf
    assert abs(e2[-1] / ref[-1] - 1) < 4e-16
    # pow: x ** 0 = 1 for every x, 1 ** y = 1, zero and infinity as libm's pow
    xs = np.array([0.0, -0.0, inf, nan, 3.7, 1.0, 0.0, 0.0, inf, inf, 1.0, 4.0, 2.0])
    ys = np.array([0.0, 0.0, 0.0, 0.0, 0.0, -0.3, 0.5, -0.5, 0.5, -0.5, 17.0, 0.5, -3.0])
    pw = fastpow_arrays(xs, ys)[2]
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(pw, xs ** ys)
    assert np.isnan(fastpow_arrays(nan, 0.5)[2, 0]) and np.isnan(fastpow_arrays(-2.0, 0.5)[2, 0])


def test_vectorised_over_lanes_with_the_scalar_bits():
    """Branch-free: a loop of pi_factor over lanes compiles to a SIMD loop (as in the
    lockstep kernel) and gives every lane the bits of the scalar call."""
    @njit(error_model="numpy")
    def lanes(E, P, R, out):
        for l in range(E.size):
            out[l] = pi_factor(E[l], P[l], 0.14, 0.08, 0.9, 0.2, 1.0 if R[l] else 10.0)
    rng = np.random.default_rng(5)
    e = np.concatenate([10 ** rng.uniform(-14, 0.5, 2000), [0.0, 5e-324, np.inf, np.nan, 1.0]])
    p = np.concatenate([10 ** rng.uniform(-4, 0, 2000), [0.5, 1e-4, 0.0, np.inf, np.nan]])
    r = rng.random(e.size) < 0.2
    out = np.empty(e.size)
    lanes(e, p, r, out)
    ref = np.array([pi_factor(a, b, 0.14, 0.08, 0.9, 0.2, 1.0 if c else 10.0)
                    for a, b, c in zip(e, p, r)])
    assert np.array_equal(out.view(np.int64), ref.view(np.int64))
    ir = lanes.inspect_llvm(lanes.signatures[0])
    assert " x double>" in ir


# --- the controllers against the libm formulas they replace ----------------------------

@njit(cache=False)
def _pi_factor_libm(err, err_prev, beta1, beta2, safety, qmin, qmax):
    if err == 0.0:
        return qmax
    q = safety * err ** (-beta1) * err_prev ** beta2
    return min(qmax, max(qmin, q))


@njit(cache=False)
def _reject_factor_libm(err, beta1, safety, qmin):
    if not (err < np.inf):
        return qmin
    return min(1.0, max(qmin, safety * err ** (-beta1)))


def _same(a, b):
    return (a == b) or (np.isnan(a) and np.isnan(b))


# (beta1, beta2, safety, qmin, qmax): Hairer's PI defaults for k = 2..9, and the SDE's I control
CONTROLS = [(0.7 / k, 0.4 / k, 0.9, 0.2, 10.0) for k in range(2, 10)] + [(0.45, 0.0, 0.9, 0.2, 5.0)]


@pytest.mark.parametrize("ctrl", CONTROLS)
def test_pi_factor_matches_the_libm_controller(ctrl):
    b1, b2, s, qmin, qmax = ctrl
    worst = 0.0
    for err in np.concatenate([np.logspace(-14, 0, 300), [1.0 - 2.0 ** -53, 0.5]]):
        for ep in np.logspace(-4, 0, 40):
            for qm in (qmax, 1.0):                 # after a rejection qmax is 1
                new = pi_factor(err, ep, b1, b2, s, qmin, qm)
                old = _pi_factor_libm(err, ep, b1, b2, s, qmin, qm)
                if old in (qmin, qm):
                    # clipped: the same bound, unless the unclipped factor is within
                    # rounding of it
                    q = s * err ** -b1 * ep ** b2
                    assert new == old or abs(q / old - 1) < 2e-15
                else:
                    worst = max(worst, abs(new / old - 1))
    assert worst < 2e-15
    for err in np.logspace(0, 12, 300)[1:]:
        assert abs(reject_factor(err, b1, s, qmin) / _reject_factor_libm(err, b1, s, qmin) - 1) \
            < 2e-15


@pytest.mark.parametrize("ctrl", CONTROLS)
def test_controllers_special_values_as_before(ctrl):
    b1, b2, s, qmin, qmax = ctrl
    specials = [0.0, 5e-324, 1e-310, 1e-300, 1e300, 1.7e308, np.inf, np.nan]
    ordinary = [1e-4, 0.3, 1.0]
    for err in specials + ordinary:
        for ep in specials + ordinary:
            new = pi_factor(err, ep, b1, b2, s, qmin, qmax)
            old = _pi_factor_libm(err, ep, b1, b2, s, qmin, qmax)
            if err in specials or (ep in specials and b2 != 0.0):
                assert _same(new, old), (err, ep, new, old)
            else:
                assert abs(new / old - 1) < 2e-15
    assert pi_factor(0.0, 0.5, b1, b2, s, qmin, qmax) == qmax
    assert pi_factor(np.inf, 0.5, b1, b2, s, qmin, qmax) == qmin
    for err in (np.nan, np.inf, 1e300, 1.7e308):
        assert _same(reject_factor(err, b1, s, qmin), _reject_factor_libm(err, b1, s, qmin))
    for err in (2.0, 1.0 + 2.0 ** -52):
        assert abs(reject_factor(err, b1, s, qmin) / _reject_factor_libm(err, b1, s, qmin) - 1) \
            < 2e-15
    assert reject_factor(np.nan, b1, s, qmin) == qmin
    assert reject_factor(1e300, b1, s, qmin) == qmin
