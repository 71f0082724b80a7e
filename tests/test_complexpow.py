"""Complex powers with integral exponents (kernels/cpu/complexpow.py): equal to NumPy's
``npy_cpow`` (binary exponentiation for |n| < 100), exact complex-step derivatives of
``u**n`` at negative ``u``, and the stiff solvers and Milstein scheme that rely on them."""
import cmath

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numba import njit

import jitsolve as js
import jitsolve.kernels.cpu  # noqa: F401  (installs the lowering)


@njit
def _pow_var(z, n):
    return z ** n


@njit
def _pow_literal(z):
    return z ** 3, z ** -2, np.power(z, 5)


@njit
def _pow_real(z, b):
    return z ** b


@njit
def _ipow(z):
    w = z
    w **= 4
    return w


finite = st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(re=finite, im=finite, n=st.integers(-99, 99))
def test_integral_exponents_match_numpy(re, im, n):
    z = complex(re, im)
    if abs(z) < 1e-2:   # keep z ** -99 finite (Python's error model raises on 1 / 0)
        return
    got, want = _pow_var(z, n), np.power(np.complex128(z), n)
    if not np.isfinite(want):
        assert not np.isfinite(got)
        return
    assert got == pytest.approx(complex(want), rel=1e-15 * (1 + abs(n)), abs=1e-300)


@pytest.mark.parametrize("x", [-2.0, -1.0, -0.5, 0.0, 0.5, 3.0])
def test_complex_step_derivative_at_negative_base(x):
    h = 1e-30
    z = complex(x, h)
    d3, dm2, d5 = (v.imag / h for v in _pow_literal(z))
    assert d3 == pytest.approx(3 * x * x, rel=1e-14, abs=1e-50)   # at 0: -h**2
    assert d5 == pytest.approx(5 * x ** 4, rel=1e-14, abs=1e-50)
    if x != 0.0:
        assert dm2 == pytest.approx(-2 / x ** 3, rel=1e-14)
    for n in range(-7, 8):
        if x == 0.0 and n <= 1:
            continue
        assert _pow_var(z, n).imag / h == pytest.approx(n * x ** (n - 1), rel=1e-13, abs=1e-50)
    assert _ipow(z).imag / h == pytest.approx(4 * x ** 3, rel=1e-14, abs=1e-50)


def test_other_exponents_keep_libm_cpow():
    for z, b in [(complex(1.3, -0.7), 0.5), (complex(-2.0, 1e-30), 2.5), (complex(0.3, 0.4), 150.0),
                 (complex(0.9, 0.1), complex(3.0, 1e-3))]:
        assert _pow_real(z, b) == pytest.approx(cmath.exp(b * cmath.log(z)), rel=1e-13)


def test_complex64():
    z = np.complex64(complex(-1.5, 0.25))
    assert _pow_var(z, np.int64(3)) == pytest.approx(complex(z) ** 3, rel=1e-6)


def cube_decay(du, u, p, t):
    du[0] = -u[0] ** 3


def cube_decay_product(du, u, p, t):
    du[0] = -u[0] * u[0] * u[0]


@pytest.mark.parametrize("alg", [js.Rodas5P(), js.KenCarp4()], ids=lambda a: type(a).__name__)
def test_stiff_solve_of_negative_cube(alg):
    """du = -u**3, u0 = -1: u(1) = -1/sqrt(3); the complex-step Jacobian used to be ~3.7e14."""
    prob = js.ODEProblem(cube_decay, np.array([-1.0]), (0.0, 1.0))
    sol = js.solve(prob, alg, rtol=1e-8, atol=1e-10)
    assert sol.retcode == js.ReturnCode.Success
    assert sol.u[-1, 0] == pytest.approx(-1 / np.sqrt(3.0), rel=1e-6)
    ref = js.solve(js.ODEProblem(cube_decay_product, np.array([-1.0]), (0.0, 1.0)), alg,
                   rtol=1e-8, atol=1e-10)
    assert sol.stats.naccept == ref.stats.naccept
    np.testing.assert_allclose(sol.u, ref.u, rtol=1e-13)


def zero_drift(du, u, p, t):
    du[0] = 0.0


def cube_noise(gu, u, p, t):
    gu[0] = 0.5 * u[0] ** 3


def cube_noise_product(gu, u, p, t):
    gu[0] = 0.5 * u[0] * u[0] * u[0]


def test_milstein_with_integer_power_at_negative_state():
    """Milstein's g'(u) by complex step: ``u**3`` and ``u*u*u`` give the same path."""
    out = []
    for g in (cube_noise, cube_noise_product):
        prob = js.SDEProblem(zero_drift, g, np.array([-1.0]), (0.0, 1.0))
        out.append(js.solve(prob, js.Milstein(), dt=2.0 ** -10, seed=4))
    assert out[0].retcode == js.ReturnCode.Success
    np.testing.assert_allclose(out[0].u, out[1].u, rtol=1e-13)
    assert np.all(out[0].u < 0)
