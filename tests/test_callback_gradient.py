"""Gradients through a DiscreteCallback (``jitsolve.callback_gradient``,
``adjoint.discrete.erk_adjoint_jumps``): the discrete adjoint pulls the adjoint back
across each jump of the state with the affect's complex-step Jacobians.

Checked against central differences of the whole solve (``js.FiniteDifference``), the
jump's pullback against its Jacobians written out, the value against ``solve``'s, and
the checkpointing variants against each other bit for bit."""
import os

import numpy as np
import pytest
from numba import njit

import jitsolve as js
from jitsolve.callback_gradient import AFFECT_JAC_MAX, discrete_jumps
from jitsolve.errors import CompileError, UnsupportedAlgorithmError


@njit
def coupled(du, u, p, t):
    du[0] = -p[0] * u[0] + 0.1 * u[1]
    du[1] = p[1] * u[0] - 0.3 * u[1] * u[1]


def at_doses(u, t, p):
    return 1.0 if (t == 1.0 or t == 2.5) else 0.0


def dose(u, t, p):
    u[0] += p[2]
    u[1] = u[1] * p[3]


def below(u, t, p):
    return 1.0 if u[0] < 0.6 else 0.0


def bump(u, t, p):
    u[0] = u[0] + p[2] * u[1]


U0 = np.array([1.0, 0.5])
P = np.array([0.8, 0.4, 0.7, 0.9])
T_DATA = np.linspace(0.25, 4.0, 16)
DATA = np.random.default_rng(0).standard_normal((16, 2)) * 0.1 + 0.8
PROB = js.ODEProblem(coupled, U0, (0.0, 4.0), p=P)
LOSS = js.L2Loss(T_DATA, DATA)
DOSES = js.DiscreteCallback(at_doses, dose)
ADAPTIVE = dict(rtol=1e-8, atol=1e-10)
METHODS = [(js.Euler(), dict(dt=0.01)), (js.RK4(), dict(dt=0.05)), (js.Tsit5(), ADAPTIVE),
           (js.DP5(), ADAPTIVE), (js.Vern7(), ADAPTIVE)]
IDS = ["Euler", "RK4", "Tsit5", "DP5", "Vern7"]


def _rel(g, ref):
    return max(np.abs(g[k] - ref[k]).max() / np.abs(ref[k]).max() for k in ref)


def _adjoint_and_fd(prob, alg, loss, cb, **kw):
    """``(value, adjoint gradient, central differences)`` wrt ``p`` and ``u0``."""
    val, g = js.gradient(prob, alg, loss, wrt=("p", "u0"), callback=cb, **kw)
    _, fd = js.gradient(prob, alg, loss, wrt=("p", "u0"), sensealg=js.FiniteDifference(),
                        callback=cb, **kw)
    return val, g, fd


@pytest.mark.parametrize("alg, kw", METHODS, ids=IDS)
def test_doses_at_tstops_match_central_differences(alg, kw, tmp_path):
    """Doses at fixed times (tstops): the gradient wrt p (the dose and the scaling are
    parameters) and u0 within 2e-7 of central differences (measured 2e-10 - 1.4e-8); the
    value is solve's loss bit for bit; 3 checkpoints and 2 on disk give the same bits."""
    kw = dict(kw, tstops=[1.0, 2.5])
    sol = js.solve(PROB, alg, callback=DOSES, saveat=T_DATA, **kw)
    assert [float(t) for t, _ in sol.events] == [1.0, 2.5]
    val, g, fd = _adjoint_and_fd(PROB, alg, LOSS, DOSES, **kw)
    assert val == LOSS.value(sol.u)
    assert _rel(g, fd) < 2e-7
    assert abs(g["p"][2]) > 0.1 and abs(g["p"][3]) > 0.1      # the jumps' parameters count
    # forward sensitivities pushed across the jumps: the adjoint's gradient to rounding
    _, gf = js.gradient(PROB, alg, LOSS, wrt=("p", "u0"), sensealg=js.ForwardSensitivity(),
                        callback=DOSES, **kw)
    assert _rel(gf, g) < 1e-12
    for sa in (js.DiscreteAdjoint(checkpoints=3),
               js.DiscreteAdjoint(checkpoints=2, store=js.HDF5Store(str(tmp_path / "c.h5")))):
        v2, g2 = js.gradient(PROB, alg, LOSS, wrt=("p", "u0"), sensealg=sa, callback=DOSES,
                             **kw)
        assert v2 == val
        for k in g:
            np.testing.assert_array_equal(g2[k], g[k])
    assert not os.path.exists(tmp_path / "c.h5")


