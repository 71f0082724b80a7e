"""Order-condition checks for the Runge-Kutta tableaus in solvers/ode/tableaus.

Rooted trees are generated generically (85 trees up to order 7).  For a tree t
with children t_1..t_m the stage vector is g(t) = prod_k (A g(t_k)) (g(leaf) =
1), the elementary weight is Phi(t) = b . g(t) and the order condition is
Phi(t) == 1/gamma(t).  Dense output: sum_i b_i(theta) g_i(t) ==
theta^|t| / gamma(t).  Rosenbrock methods are checked through their classical
(untransformed) coefficients alpha, Gamma, b, plus numerical convergence.
"""

import itertools
import math

import numpy as np
import pytest

from solvers.ode.tableaus import (
    dp5,
    euler,
    kencarp4,
    kvaerno5,
    rk4,
    rodas5p,
    rosenbrock23,
    tsit5,
    vern7,
)

# ----------------------------------------------------------------- trees


def _canon(children):
    return tuple(sorted(children))


def _grow(tree):
    """All trees obtained by attaching one new leaf to some vertex of ``tree``."""
    out = {_canon(tree + ((),))}
    for i, child in enumerate(tree):
        for g in _grow(child):
            out.add(_canon(tree[:i] + (g,) + tree[i + 1:]))
    return out


def _trees_up_to(order):
    levels = [[()]]
    for _ in range(order - 1):
        nxt = set()
        for t in levels[-1]:
            nxt |= _grow(t)
        levels.append(sorted(nxt))
    return levels  # levels[n-1] = trees with n vertices


TREES = _trees_up_to(7)


def _order(t):
    return 1 + sum(_order(c) for c in t)


def _gamma(t):
    return _order(t) * math.prod(_gamma(c) for c in t)


def _g(t, A):
    v = np.ones(A.shape[0])
    for c in t:
        v = v * (A @ _g(c, A))
    return v


def _trees(max_order):
    return [t for lev in TREES[:max_order] for t in lev]


def _max_residual(A, b, max_order):
    return max(abs(b @ _g(t, A) - 1.0 / _gamma(t)) for t in _trees(max_order))


def _btheta(BT, theta):
    powers = theta ** np.arange(1, BT.shape[1] + 1)
    return BT @ powers


def test_tree_counts():
    assert [len(lev) for lev in TREES] == [1, 1, 2, 4, 9, 20, 48]
    assert len(_trees(7)) == 85
    # spot checks: tall tree and bushy tree of order 4
    assert _gamma(((((),),),)) == 24 and _gamma(((), (), ())) == 4


# ------------------------------------------------------- explicit methods

EXPLICIT = [
    (euler, 1e-12, 1e-12),
    (rk4, 1e-12, 1e-12),
    (dp5, 1e-12, 1e-12),
    (tsit5, 1e-10, 1e-10),
    (vern7, 1e-12, 1e-10),
]
IDS = [m[0].NAME for m in EXPLICIT]


@pytest.mark.parametrize("mod,tol,dtol", EXPLICIT, ids=IDS)
def test_explicit_shapes_and_structure(mod, tol, dtol):
    s = mod.STAGES
    for name in ("C", "B", "BERR"):
        arr = getattr(mod, name)
        assert arr.shape == (s,) and arr.dtype == np.float64, name
    assert mod.A.shape == (s, s) and mod.A.dtype == np.float64
    assert np.all(np.triu(mod.A) == 0.0), "A must be strictly lower triangular"
    assert np.allclose(mod.A.sum(axis=1), mod.C, rtol=0, atol=tol)
    assert mod.C[0] == 0.0
    if mod.EMBEDDED_ORDER is None:
        assert np.all(mod.BERR == 0.0)
    else:
        assert np.any(mod.BERR != 0.0)
    if mod.FSAL:
        assert mod.C[-1] == 1.0 and np.array_equal(mod.A[-1], mod.B) and mod.B[-1] == 0.0
    assert isinstance(mod.INTERP_ORDER, int) and mod.BTHETA.dtype == np.float64


@pytest.mark.parametrize("mod,tol,dtol", EXPLICIT, ids=IDS)
def test_explicit_order_conditions(mod, tol, dtol):
    p = mod.ORDER
    assert _max_residual(mod.A, mod.B, p) < tol
    # the method is not accidentally of higher order (guards against a wrong ORDER)
    if p < 7:
        assert _max_residual(mod.A, mod.B, p + 1) > 1e-8
    if mod.EMBEDDED_ORDER is not None:
        bhat = mod.B - mod.BERR
        assert _max_residual(mod.A, bhat, mod.EMBEDDED_ORDER) < tol
        assert _max_residual(mod.A, bhat, mod.EMBEDDED_ORDER + 1) > 1e-8


