"""ODE audit fixes, second round: ``dtmin`` checked on accepted steps (the controller's
proposal, never a step clamped onto a stop) and validated up front; user functions probed
once in Python for indexing ``p`` out of bounds; stiff ensembles (one compiled kernel, a
trajectory per thread, each trajectory bit for bit its single solve)."""
import numpy as np
import pytest
from numba import njit

import jitsolve as js
from ensemble_modes import bits, solve_mode
from jitsolve import functions as F
from jitsolve.errors import InvalidProblemError, UserFunctionError

DTMIN = js.ReturnCode.DtLessThanMin


def square(du, u, p, t):          # u = 1 / (1 - t) from u0 = 1: blows up at t = 1
    du[0] = u[0] * u[0]


def squares(du, u, p, t):
    for i in range(u.size):
        du[i] = u[i] * u[i]


def chirp(du, u, p, t):         # u' = cos(p t^2): the steps shrink as the frequency grows
    du[0] = np.cos(p[0] * t * t)


def blow(du, u, p, t):            # u = 1 / (1 - p t)
    du[0] = p[0] * u[0] * u[0]


def decay(du, u, p, t):
    du[0] = -p[0] * u[0]


def decay_probed_once(du, u, p, t):
    du[0] = -p[0] * u[0]


def robertson(du, u, p, t):
    du[0] = -p[0] * u[0] + p[1] * u[1] * u[2]
    du[1] = p[0] * u[0] - p[1] * u[1] * u[2] - p[2] * u[1] * u[1]
    du[2] = p[2] * u[1] * u[1]


def reads_p2(du, u, p, t):        # p[2]: out of bounds for a p of two entries
    du[0] = -p[0] * u[0] + p[2]
    du[1] = -p[1] * u[1]


@njit
def reads_p2_jit(du, u, p, t):
    du[0] = -p[0] * u[0] + p[2]
    du[1] = -p[1] * u[1]


def writes_du2(du, u, p, t):      # du[2]: out of bounds for a state of two entries
    du[0] = -u[0]
    du[1] = -u[1]
    du[2] = 0.0


def noise_p1(gu, u, p, t):
    gu[0] = p[1]
    gu[1] = p[1]


def noise_ok(gu, u, p, t):
    gu[0] = 0.1
    gu[1] = 0.1


def raises_at_start(du, u, p, t):   # raises compiled too: the probe must leave it alone
    if t == 0.0:
        raise ValueError("start")
    du[0] = -u[0]
    du[1] = -u[1]


def cond_p5(u, t, p):
    return u[0] - p[5]


def pokes_p(du, u, p, t):         # writes into p (bad, but must not reach the caller's p)
    p[0] = 99.0
    du[0] = -u[0]


TWO = np.array([1.0, 2.0])
P2 = np.array([1.0, 0.5])


# ------------------------------------------------------------------ 1. dtmin
def test_accepted_steps_shrinking_below_dtmin_stop():
    # ImplicitEuler's numerical solution blows up near t = 0.978 without one rejected
    # step: the accepted steps used to shrink on towards 1e-156 (14413 steps, then
    # ConvergenceFailure); the controller's proposal below dtmin now stops the solve
    prob = js.ODEProblem(square, np.array([1.0]), (0.0, 0.99))
    sol = js.solve(prob, js.ImplicitEuler())
    assert sol.retcode is DTMIN
    assert sol.stats.nreject == 0 and sol.stats.naccept < 2000
    assert sol.t[-1] < 0.99 and np.isfinite(sol.u[-1]).all()
    assert np.abs(sol.steps_h).min() > 1e-15


def test_explicit_proposal_below_user_dtmin_stops():
    # a chirp: the accepted steps shrink smoothly, never rejected, below dtmin = 0.18
    # near t = 8.7; the solve used to run on to t1 with Success (dtmin = 0.15 still
    # succeeds: the one step below it is the last, clamped onto t1)
    prob = js.ODEProblem(chirp, np.array([0.0]), (0.0, 10.0), p=np.array([1.0]))
    free = js.solve(prob, js.Tsit5(), dt=0.2)
    assert free.retcode is js.ReturnCode.Success and free.stats.nreject == 0
    assert np.abs(free.steps_h).min() < 0.15
    assert js.solve(prob, js.Tsit5(), dt=0.2, dtmin=0.15).retcode is js.ReturnCode.Success
    sol = js.solve(prob, js.Tsit5(), dt=0.2, dtmin=0.18)
    assert sol.retcode is DTMIN and sol.stats.nreject == 0
    assert 8.0 < sol.t[-1] < 9.0
    assert np.abs(sol.steps_h).min() >= 0.18           # every step taken is >= dtmin
    n = sol.t.size                                      # what was computed is kept
    assert np.array_equal(bits(sol.u), bits(free.u[:n])) and np.array_equal(sol.t, free.t[:n])


