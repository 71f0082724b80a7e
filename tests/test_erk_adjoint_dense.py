"""Discrete adjoint of explicit RK solves that save from the method's interpolant.

``js.solve(prob, Tsit5() | DP5() | Vern7(), saveat=t)`` does not step onto ``t``: a save
time inside a step is that step's dense output.  ``js.gradient(..., DiscreteAdjoint())``
must be the exact derivative of exactly those values with the accepted steps held fixed.
The references are independent of the kernels: a NumPy replay of the recorded steps and
of the interpolant (central differences and complex step through it), and central
differences of ``solve`` itself where the steps cannot move (fixed ``dt``).
"""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.solvers.ode.explicit import tableau_arrays
from ode_models import lotka


def forced(du, u, p, t):          # non-autonomous: stage times matter
    du[0] = p[0] * u[1] + 0.3 * np.sin(2.0 * t)
    du[1] = -p[1] * u[0] - p[2] * u[1] * u[1] * u[1]


P0 = np.array([1.2, 0.8, 2.5, 0.8])
LV = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 10.0), p=P0)
FORCED = js.ODEProblem(forced, np.array([0.4, -0.3]), (0.0, 3.0), p=np.array([1.1, 0.9, 0.2]))
TD = np.linspace(0.0, 10.0, 101)[1:]
DATA = js.solve(LV, js.Tsit5(), saveat=TD, rtol=1e-10, atol=1e-10).u * 1.05
LOSS = js.L2Loss(TD, DATA)
KW = dict(rtol=1e-6, atol=1e-6)
METHODS = [js.Tsit5(), js.DP5(), js.Vern7()]


def _replay(f, tab, u0, p, steps_t, steps_h, t_data, t1):
    """NumPy replay of the recorded steps and of the saves on their interpolant (works
    for complex ``u0``/``p``): the reference map the adjoint must differentiate."""
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    s = B.size
    su = s - 1 if fsal else s
    dtype = np.result_type(u0, p)
    u = np.array(u0, dtype=dtype)
    out = np.zeros((t_data.size, u.size), dtype=dtype)
    ns = max(s + CX.size, BTH.shape[0])
    ks = np.zeros((ns, u.size), dtype=dtype)
    t_end = steps_t[1:].tolist() + [t1]
    j = 0
    if t_data[0] == steps_t[0]:
        out[0] = u
        j = 1
    for i, (t, h) in enumerate(zip(steps_t, steps_h)):
        for r in range(su):
            f(ks[r], u + h * (A[r, :r] @ ks[:r]), p, t + C[r] * h)
        unew = u + h * (B[:su] @ ks[:su])
        te = t_end[i]
        if fsal:
            f(ks[s - 1], unew, p, t + h)
        for r in range(CX.size):
            f(ks[s + r], u + h * (AX[r, :s + r] @ ks[:s + r]), p, t + CX[r] * h)
        while j < t_data.size and (t_data[j] < te if h > 0 else t_data[j] > te):
            th = (t_data[j] - t) / h
            w = BTH @ th ** np.arange(1, BTH.shape[1] + 1)
            out[j] = u + h * (w @ ks[:BTH.shape[0]])
            j += 1
        if j < t_data.size and t_data[j] == te:
            out[j] = unew
            j += 1
        u = unew
    assert j == t_data.size
    return out


def _steps(prob, alg, t_data, **kw):
    sol = js.solve(prob, alg, saveat=t_data, **kw)
    return sol, sol.steps_t, sol.steps_h


def _fd(fun, x, eps=1e-6):
    g = np.zeros_like(x)
    for k in range(x.size):
        e = np.zeros_like(x)
        e[k] = eps * max(1.0, abs(x[k]))
        g[k] = (fun(x + e) - fun(x - e)) / (2 * e[k])
    return g