def _dense_tableau(mod):
    if hasattr(mod, "A_EXTRA"):
        s, e = mod.STAGES, len(mod.C_EXTRA)
        A = np.zeros((s + e, s + e))
        A[:s, :s] = mod.A
        A[s:, :] = mod.A_EXTRA
        return A, np.concatenate([mod.C, mod.C_EXTRA])
    return mod.A[: mod.BTHETA.shape[0], : mod.BTHETA.shape[0]], mod.C[: mod.BTHETA.shape[0]]


@pytest.mark.parametrize("mod,tol,dtol", EXPLICIT, ids=IDS)
def test_dense_output(mod, tol, dtol):
    A, c = _dense_tableau(mod)
    n = A.shape[0]
    assert mod.BTHETA.shape[0] == n
    if hasattr(mod, "A_EXTRA"):
        s, e = mod.STAGES, len(mod.C_EXTRA)
        assert mod.A_EXTRA.shape == (e, s + e)
        for r in range(e):
            assert np.all(mod.A_EXTRA[r, s + r:] == 0.0)
        assert np.allclose(mod.A_EXTRA.sum(axis=1), mod.C_EXTRA, rtol=0, atol=tol)
    # passes through u_new: b_i(1) == B_i (extra stages: 0), b_i(0) == 0 trivially
    b1 = mod.BTHETA.sum(axis=1)
    expect = np.zeros(n)
    expect[: mod.STAGES] = mod.B[:n] if n <= mod.STAGES else mod.B
    assert np.allclose(b1, expect, rtol=0, atol=dtol)
    q = mod.INTERP_ORDER
    trees = _trees(q)
    for theta in (0.1, 0.3, 0.5, 0.7, 0.9):
        bt = _btheta(mod.BTHETA, theta)
        for t in trees:
            res = bt @ _g(t, A) - theta ** _order(t) / _gamma(t)
            tol_t = dtol
            if mod is vern7 and _order(t) == 7:
                # the published Vern7 interpolant meets its order-7 conditions
                # only to ~3e-7 (see the vern7 module docstring)
                tol_t = 1e-6
            assert abs(res) < tol_t, (t, theta, res)
    # and it is not of order q + 1 (guards against a wrong INTERP_ORDER)
    bt = _btheta(mod.BTHETA, 0.5)
    worst = max(abs(bt @ _g(t, A) - 0.5 ** _order(t) / _gamma(t)) for t in _trees(q + 1))
    assert worst > 1e-8


def test_vern7_not_fsal_and_extra_stage_is_unew():
    assert vern7.FSAL is False
    assert vern7.C_EXTRA[0] == 1.0
    assert np.array_equal(vern7.A_EXTRA[0, : vern7.STAGES], vern7.B)


# ------------------------------------------------------- ESDIRK / IMEX


def _check_dirk(A, c, gamma, tol):
    s = A.shape[0]
    assert np.all(np.triu(A, 1) == 0.0)
    assert A[0, 0] == 0.0 and np.all(np.diag(A)[1:] == gamma)
    assert np.allclose(A.sum(axis=1), c, rtol=0, atol=tol)
    assert c.shape == (s,)


def test_kvaerno5():
    m = kvaerno5
    _check_dirk(m.A, m.C, m.GAMMA, 1e-14)
    assert np.array_equal(m.A[-1], m.B)  # stiffly accurate
    assert _max_residual(m.A, m.B, m.ORDER) < 1e-10
    assert _max_residual(m.A, m.B - m.BERR, m.EMBEDDED_ORDER) < 1e-10
    assert _max_residual(m.A, m.B - m.BERR, m.EMBEDDED_ORDER + 1) > 1e-8


def _colored_weights(t, mats):
    """Stage vectors of ``t`` for every assignment of a matrix to each edge."""
    n = mats[0].shape[0]
    if not t:
        return [np.ones(n)]
    options = [[M @ v for M in mats for v in _colored_weights(child, mats)] for child in t]
    return [np.prod(combo, axis=0) for combo in itertools.product(*options)]