def test_rosenbrock_proposal_below_user_dtmin_stops():
    prob = js.ODEProblem(square, np.array([1.0]), (0.0, 0.999))
    sol = js.solve(prob, js.Rodas5P(), dtmin=2e-3)
    assert sol.retcode is DTMIN and sol.t[-1] < 0.999
    assert np.abs(sol.steps_h).min() >= 2e-3


def test_newton_krylov_loop_checks_dtmin_on_accepted_steps():
    # u' = L u + u^2 with Neumann walls: uniform, u = 1 / (1 - t); ImplicitEuler
    # through the Python Newton-Krylov loop (n > dense_max).  A 2-D grid: the Neumann
    # stencil, Krylov and multigrid kernels of test_ode_stiff's Allen-Cahn problem (a 1-D
    # grid compiled its own, ~80 s of a cold CI)
    g = js.Grid((4, 4), bc=js.Neumann())
    prob = js.SplitODEProblem(js.Laplacian(g), squares, np.ones((4, 4)), (0.0, 0.999))
    sol = js.solve(prob, js.ImplicitEuler(dense_max=4), dtmin=2e-3)
    assert sol.retcode is DTMIN
    assert sol.stats.nreject == 0 and sol.t[-1] < 0.999
    assert np.abs(sol.steps_h).min() >= 2e-3


def test_lockstep_ensemble_stops_as_the_single_solves(monkeypatch):
    N = 66
    ps = np.linspace(0.2, 1.0, N)[:, None]
    prob = js.ODEProblem(chirp, np.array([0.0]), (0.0, 10.0), p=np.array([1.0]))
    ep = js.EnsembleProblem(prob, ps=ps)
    kw = dict(saveat=[0.0, 5.0, 10.0], dtmin=0.18)
    ref = solve_mode(monkeypatch, "general", ep, js.Tsit5(), N, **kw)
    for mode in ("percall", "batched"):
        sol = solve_mode(monkeypatch, mode, ep, js.Tsit5(), N, **kw)
        assert np.array_equal(bits(sol.u), bits(ref.u)), mode
        assert list(sol.retcodes) == list(ref.retcodes), mode
        assert np.array_equal(sol.stats, ref.stats), mode
    assert ref.retcodes[0] is js.ReturnCode.Success
    assert ref.retcodes[60] is DTMIN and ref.stats[60, 4] == 0     # never rejected
    single = js.solve(js.remake(prob, p=ps[60]), js.Tsit5(), **kw)
    # the single solve ends with the state it stopped at (forty-seventh session)
    assert single.retcode is DTMIN and single.t.size == 3 and 5.0 < single.t[2] < 10.0
    assert np.array_equal(bits(ref.u[60, :2]), bits(single.u[:2])) and np.isnan(ref.u[60, 2]).all()


@pytest.mark.parametrize("alg", [js.Tsit5(), js.Rodas5P()])
def test_steps_clamped_onto_stops_never_trigger_dtmin(alg):
    # a tstop 1e-9 after another: that step is clamped to 1e-9 < dtmin, and the next
    # ones regrow from it; neither is the controller shrinking the steps
    prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([1.0]))
    sol = js.solve(prob, alg, tstops=[0.5, 0.5 + 1e-9], dtmin=1e-6, rtol=1e-8, atol=1e-10)
    assert sol.retcode is js.ReturnCode.Success
    assert np.abs(sol.steps_h).min() < 1e-6                # a clamped step below dtmin
    assert abs(sol.u[-1, 0] - np.exp(-1.0)) < 1e-7