def test_saveat_is_interpolated_and_steps_are_free():
    for alg in METHODS:
        sol = js.solve(LV, alg, saveat=TD, **KW)
        free = js.solve(LV, alg, saveat=[10.0], **KW)
        onto = js.solve(LV, alg, saveat=TD, tstops=TD, **KW)
        assert np.array_equal(sol.t, TD)
        assert sol.stats.naccept == free.stats.naccept < onto.stats.naccept
        np.testing.assert_array_equal(sol.u[-1], free.u[-1])
        np.testing.assert_allclose(sol.u, onto.u, rtol=1e-4, atol=1e-5)
        inside = ~np.isin(TD, np.append(sol.steps_t, 10.0))
        assert inside.sum() > 0.9 * TD.size
        # the saved values are those of the solution's own interpolant
        dense = js.solve(LV, alg, **KW)
        np.testing.assert_allclose(sol.u, dense(TD), rtol=1e-13, atol=1e-13)
    # RK4 (fixed steps) keeps stepping onto its save times
    s4 = js.solve(LV, js.RK4(), dt=0.3, saveat=[0.45, 1.0])
    assert 0.45 in s4.steps_t


@pytest.mark.parametrize("alg", METHODS, ids=lambda a: type(a).__name__)
def test_gradient_matches_replay_fd_adaptive(alg):
    """Adaptive steps, loss times inside steps: against central differences of the
    NumPy replay of the recorded step sequence (held fixed)."""
    tab = tableau_arrays(alg.tableau)
    sol, st, sh = _steps(LV, alg, TD, **KW)
    val, g = js.gradient(LV, alg, LOSS, wrt=("p", "u0"), **KW)
    assert val == LOSS.value(sol.u)                      # bit for bit solve's values
    ref = _replay(lotka, tab, LV.u0, P0, st, sh, TD, 10.0)
    np.testing.assert_allclose(ref, sol.u, rtol=1e-12, atol=1e-13)
    gp = _fd(lambda x: LOSS.value(_replay(lotka, tab, LV.u0, x, st, sh, TD, 10.0)), P0)
    gu = _fd(lambda x: LOSS.value(_replay(lotka, tab, x, P0, st, sh, TD, 10.0)), LV.u0)
    np.testing.assert_allclose(g["p"], gp, rtol=1e-7)
    np.testing.assert_allclose(g["u0"], gu, rtol=1e-7)


@pytest.mark.parametrize("alg", METHODS, ids=lambda a: type(a).__name__)
def test_gradient_fixed_dt_offgrid_vs_fd_of_solve(alg):
    """Fixed dt, save times off the step grid (several in one step, one at a step's end,
    one at t0): steps cannot move, so central differences of solve itself are valid."""
    td = np.array([0.0, 0.13, 0.61, 0.66, 0.7, 1.0, 1.93, 2.71, 3.0])
    data = np.full((td.size, 2), 0.1)
    loss = js.L2Loss(td, data)
    kw = dict(adaptive=False, dt=0.1)
    val, g = js.gradient(FORCED, alg, loss, wrt=("p", "u0"), **kw)
    sol = js.solve(FORCED, alg, saveat=td, **kw)
    assert val == loss.value(sol.u)
    assert not np.isin(td[1:-1], sol.steps_t).all()

    def J(**ch):
        return loss.value(js.solve(js.remake(FORCED, **ch), alg, saveat=td, **kw).u)
    gp = _fd(lambda x: J(p=x), FORCED.p)
    gu = _fd(lambda x: J(u0=x), FORCED.u0)
    np.testing.assert_allclose(g["p"], gp, rtol=1e-7)
    np.testing.assert_allclose(g["u0"], gu, rtol=1e-7)
    rep = js.check_gradient(FORCED, alg, loss, wrt="p", verbose=False, **kw)
    assert rep["passed"] and rep["order"] > 1.9


def test_backwards_in_time():
    prob = js.remake(FORCED, tspan=(3.0, 0.0))
    td = np.array([2.95, 2.0, 1.37, 0.5])
    loss = js.L2Loss(td, np.zeros((td.size, 2)))
    for kw in (dict(adaptive=False, dt=0.2), dict(rtol=1e-8, atol=1e-8)):
        sol = js.solve(prob, js.Tsit5(), saveat=td, **kw)
        assert not np.isin(td, sol.steps_t).any()
        val, g = js.gradient(prob, js.Tsit5(), loss, wrt=("p", "u0"), **kw)
        assert val == loss.value(sol.u)
        tab = tableau_arrays("tsit5")
        rp = lambda x: loss.value(_replay(forced, tab, prob.u0, x, sol.steps_t, sol.steps_h, td, 0.0))
        ru = lambda x: loss.value(_replay(forced, tab, x, prob.p, sol.steps_t, sol.steps_h, td, 0.0))
        np.testing.assert_allclose(g["p"], _fd(rp, prob.p), rtol=1e-7)
        np.testing.assert_allclose(g["u0"], _fd(ru, prob.u0), rtol=1e-7)