def test_kencarp4_tableaus():
    m = kencarp4
    assert m.AE.shape == m.AI.shape == (6, 6)
    assert np.all(np.triu(m.AE) == 0.0)
    assert np.allclose(m.AE.sum(axis=1), m.C, rtol=0, atol=1e-14)
    _check_dirk(m.AI, m.C, m.GAMMA, 1e-14)
    assert np.array_equal(m.AI[-1], m.B)  # stiffly accurate implicit part
    assert np.allclose(m.BERR, m.B - m.BHAT, rtol=0, atol=0)
    bhat = m.B - m.BERR
    for A in (m.AE, m.AI):
        assert _max_residual(A, m.B, 4) < 1e-12
        assert _max_residual(A, bhat, 3) < 1e-12


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kencarp4_coupled_conditions(order):
    """Additive (coupled) conditions: every mixing of AE/AI along the edges."""
    m = kencarp4
    for t in TREES[order - 1]:
        for v in _colored_weights(t, (m.AE, m.AI)):
            assert abs(m.B @ v - 1.0 / _gamma(t)) < 1e-12, t
            if order <= 3:
                assert abs((m.B - m.BERR) @ v - 1.0 / _gamma(t)) < 1e-12, t


def test_kencarp4_coupled_examples():
    m = kencarp4
    for X in (m.AE, m.AI):
        for Y in (m.AE, m.AI):
            assert abs(m.B @ X @ Y @ np.ones(6) - 1 / 6) < 1e-12
            assert abs(m.B @ X @ m.C - 1 / 6) < 1e-12


def test_kencarp4_dense_output():
    m = kencarp4
    assert np.allclose(m.BTHETA.sum(axis=1), m.B, rtol=0, atol=1e-12)
    for theta in (0.2, 0.5, 0.8):
        bt = _btheta(m.BTHETA, theta)
        for t in _trees(m.INTERP_ORDER):
            for v in _colored_weights(t, (m.AE, m.AI)):
                assert abs(bt @ v - theta ** _order(t) / _gamma(t)) < 1e-12


# ------------------------------------------------------- Rosenbrock


def _rodas_step(m, f, J, T, t0, u0, h):
    """One step of the W-transformed Rodas form exactly as documented (scalar u)."""
    W = 1.0 / (h * m.GAMMA) - J(t0, u0)
    Tt = T(t0, u0)
    k = np.zeros(m.STAGES)
    for i in range(m.STAGES):
        U = u0 + m.A[i, :i] @ k[:i]
        rhs = f(t0 + m.C[i] * h, U) + (m.Cmat[i, :i] @ k[:i]) / h + h * m.D[i] * Tt
        k[i] = rhs / W
    return u0 + m.B @ k, m.BERR @ k, k


def _rodas_dense(m, u0, u1, k, theta):
    K = m.H @ k
    return (1 - theta) * u0 + theta * (u1 + (1 - theta) * (K[0] + theta * (K[1] + theta * K[2])))


def _ros23_step(m, f, J, T, t0, u0, h):
    """One Rosenbrock23 step exactly as documented (scalar u)."""
    gam = h * m.D
    W = 1.0 - gam * J(t0, u0)
    Tt = T(t0, u0)
    f0 = f(t0, u0)
    k1 = (f0 + gam * Tt) / W
    f1 = f(t0 + h / 2, u0 + h / 2 * k1)
    k2 = (f1 - k1) / W + k1
    u1 = u0 + h * k2
    f2 = f(t0 + h, u1)
    k3 = (f2 - m.E32 * (k2 - f1) - 2 * (k1 - f0) + gam * Tt) / W
    return u1, h / 6 * (k1 - 2 * k2 + k3), np.array([k1, k2])


def _ros23_dense(m, u0, h, k, theta):
    return u0 + h * (_btheta(m.BTHETA, theta) @ k)


ROS = [(rosenbrock23, _ros23_step), (rodas5p, _rodas_step)]
ROS_IDS = ["Rosenbrock23", "Rodas5P"]

# (f, df/du, df/dt, exact solution)
# linear test problem u' = lambda u with lambda = -10
_LIN = (lambda t, u: -10.0 * u, lambda t, u: -10.0, lambda t, u: 0.0, lambda t: math.exp(-10.0 * t))
# nonlinear non-autonomous: u' = -2 t u^2, u = 1/(1+t^2)
_NONLIN = (
    lambda t, u: -2 * t * u * u,
    lambda t, u: -4 * t * u,
    lambda t, u: -2 * u * u,
    lambda t: 1.0 / (1.0 + t * t),
)
# non-autonomous (exercises the df/dt terms): u' = cos(t) u, u = exp(sin t)
_NONAUT = (
    lambda t, u: math.cos(t) * u,
    lambda t, u: math.cos(t),
    lambda t, u: -math.sin(t) * u,
    lambda t: math.exp(math.sin(t)),
)


def _slope(hs, errs):
    return np.polyfit(np.log(hs), np.log(errs), 1)[0]