def test_dtmin_validated_against_dt_and_span():
    prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([1.0]))
    with pytest.raises(InvalidProblemError, match=r"^dtmin: 0\.001 is larger than the starting "
                                                  r"step dt = 0\.0001"):
        js.solve(prob, js.Tsit5(), dt=1e-4, dtmin=1e-3)
    with pytest.raises(InvalidProblemError, match=r"^dtmin: 0\.001 is larger"):
        js.solve(prob, js.Rodas5P(), dt=1e-4, dtmin=1e-3)
    with pytest.raises(InvalidProblemError, match=r"^dtmin: 2\.0 is longer than the span"):
        js.solve(prob, js.Tsit5(), dtmin=2.0)
    with pytest.raises(InvalidProblemError, match=r"^dtmin: 2\.0 is longer than the span"):
        js.solve(js.EnsembleProblem(prob, ps=np.ones((2, 1))), js.Tsit5(), dtmin=2.0)
    # fixed steps ignore dtmin; an adaptive dt >= dtmin is fine
    fixed = js.solve(prob, js.RK4(), dt=1e-3, dtmin=1e-2)
    assert fixed.retcode is js.ReturnCode.Success and fixed.stats.naccept == 1000
    ok = js.solve(prob, js.Tsit5(), dt=1e-2, dtmin=1e-3)
    assert ok.retcode is js.ReturnCode.Success and abs(ok.steps_h[0] - 1e-2) < 1e-15


def test_automatic_first_step_is_not_below_dtmin():
    prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([1.0]))
    auto = js.solve(prob, js.Tsit5())
    assert abs(auto.steps_h[0] - 0.1) < 1e-3            # Hairer's first step
    sol = js.solve(prob, js.Tsit5(), dtmin=0.2)
    assert sol.retcode is js.ReturnCode.Success and sol.steps_h[0] == 0.2


# ------------------------------------------------------------------ 2. the probe
@pytest.mark.parametrize("f", [reads_p2, reads_p2_jit])
@pytest.mark.parametrize("alg", [js.Tsit5(), js.Rodas5P()])
def test_out_of_bounds_p_is_an_error(f, alg):
    prob = js.ODEProblem(f, TWO, (0.0, 1.0), p=P2)
    with pytest.raises(InvalidProblemError, match=r"^p: f \(reads_p2(_jit)?\) indexes p out of "
                                                  r"bounds \(p has 2 entries\): IndexError"):
        js.solve(prob, alg)
    ok = js.solve(js.remake(prob, p=np.array([1.0, 0.5, 0.0])), alg)   # p long enough
    assert ok.retcode is js.ReturnCode.Success


def test_out_of_bounds_p_in_ensembles_and_fit():
    prob = js.ODEProblem(reads_p2, TWO, (0.0, 1.0), p=P2)
    with pytest.raises(InvalidProblemError, match=r"^p: f .*p has 2 entries"):
        js.solve(js.EnsembleProblem(prob, ps=np.ones((3, 2))), js.Tsit5())
    with pytest.raises(InvalidProblemError, match=r"^p: f .*p has 2 entries"):
        js.solve(js.EnsembleProblem(prob, ps=np.ones((3, 2))), js.Rodas5P())
    good = js.ODEProblem(reads_p2, TWO, (0.0, 1.0), p=np.array([1.0, 0.5, 0.0]))
    loss = js.L2Loss(np.array([0.5, 1.0]), np.zeros((2, 2)))
    with pytest.raises(InvalidProblemError, match=r"^p: f .*p has 2 entries"):
        js.fit(good, js.Tsit5(), loss, P2, maxiter=2, progress=False)


def test_out_of_bounds_in_sde_drift_and_diffusion():
    bad_g = js.SDEProblem(decay, noise_p1, TWO, (0.0, 1.0), p=np.array([1.0]))
    with pytest.raises(InvalidProblemError, match=r"^p: g \(noise_p1\) indexes p out of bounds "
                                                  r"\(p has 1 entries\)"):
        js.solve(bad_g, js.EM(), dt=0.01, seed=1)
    bad_f = js.SDEProblem(reads_p2, noise_ok, TWO, (0.0, 1.0), p=P2)
    with pytest.raises(InvalidProblemError, match=r"^p: f \(reads_p2\)"):
        js.solve(bad_f, js.EM(), dt=0.01, seed=1)