def test_the_callback_changes_the_gradient():
    """Without the doses the gradient differs (the test above cannot pass by ignoring
    the jumps): d/dp[2] is 0 without them."""
    kw = dict(dt=0.05, tstops=[1.0, 2.5])
    _, g = js.gradient(PROB, js.RK4(), LOSS, wrt="p", callback=DOSES, **kw)
    _, g0 = js.gradient(PROB, js.RK4(), LOSS, wrt="p", **kw)
    assert g0["p"][2] == 0.0 and g0["p"][3] == 0.0
    assert np.abs(g["p"] - g0["p"]).max() > 0.1


@pytest.mark.parametrize("alg, kw", METHODS[:2], ids=IDS[:2])
def test_a_state_condition_with_fixed_steps_matches_central_differences(alg, kw):
    """A condition on the state (u[0] < 0.6: the jump after every step where it holds)
    with fixed steps: the step ends do not move, so the held-fixed condition is the
    solve's own derivative (within 2e-7 of central differences; measured 2e-10 - 6e-10)."""
    cb = js.DiscreteCallback(below, bump)
    sol = js.solve(PROB, alg, callback=cb, saveat=T_DATA, **kw)
    assert len(sol.events) >= 2
    val, g, fd = _adjoint_and_fd(PROB, alg, LOSS, cb, **kw)
    assert val == LOSS.value(sol.u)
    assert _rel(g, fd) < 2e-7
    _, gf = js.gradient(PROB, alg, LOSS, wrt=("p", "u0"), sensealg=js.ForwardSensitivity(),
                        callback=cb, **kw)
    assert _rel(gf, g) < 1e-12


def test_a_state_condition_at_adaptive_step_ends_warns():
    """With adaptive steps such a jump happens at a step end that moves with p (central
    differences see it, 36 % apart here); the gradient holds it fixed and says so.  The
    same condition checked only at tstops does not warn."""
    cb = js.DiscreteCallback(below, bump)
    with pytest.warns(UserWarning, match="not a tstop"):
        _, g = js.gradient(PROB, js.Tsit5(), LOSS, wrt="p", callback=cb, **ADAPTIVE)
    _, fd = js.gradient(PROB, js.Tsit5(), LOSS, wrt="p", sensealg=js.FiniteDifference(),
                        callback=cb, **ADAPTIVE)
    assert _rel(g, fd) > 1e-2          # what the warning is about
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        js.gradient(PROB, js.Tsit5(), LOSS, wrt="p", callback=DOSES, tstops=[1.0, 2.5],
                    **ADAPTIVE)


def test_the_jump_pullback_is_the_affects_jacobian_transposed():
    """``AffectJump.vjp`` of ``u0 += p2, u1 *= p3``: ``A_u = diag(1, p3)``, ``A_p`` with
    the entries 1 (dose) and u1 (scaling), to rounding."""
    raw = {"event_t": np.array([1.0]), "event_u": np.array([[0.3, 0.7]]),
           "steps_t": np.array([0.0, 0.5]), "t_end": 1.0}
    (jump,) = discrete_jumps(DOSES, raw, P, P.size, 2)
    assert jump.step == 1
    np.testing.assert_array_equal(jump.after, [0.3 + P[2], 0.7 * P[3]])
    lam = np.array([1.7, -0.4])
    lam_b, dp = jump.vjp(lam)
    np.testing.assert_allclose(lam_b, [1.7, -0.4 * P[3]], rtol=1e-15)
    np.testing.assert_allclose(dp, [0.0, 0.0, 1.7, -0.4 * 0.7], rtol=1e-15)


def test_a_dose_on_a_backward_span():
    """tspan backwards (4 -> 0) with a dose at 2.5: still the central differences'."""
    prob = js.ODEProblem(coupled, U0, (4.0, 0.0), p=P)
    loss = js.L2Loss(T_DATA[::-1][1:], DATA[1:])
    kw = dict(dt=0.05, tstops=[2.5])
    _, g, fd = _adjoint_and_fd(prob, js.RK4(), loss, DOSES, **kw)
    assert abs(g["p"][2]) > 0.01
    assert _rel(g, fd) < 2e-7