def _global_errors(m, step, prob, ns, t_end=1.0):
    f, J, T, exact = prob
    errs = []
    for n in ns:
        h, u, t = t_end / n, exact(0.0), 0.0
        for _ in range(n):
            u = step(m, f, J, T, t, u, h)[0]
            t += h
        errs.append(abs(u - exact(t_end)))
    return [1.0 / n for n in ns], errs


@pytest.mark.parametrize("m,step", ROS, ids=ROS_IDS)
@pytest.mark.parametrize("prob", [_LIN, _NONLIN], ids=["linear", "nonlinear"])
def test_rosenbrock_convergence(m, step, prob):
    ns = [10, 20, 40, 80] if m.ORDER <= 2 else [8, 16, 32, 64]
    hs, errs = _global_errors(m, step, prob, ns)
    assert abs(_slope(hs, errs) - m.ORDER) < 0.2, errs


@pytest.mark.parametrize("m,step", ROS, ids=ROS_IDS)
def test_rosenbrock_error_estimate_and_dense_output(m, step):
    f, J, T, exact = _NONAUT
    t0 = 0.3
    hs = [0.2, 0.1, 0.05, 0.025]
    est, true_err, dense_err = [], [], []
    for h in hs:
        u0 = exact(t0)
        u1, err, k = step(m, f, J, T, t0, u0, h)
        est.append(abs(err))
        true_err.append(abs(u1 - exact(t0 + h)))
        if m is rodas5p:
            ud = _rodas_dense(m, u0, u1, k, 0.5)
        else:
            ud = _ros23_dense(m, u0, h, k, 0.5)
        dense_err.append(abs(ud - exact(t0 + h / 2)))
    # local error of the solution ~ h^(p+1); the estimate ~ h^(min(p, phat)+1)
    assert abs(_slope(hs, true_err) - (m.ORDER + 1)) < 0.3, true_err
    assert abs(_slope(hs, est) - (min(m.ORDER, m.EMBEDDED_ORDER) + 1)) < 0.3, est
    assert abs(_slope(hs, dense_err) - (m.INTERP_ORDER + 1)) < 0.3, dense_err
    if m is rosenbrock23:
        # err estimates the local error of the (lower-order) solution itself
        assert abs(est[-1] / true_err[-1] - 1.0) < 0.1


def _stability(m, step, z):
    return step(m, lambda t, u: z * u, lambda t, u: z, lambda t, u: 0.0, 0.0, 1.0, 1.0)[0]


@pytest.mark.parametrize("m,step", ROS, ids=ROS_IDS)
def test_rosenbrock_l_stable(m, step):
    # L-stability: R(z) = O(1/z) -> 0 as z -> -infinity
    assert abs(_stability(m, step, -1e6)) < 1e-4
    assert abs(_stability(m, step, -1e8)) < 1e-6
    # |R(z)| <= 1 on the negative real axis
    for z in -np.logspace(-2, 8, 60):
        assert abs(_stability(m, step, z)) <= 1.0 + 1e-12


def _classical_rosenbrock(m, b):
    """alpha, Gamma (with diagonal), b of the untransformed form (Hairer-Wanner IV.7)."""
    s = m.STAGES
    Gam = np.linalg.inv(np.eye(s) / m.GAMMA - m.Cmat)
    return m.A @ Gam, Gam, b @ Gam


def _ros_g(t, alpha, beta):
    n = alpha.shape[0]
    if not t:
        return np.ones(n)
    if len(t) == 1:
        return beta @ _ros_g(t[0], alpha, beta)
    v = np.ones(n)
    for c in t:
        v = v * (alpha @ _ros_g(c, alpha, beta))
    return v


def test_rodas5p_structure_and_order_conditions():
    m = rodas5p
    s = m.STAGES
    for name in ("A", "Cmat"):
        arr = getattr(m, name)
        assert arr.shape == (s, s) and np.all(np.triu(arr) == 0.0)
    assert m.C.shape == m.D.shape == m.B.shape == m.BERR.shape == (s,)
    assert m.H.shape == (3, s)
    for b, p, tol in ((m.B, m.ORDER, 1e-10), (m.B - m.BERR, m.EMBEDDED_ORDER, 1e-10)):
        alpha, Gam, bb = _classical_rosenbrock(m, b)
        assert np.allclose(alpha.sum(axis=1), m.C, rtol=0, atol=1e-10)
        assert np.allclose(Gam.sum(axis=1), m.D, rtol=0, atol=1e-10)
        beta = alpha + Gam
        worst = max(abs(bb @ _ros_g(t, alpha, beta) - 1.0 / _gamma(t)) for t in _trees(p))
        assert worst < tol, (p, worst)