def test_out_of_bounds_state_and_callback():
    with pytest.raises(InvalidProblemError, match=r"^f: writes_du2 indexes du out of bounds "
                                                  r"\(u0 has 2 entries\)"):
        js.solve(js.ODEProblem(writes_du2, TWO, (0.0, 1.0)), js.Tsit5())
    prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([1.0]))
    cb = js.ContinuousCallback(cond_p5)
    with pytest.raises(InvalidProblemError, match=r"^p: condition \(cond_p5\) indexes p"):
        js.solve(prob, js.Tsit5(), callback=cb)
    with pytest.raises(InvalidProblemError, match=r"^p: condition \(cond_p5\) indexes p"):
        js.solve(prob, js.Rodas5P(), callback=cb)


def test_probe_ignores_other_exceptions_copies_and_caches(monkeypatch):
    # a function that raises something else: the compiled solve reports it as before
    with pytest.raises(UserFunctionError):
        js.solve(js.ODEProblem(raises_at_start, TWO, (0.0, 1.0)), js.Tsit5())
    # the probe works on copies: p and u0 untouched
    p, u0 = np.array([1.0]), np.array([1.0])
    F.probe_user_function(pokes_p, "f", u0, p, 0.0, out_shape=(1,))
    assert p[0] == 1.0 and u0[0] == 1.0
    # probed once per (function, shapes); big states are not probed
    calls = []
    real = F._probe_call
    monkeypatch.setattr(F, "_probe_call", lambda *a: calls.append(1) or real(*a))
    prob = js.ODEProblem(decay_probed_once, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    for k in range(3):
        js.solve(js.remake(prob, p=np.array([2.0 + k])), js.Tsit5())
    assert len(calls) == 1
    F.probe_user_function(writes_du2, "f", np.zeros(F.PROBE_MAX_N + 1), P2, 0.0,
                          out_shape=(F.PROBE_MAX_N + 1,))
    assert len(calls) == 1


# ------------------------------------------------------------------ 3. stiff ensembles
def _no_python_loop(monkeypatch):
    """Make the general (one solve per trajectory) path fail, so a test sees the kernel."""
    import jitsolve.ode_stiff as S

    def refuse(*a, **k):
        raise AssertionError("the stiff ensemble took the Python loop")
    monkeypatch.setattr(S, "_solve_prob_func", refuse)


@pytest.mark.parametrize("alg", [js.Rodas5P(), js.KenCarp4(), js.Rosenbrock23(), js.Kvaerno5(),
                                 js.ImplicitEuler()], ids=lambda a: type(a).__name__)
def test_stiff_ensemble_is_its_single_solves(alg, monkeypatch):
    """One compiled kernel (a trajectory per thread) reproduces each single solve bit for
    bit: its own steps, its own complex-step Jacobians with its own ``p``."""
    prob = js.ODEProblem(robertson, np.array([1.0, 0.0, 0.0]), (0.0, 10.0),
                         p=np.array([0.04, 1e4, 3e7]))
    ps = np.array([[0.04, 1e4, 3e7], [0.08, 1e4, 3e7], [0.04, 2e4, 1e7]])
    u0s = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [1.0, 0.0, 0.0]])
    _no_python_loop(monkeypatch)
    es = js.solve(js.EnsembleProblem(prob, u0s=u0s, ps=ps), alg, saveat=2.5, rtol=1e-6,
                  atol=1e-9)
    monkeypatch.undo()
    assert es.u.shape == (3, 5, 3) and es.retcode is js.ReturnCode.Success
    np.testing.assert_array_equal(es.t, [0.0, 2.5, 5.0, 7.5, 10.0])
    for i in range(3):
        s = js.solve(js.remake(prob, u0=u0s[i], p=ps[i]), alg, saveat=2.5, rtol=1e-6, atol=1e-9)
        assert np.array_equal(bits(es.u[i]), bits(s.u))
        assert es.stats[i].tolist() == list(s.stats.asdict().values())
    # without saveat: tspan's ends, as the explicit ensembles
    es = js.solve(js.EnsembleProblem(prob, ps=ps), alg, trajectories=2)
    np.testing.assert_array_equal(es.t, [0.0, 10.0])
    assert es.u.shape == (2, 2, 3)