def test_a_jump_at_the_last_step_and_a_loss_at_the_jump():
    """A dose at t1 changes nothing the loss sees (the saved state is the one before the
    affect, as solve saves it); a loss time at a dose time sees the state before it."""
    t_data = np.array([1.0, 2.5, 4.0])
    loss = js.L2Loss(t_data, DATA[:3])
    cb = js.DiscreteCallback(lambda u, t, p: 1.0 if (t == 1.0 or t == 4.0) else 0.0, dose)
    kw = dict(dt=0.05, tstops=[1.0])
    sol = js.solve(PROB, js.RK4(), callback=cb, saveat=t_data, **kw)
    assert [float(t) for t, _ in sol.events] == [1.0, 4.0]
    val, g, fd = _adjoint_and_fd(PROB, js.RK4(), loss, cb, **kw)
    assert val == loss.value(sol.u)
    assert _rel(g, fd) < 2e-7


def test_a_heat_pulse_on_a_grid():
    """A SplitODEProblem (Laplacian on 12 x 12 cells + a reaction) and a pulse of heat
    ``u += p[1] * bump`` at t = 0.02: the gradient wrt p and u0 within 2e-7 of central
    differences."""
    g = js.Grid(shape=(12, 12), extent=((0, 1), (0, 1)), bc=js.Dirichlet(0.0))
    x, y = g.mesh()
    shape = np.exp(-20 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)).ravel()

    @njit
    def react(du, u, p, t):
        for i in range(u.size):
            du[i] = p[0] * u[i] * (1.0 - u[i])

    def pulse(u, t, p):
        for i in range(u.size):
            u[i] += p[1] * shape[i] * (1.0 + 0.1 * p[1])

    cb = js.DiscreteCallback(lambda u, t, p: 1.0 if t == 0.02 else 0.0, pulse)
    u0 = (np.sin(np.pi * x) * np.sin(np.pi * y)).ravel() * 0.5
    prob = js.SplitODEProblem(js.Laplacian(g), react, u0, (0.0, 0.04), p=np.array([2.0, 0.3]))
    loss = js.L2Loss(np.array([0.01, 0.03, 0.04]), np.full((3, u0.size), 0.2))
    kw = dict(dt=5e-4, tstops=[0.02])
    _, gr, fd = _adjoint_and_fd(prob, js.RK4(), loss, cb, **kw)
    assert abs(gr["p"][1]) > 0.1
    assert _rel(gr, fd) < 2e-7


def test_refusals_name_what_to_use():
    cb = js.ContinuousCallback(lambda u, t, p: u[0] - 0.5, lambda u, t, p: None)
    with pytest.raises(UnsupportedAlgorithmError, match="ContinuousCallback"):
        js.gradient(PROB, js.Tsit5(), LOSS, wrt="p", callback=cb)
    for sa in (js.InterpolatingAdjoint(), js.BacksolveAdjoint(), js.QuadratureAdjoint()):
        with pytest.raises(UnsupportedAlgorithmError, match="DiscreteAdjoint"):
            js.gradient(PROB, js.Tsit5(), LOSS, wrt="p", sensealg=sa, callback=DOSES)
    with pytest.raises(UnsupportedAlgorithmError, match="DiscreteAdjoint"):
        js.gradient(PROB, js.Rodas5P(), LOSS, wrt="p", callback=DOSES)


def test_an_affect_that_does_not_compile_for_complex_states():
    def clamp(u, t, p):
        if u[0] > 0.9:          # an ordering of complex numbers
            u[0] = 0.9

    cb = js.DiscreteCallback(at_doses, clamp)
    with pytest.raises(CompileError, match="^affect: .*complex step"):
        js.gradient(PROB, js.RK4(), LOSS, wrt="p", callback=cb, dt=0.05, tstops=[1.0, 2.5])
    # central differences of the solve still work
    js.gradient(PROB, js.RK4(), LOSS, wrt="p", sensealg=js.FiniteDifference(), callback=cb,
                dt=0.05, tstops=[1.0, 2.5])