@pytest.mark.parametrize("alg", METHODS, ids=lambda a: type(a).__name__)
def test_dot_product_with_complex_step_replay(alg):
    """<W, J du> by complex step through the replay equals <J^T W, du> from the adjoint
    of the linear loss sum(W * u_saved), for u0 and p directions."""
    rng = np.random.default_rng(3)
    td = np.sort(rng.uniform(0.05, 3.0, 12))
    W = rng.standard_normal((td.size, 2))
    loss = js.Loss(lambda u: float(np.sum(W * u)), lambda u: W)
    loss.t_data = td
    sol, st, sh = _steps(FORCED, alg, td, rtol=1e-7, atol=1e-7)
    _, g = js.gradient(FORCED, alg, loss, wrt=("p", "u0"), rtol=1e-7, atol=1e-7)
    tab = tableau_arrays(alg.tableau)
    e = 1e-30
    for _ in range(2):
        du, dp = rng.standard_normal(2), rng.standard_normal(3)
        y = _replay(forced, tab, FORCED.u0 + 1j * e * du, FORCED.p + 1j * e * dp, st, sh, td, 3.0)
        lhs = np.sum(W * y.imag / e)
        rhs = g["u0"] @ du + g["p"] @ dp
        assert lhs == pytest.approx(rhs, rel=1e-11)


@pytest.mark.parametrize("alg", [js.Tsit5(), js.Vern7()], ids=lambda a: type(a).__name__)
def test_checkpoint_variants_bit_identical(alg, tmp_path):
    _, ga = js.gradient(LV, alg, LOSS, wrt=("p", "u0"), **KW)
    for k, sa in enumerate([js.DiscreteAdjoint(checkpoints=3), js.DiscreteAdjoint(checkpoints=17),
                            js.DiscreteAdjoint(checkpoints=4,
                                               store=js.HDF5Store(tmp_path / "c.h5"))]):
        _, gb = js.gradient(LV, alg, LOSS, wrt=("p", "u0"), sensealg=sa, **KW)
        assert np.array_equal(ga["p"], gb["p"]) and np.array_equal(ga["u0"], gb["u0"]), k


def test_lotka_volterra_agrees_with_stepping_onto_the_times():
    """The benchmark's problem (rtol = atol = 1e-7): the dense-output gradient and the
    old one (steps forced onto the 100 times, via tstops) differ by the solver error."""
    kw = dict(rtol=1e-7, atol=1e-7)
    v1, g1 = js.gradient(LV, js.Tsit5(), LOSS, wrt=("p", "u0"), **kw)
    v2, g2 = js.gradient(LV, js.Tsit5(), LOSS, wrt=("p", "u0"), tstops=TD, **kw)
    v3, g3 = js.gradient(LV, js.Tsit5(), LOSS, wrt=("p", "u0"),
                         sensealg=js.ForwardSensitivity(), **kw)
    # the forward sensitivities differentiate the same interpolated saves
    np.testing.assert_allclose(g3["p"], g1["p"], rtol=1e-10)
    np.testing.assert_allclose(g3["u0"], g1["u0"], rtol=1e-10)
    assert v3 == v1
    assert abs(v1 - v2) < 1e-5 * v2
    np.testing.assert_allclose(g1["p"], g2["p"], rtol=1e-4)
    np.testing.assert_allclose(g1["u0"], g2["u0"], rtol=1e-4)
    # and both converge to the same gradient
    _, gt = js.gradient(LV, js.Vern7(), LOSS, wrt="p", rtol=1e-12, atol=1e-12)
    assert np.abs(g1["p"] - gt["p"]).max() < 1e-4 * np.abs(gt["p"]).max()