def test_stiff_ensemble_keeps_a_failed_trajectory(monkeypatch):
    prob = js.ODEProblem(blow, np.array([1.0]), (0.0, 1.0), p=np.array([0.5]))
    ps = np.array([[0.5], [2.0], [0.1]])                   # the second blows up at t = 0.5
    ts = np.array([0.0, 0.25, 0.75, 1.0])
    _no_python_loop(monkeypatch)
    es = js.solve(js.EnsembleProblem(prob, ps=ps), js.Rosenbrock23(), saveat=ts)
    monkeypatch.undo()
    single = js.solve(js.remake(prob, p=ps[1]), js.Rosenbrock23(), saveat=ts)
    assert not single.retcode.successful
    assert es.retcodes[1] is single.retcode and es.retcode is single.retcode
    assert es.retcodes[0] is es.retcodes[2] is js.ReturnCode.Success
    assert np.array_equal(bits(es.u[1, :2]), bits(single.u[:2])) and np.isnan(es.u[1, 2:]).all()


def robertson_jac(J, u, p, t):
    J[0, 0] = -p[0]
    J[0, 1] = p[1] * u[2]
    J[0, 2] = p[1] * u[1]
    J[1, 0] = p[0]
    J[1, 1] = -p[1] * u[2] - 2.0 * p[2] * u[1]
    J[1, 2] = -p[1] * u[1]
    J[2, 0] = 0.0
    J[2, 1] = 2.0 * p[2] * u[1]
    J[2, 2] = 0.0


def reaction(du, u, p, t):
    for i in range(u.size):
        du[i] = p[0] * u[i] * (1.0 - u[i] * u[i])


@pytest.mark.parametrize("case", ["user_jac", "imex", "split_implicit"])
def test_stiff_ensemble_kernel_variants(case, monkeypatch):
    """The kernel with the user's ``jac`` (evaluated with each trajectory's ``p``), and on
    a ``SplitODEProblem`` (KenCarp4's IMEX form; Rodas5P with both parts implicit): each
    trajectory bit for bit its single solve, the parameters told apart."""
    if case == "user_jac":
        prob = js.ODEProblem(js.ODEFunction(robertson, jac=robertson_jac),
                             np.array([1.0, 0.0, 0.0]), (0.0, 10.0), p=np.array([0.04, 1e4, 3e7]))
        ps = np.array([[0.04, 1e4, 3e7], [0.08, 2e4, 1e7]])
        alg = js.Rodas5P()
    else:
        g = js.Grid((24,), extent=((0.0, 1.0),), bc=js.Dirichlet(0.0))
        u0 = np.sin(np.pi * g.cell_centers()[0]) * 0.5
        prob = js.SplitODEProblem(0.05 * js.Laplacian(g), reaction, u0, (0.0, 0.5),
                                  p=np.array([1.0]))
        ps = np.array([[1.0], [4.0], [10.0]])
        alg = js.KenCarp4() if case == "imex" else js.Rodas5P()
    sv = np.linspace(*prob.tspan, 6)
    _no_python_loop(monkeypatch)
    es = js.solve(js.EnsembleProblem(prob, ps=ps), alg, saveat=sv, rtol=1e-7, atol=1e-9)
    monkeypatch.undo()
    assert es.retcode is js.ReturnCode.Success
    for i in range(ps.shape[0]):
        s = js.solve(js.remake(prob, p=ps[i]), alg, saveat=sv, rtol=1e-7, atol=1e-9)
        assert np.array_equal(bits(es.u[i]), bits(s.u))
    assert not np.allclose(es.u[0, -1], es.u[1, -1], rtol=1e-3)


def fall_p(du, u, p, t):           # height and velocity under gravity p[1]
    du[0] = u[1]
    du[1] = -p[1]


def ground(u, t, p):
    return u[0]


def bounce(u, t, p):                 # restitution p[0]
    u[1] = -p[0] * u[1]