def test_a_state_beyond_the_affect_jacobian_limit_is_refused():
    raw = {"event_t": np.array([1.0]), "event_u": np.zeros((1, AFFECT_JAC_MAX + 1)),
           "steps_t": np.array([0.0]), "t_end": 1.0}
    with pytest.raises(UnsupportedAlgorithmError, match=f"at most {AFFECT_JAC_MAX}"):
        discrete_jumps(DOSES, raw, P, 0, AFFECT_JAC_MAX + 1)


@pytest.mark.parametrize("sensealg", [js.DiscreteAdjoint(), js.InterpolatingAdjoint()],
                         ids=["discrete", "interpolating"])
def test_tstops_on_a_backward_span(sensealg):
    """``tstops`` on a backward span with a gradient (the loss times joined to them in
    ascending order were refused as out of the span's direction; found with the
    backward dose above): the central differences' gradient."""
    prob = js.ODEProblem(coupled, U0, (4.0, 0.0), p=P)
    loss = js.L2Loss(T_DATA[::-1][1:], DATA[1:])
    kw = dict(tstops=[2.5, 1.25], rtol=1e-9, atol=1e-11)
    _, g = js.gradient(prob, js.Tsit5(), loss, wrt="p", sensealg=sensealg, **kw)
    _, fd = js.gradient(prob, js.Tsit5(), loss, wrt="p", sensealg=js.FiniteDifference(), **kw)
    assert _rel(g, fd) < 1e-5


def test_the_problem_carries_its_callback_to_solve_gradient_and_fit():
    """``ODEProblem(..., callback=cb)`` (DifferentialEquations.jl's problem keyword): the
    solves, gradients, remakes and ensembles of the problem use it, a ``callback=`` of
    the call is joined to it (each callback once); ``js.fit`` of the dose model to noisy
    data (2 %) reaches the same minimum with L-BFGS-B (adjoint) and least squares
    (forward sensitivities), no worse than the true parameters and within 10 % of them
    (measured 0.6-5.5 %)."""
    prob = js.ODEProblem(coupled, U0, (0.0, 4.0), p=P, callback=DOSES)
    kw = dict(dt=0.05, tstops=[1.0, 2.5])
    sol = js.solve(prob, js.RK4(), saveat=T_DATA, **kw)
    ref = js.solve(PROB, js.RK4(), saveat=T_DATA, callback=DOSES, **kw)
    np.testing.assert_array_equal(sol.u, ref.u)
    np.testing.assert_array_equal(js.solve(prob, js.RK4(), saveat=T_DATA, callback=DOSES,
                                           **kw).u, ref.u)      # the same callback once
    assert js.remake(prob, p=P * 1.1).callback is DOSES
    v, g = js.gradient(prob, js.RK4(), LOSS, wrt="p", **kw)
    v0, g0 = js.gradient(PROB, js.RK4(), LOSS, wrt="p", callback=DOSES, **kw)
    assert v == v0
    np.testing.assert_array_equal(g["p"], g0["p"])
    ens = js.EnsembleProblem(prob, ps=np.stack([P, 1.1 * P]))
    es = js.solve(ens, js.RK4(), trajectories=2, saveat=T_DATA, **kw)
    np.testing.assert_array_equal(es.u[0], ref.u)
    data = ref.u * (1 + 0.02 * np.random.default_rng(3).standard_normal(ref.u.shape))
    loss = js.L2Loss(T_DATA, data)
    at_truth = js.gradient(prob, js.RK4(), loss, wrt="p", **kw)[0]
    fitted = []
    for method in ("L-BFGS-B", "least_squares"):
        res = js.fit(prob, js.RK4(), loss, P * np.array([1.2, 0.8, 1.25, 0.85]),
                     method=method, bounds=[(0.01, 5.0)] * 4, progress=False, maxiter=200, **kw)
        assert res.success, (method, res.message)
        assert res.loss <= at_truth                     # as good as the truth on this data
        assert np.abs(res.p / P - 1).max() < 0.1, (method, res.p)
        fitted.append(res.p)
    np.testing.assert_allclose(fitted[0], fitted[1], rtol=2e-3)   # the same minimum
    with pytest.raises(js.errors.InvalidProblemError, match="^callback: expected"):
        js.ODEProblem(coupled, U0, (0.0, 4.0), p=P, callback=lambda u, t, p: None)


@pytest.mark.parametrize("sensealg", [js.DiscreteAdjoint(), js.ForwardSensitivity()],
                         ids=["adjoint", "forward"])
@pytest.mark.parametrize("wrt", ["p", "u0"])
def test_check_gradient_through_the_doses(sensealg, wrt, capsys):
    """``js.check_gradient``'s Taylor remainder falls as eps^2 through the jumps (order
    2.00 measured)."""
    rep = js.check_gradient(PROB, js.Tsit5(), LOSS, wrt=wrt, sensealg=sensealg,
                            callback=DOSES, tstops=[1.0, 2.5], **ADAPTIVE)
    assert rep["passed"] and abs(rep["order"] - 2.0) < 0.1
    assert "PASSED" in capsys.readouterr().out


def test_a_non_analytic_affect_is_refused_not_differentiated_wrongly():
    """``abs`` compiles for complex numbers but its complex step is not its derivative:
    the first jump's Jacobians are compared with difference quotients of the real affect
    and the gradient refused (it was silently wrong: 7e-3 to 7.7 relative, found by an
    audit)."""
    def fold(u, t, p):
        u[1] = abs(u[1] - 0.9) * p[2]

    cb = js.DiscreteCallback(at_doses, fold)
    with pytest.raises(UnsupportedAlgorithmError, match="^affect: .*not complex-analytic"):
        js.gradient(PROB, js.RK4(), LOSS, wrt="p", callback=cb, dt=0.05, tstops=[1.0, 2.5])


def test_an_affect_that_changes_p_is_refused_before_the_solve():
    """An affect writing ``p`` (``integrator.p[1] = ...`` in Julia) is refused before
    the forward solve, which would have changed the caller's array (it did: 0.8 ->
    0.05, and the next gradient differed)."""
    def switch(u, t, p):
        u[0] += 0.1
        p[0] = 0.05

    p = P.copy()
    prob = js.ODEProblem(coupled, U0, (0.0, 4.0), p=p, callback=js.DiscreteCallback(at_doses, switch))
    with pytest.raises(UnsupportedAlgorithmError, match=r"^affect: it changes p\[0\]"):
        js.gradient(prob, js.RK4(), LOSS, wrt="p", dt=0.05, tstops=[1.0, 2.5])
    np.testing.assert_array_equal(prob.p, P)


def test_the_jacobians_of_many_jumps_are_not_kept():
    """Each jump's ``n x n`` Jacobians are formed when the sweep reaches it and dropped
    (kept on every jump they took 3.8 GiB for 30 jumps of 4,096 entries): 20 jumps of
    a 512-entry state stay within a few of them (2 MiB each)."""
    import tracemalloc

    @njit
    def decay_all(du, u, p, t):
        for i in range(u.size):
            du[i] = -p[0] * u[i]

    def kick(u, t, p):
        u[0] += p[1]

    n = 512
    times = np.arange(1, 21) * 0.05
    prob = js.ODEProblem(decay_all, np.ones(n), (0.0, 1.05), p=np.array([0.5, 0.2]))
    cb = js.DiscreteCallback(lambda u, t, p: 1.0 if abs(t / 0.05 - round(t / 0.05)) < 1e-9 else 0.0,
                             kick)
    loss = js.L2Loss(np.array([1.05]), np.zeros((1, n)))
    kw = dict(dt=0.01, tstops=times)
    js.gradient(prob, js.RK4(), loss, wrt="p", callback=cb, **kw)      # compiled
    tracemalloc.start()
    _, g = js.gradient(prob, js.RK4(), loss, wrt="p", callback=cb, **kw)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * n * n * 8, peak
    assert abs(g["p"][1]) > 0.1


def test_the_warning_points_at_the_callers_line():
    cb = js.DiscreteCallback(below, bump)
    with pytest.warns(UserWarning, match="not a tstop") as rec:
        js.gradient(PROB, js.Tsit5(), LOSS, wrt="p", callback=cb, **ADAPTIVE)
    assert rec[0].filename == __file__


def test_fit_points_events_to_the_problem():
    with pytest.raises(js.errors.InvalidProblemError, match="ODEProblem.*callback=cb"):
        js.fit(PROB, js.RK4(), LOSS, P, callback=DOSES, dt=0.05)