def test_stiff_ensemble_with_callbacks(monkeypatch):
    """Events inside the ensemble kernel, with each trajectory's ``p`` in the callbacks:
    a bounce (affect) and a terminating ground hit, each trajectory bit for bit its own
    single solve (saves up to the termination, NaN after)."""
    prob = js.ODEProblem(fall_p, np.array([1.0, 0.0]), (0.0, 2.0), p=np.array([0.8, 9.81]))
    ps = np.array([[0.8, 9.81], [0.7, 9.81], [0.9, 3.0]])   # no Zeno point before t = 2
    sv = np.linspace(0.0, 2.0, 9)
    alg = js.Rodas5P(autonomous=True)
    # both callbacks with an affect: one callback-tuple type, one compile of the kernel
    # (~40 s cold each); the second bounces once and stops there
    for cb in (js.ContinuousCallback(ground, bounce),
               js.ContinuousCallback(ground, bounce, terminate=True)):
        _no_python_loop(monkeypatch)
        es = js.solve(js.EnsembleProblem(prob, ps=ps), alg, saveat=sv, callback=cb, rtol=1e-8,
                      atol=1e-10)
        monkeypatch.undo()
        for i in range(3):
            s = js.solve(js.remake(prob, p=ps[i]), alg, saveat=sv, callback=cb, rtol=1e-8,
                         atol=1e-10)
            # the ensemble keeps the saves at its times (a terminated single solve also
            # ends with the event's state, not one of them; the general path the same)
            k = int(np.sum(s.t[:sv.size] == sv[:s.t.size]))
            assert k >= 2 and es.retcodes[i] is s.retcode
            assert np.array_equal(bits(es.u[i, :k]), bits(s.u[:k]))
            assert np.isnan(es.u[i, k:]).all()
        # the general path (prob_func: one solve per trajectory) gives the same ensemble
        el = js.solve(js.EnsembleProblem(prob, prob_func=lambda pr, i: js.remake(pr, p=ps[i])),
                      alg, trajectories=3, saveat=sv, callback=cb, rtol=1e-8, atol=1e-10)
        assert np.array_equal(es.u, el.u, equal_nan=True) and es.retcodes == el.retcodes
        if cb.terminate:
            assert es.retcodes[0] is js.ReturnCode.Terminated
            assert np.isnan(es.u[:, -1]).all()       # every trajectory hit the ground before t = 2
        else:
            assert es.retcode is js.ReturnCode.Success
            assert np.all(es.u[:, :, 0] > -1e-8)      # bounced, never below the ground
            assert not np.allclose(es.u[0, -1], es.u[1, -1])


def test_stiff_ensemble_prob_func_and_its_gradient():
    prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([1.0]))
    ep = js.EnsembleProblem(prob, prob_func=lambda pr, i: js.remake(pr, p=[1.0 + i]))
    es = js.solve(ep, js.ImplicitEuler(), trajectories=2, rtol=1e-6)
    for i in range(2):
        s = js.solve(js.remake(prob, p=[1.0 + i]), js.ImplicitEuler(), rtol=1e-6,
                     saveat=[0.0, 1.0])
        assert np.array_equal(bits(es.u[i]), bits(s.u))
    # stiff ensemble gradients (were refused): one js.gradient per trajectory, bit for bit
    loss = js.L2Loss(np.array([0.5, 1.0]), np.zeros((2, 1)))
    v, g = js.gradient(js.EnsembleProblem(prob, ps=np.array([[1.0], [2.0]])), js.Rodas5P(),
                       loss, wrt=("p", "u0"), rtol=1e-8)
    assert g["p"].shape == (2, 1) and g["u0"].shape == (2, 1)
    total = 0.0
    for i in range(2):
        vi, gi = js.gradient(js.remake(prob, p=[1.0 + i]), js.Rodas5P(), loss,
                             wrt=("p", "u0"), rtol=1e-8)
        total += vi
        assert g["p"][i] == gi["p"] and g["u0"][i] == gi["u0"]
        # exact: L = sum_t 0.5 exp(-2 p t), dL/dp = -sum_t t exp(-2 p t)
        p = 1.0 + i
        assert gi["p"][0] == pytest.approx(-(0.5 * np.exp(-p) + np.exp(-2 * p)), rel=1e-6)
    assert v == total


def huge_rate(du, u, p, t):
    du[0] = 1e200 * u[0]


@pytest.mark.parametrize("alg", [js.Tsit5(), js.Rodas5P()], ids=["Tsit5", "Rodas5P"])
def test_huge_initial_slope_gives_a_retcode(alg):
    # the initial-step norm of f0 overflowed to inf, the trial step became 0 and the
    # next division raised ZeroDivisionError out of solve
    sol = js.solve(js.ODEProblem(huge_rate, np.array([1.0]), (0.0, 1.0)), alg)
    assert isinstance(sol.retcode, js.ReturnCode) and sol.t.size >= 1