def test_prob_func_problems_bring_their_own_callbacks():
    """With ``prob_func`` each trajectory solves the problem it returns, with that
    problem's callback (the base problem's was forced into every one: a remake with
    ``callback=None`` kept it, one with another callback was refused)."""
    prob = js.ODEProblem(coupled, U0, (0.0, 4.0), p=P, callback=DOSES)
    other = js.DiscreteCallback(lambda u, t, p: 1.0 if t == 1.0 else 0.0, bump)
    kw = dict(dt=0.05, tstops=[1.0, 2.5], saveat=T_DATA)
    cbs = [None, other, DOSES]
    ens = js.EnsembleProblem(prob, prob_func=lambda pr, i: js.remake(pr, callback=cbs[i]))
    es = js.solve(ens, js.RK4(), trajectories=3, **kw)
    for i, cb in enumerate(cbs):
        want = js.solve(js.remake(prob, callback=cb), js.RK4(), **kw).u
        np.testing.assert_array_equal(es.u[i], want)
    assert not np.array_equal(es.u[0], es.u[2])


def test_work_precision_refuses_scipy_peers_with_the_problems_callback():
    prob = js.ODEProblem(coupled, U0, (0.0, 4.0), p=P, callback=DOSES)
    with pytest.raises(js.errors.InvalidProblemError, match="SciPy peers cannot apply callback="):
        js.work_precision(prob, [js.Tsit5(), "scipy:DOP853"], [1e-6], tstops=[1.0, 2.5])


def test_the_kappa_gradient_has_kappas_shape():
    """``wrt="kappa"`` of a grid ODE whose ``u0`` is the grid flattened: the gradient has
    the coefficient's (grid) shape, as finite differences give it (it had u0's)."""
    g = js.Grid(shape=(6, 6), extent=((0, 1), (0, 1)), bc=js.Dirichlet(0.0))
    D = js.Diffusion(g, np.exp(np.random.default_rng(0).standard_normal(g.shape)))
    prob = js.ODEProblem(D, np.random.default_rng(1).standard_normal(36), (0.0, 0.01))
    loss = js.L2Loss(np.array([0.01]), np.zeros((1, 36)))
    _, gr = js.gradient(prob, js.RK4(), loss, wrt="kappa", dt=1e-3)
    _, fd = js.gradient(prob, js.RK4(), loss, wrt="kappa", sensealg=js.FiniteDifference(),
                        dt=1e-3)
    assert gr["kappa"].shape == fd["kappa"].shape == (6, 6)
    assert _rel(gr, fd) < 1e-6


def test_check_gradients_hint_does_not_blame_adaptivity_for_fixed_steps(capsys):
    """A wrong gradient (a loss whose ``grad`` is off by a factor) with fixed-step RK4
    fails the Taylor test without the "adaptive at rtol > 1e-6" hint (shown before, at
    the default rtol, for a method that takes no adaptive steps; found by the audit)."""
    bad = js.Loss(lambda u: 0.5 * float(np.sum(u ** 2)), lambda u: 1.5 * u, t_data=T_DATA)
    rep = js.check_gradient(PROB, js.RK4(), bad, wrt="u0", dt=0.05)
    assert not rep["passed"]
    assert "adaptive" not in rep["hint"]
    rep = js.check_gradient(PROB, js.Tsit5(), bad, wrt="u0")
    assert not rep["passed"] and "adaptive at rtol" in rep["hint"]


def test_etdrk4_refusals_do_not_suggest_what_cannot_work():
    """ETDRK4's solve takes no callbacks, so its gradient refusal does not send the user
    to finite differences (which solve with the callback), and the solve's refusal
    covers a discrete callback (it spoke of an interpolant for events only)."""
    g = js.Grid(shape=(8,), extent=((0, 1),), bc=js.Dirichlet(0.0))

    @njit
    def zero_f(du, u, p, t):
        for i in range(u.size):
            du[i] = 0.0

    prob = js.SplitODEProblem(js.Laplacian(g), zero_f, np.ones(8), (0.0, 0.1))
    loss = js.L2Loss(np.array([0.1]), np.zeros((1, 8)))
    with pytest.raises(UnsupportedAlgorithmError) as exc:
        js.gradient(prob, js.ETDRK4(), loss, wrt="u0", callback=DOSES, dt=0.01)
    assert "FiniteDifference" not in str(exc.value) and "ETDRK4 takes no callbacks" in str(exc.value)
    with pytest.raises(UnsupportedAlgorithmError, match="checks no discrete"):
        js.solve(prob, js.ETDRK4(), callback=DOSES, dt=0.01)
