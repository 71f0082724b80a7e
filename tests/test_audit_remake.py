"""Audit of ``js.remake`` (DifferentialEquations.jl's ``remake(prob; u0, p, tspan)``) for
every problem type: a remade problem solves bit for bit as a freshly built one, leaves
the original untouched, is validated as the constructor validates, and keeps what the
constructor derives (an SDE's noise, a grid operator, an ensemble's rows) consistent."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import jitsolve as js
from jitsolve.errors import InvalidProblemError
from ode_models import lotka
from sde_models import gbm_f, gbm_g, nl_f, nl_g, sc_g

P = np.array([1.5, 1.0, 3.0, 1.0])
U0 = np.array([1.0, 1.0])
PS = np.array([0.5, 0.2, 0.3, 0.4])


def _ode():
    return js.ODEProblem(lotka, U0, (0.0, 1.0), P)


def _solve_ode(prob):
    return js.solve(prob, js.Tsit5(), rtol=1e-8, atol=1e-10,
                    saveat=np.linspace(*prob.tspan, 5))


def _decay_all(du, u, p, t):
    for i in range(u.size):
        du[i] = -p[0] * u[i]


def _diag_g(gu, u, p, t):
    for i in range(u.size):
        gu[i] = p[1] * u[i]


def _general_g(G, u, p, t):
    for i in range(u.size):
        for j in range(G.shape[1]):
            G[i, j] = p[1] * u[i] / (1.0 + j)


def _raises(fn):
    with pytest.raises(InvalidProblemError) as info:
        fn()
    return str(info.value)


# ------------------------------------------------------------------------ ODEProblem
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(u=st.lists(st.floats(0.2, 3.0), min_size=2, max_size=2),
       q=st.lists(st.floats(0.5, 2.0), min_size=4, max_size=4),
       t1=st.floats(0.1, 2.0), back=st.booleans())
def test_remade_ode_solves_as_a_fresh_problem_bit_for_bit(u, q, t1, back):
    prob = _ode()
    u0, p = np.array(u), np.array(q)
    span = (t1, 0.0) if back else (0.0, t1)
    new = js.remake(prob, u0=u0, p=p, tspan=span)
    fresh = js.ODEProblem(lotka, u0, span, p)
    a, b = _solve_ode(new), _solve_ode(fresh)
    assert a.retcode == js.ReturnCode.Success
    assert np.array_equal(a.u, b.u) and np.array_equal(a.t, b.t)
    # the original is what it was
    assert prob.u0.tolist() == [1.0, 1.0] and prob.p.tolist() == P.tolist()
    assert prob.tspan == (0.0, 1.0)


def test_remake_without_changes_is_an_equal_independent_copy_for_every_type():
    prob = _ode()
    c = js.remake(prob)
    assert c is not prob and c.f is prob.f and c.tspan == prob.tspan
    assert np.array_equal(_solve_ode(c).u, _solve_ode(prob).u)
    c.u0[0], c.p[0] = 9.0, 9.0
    assert prob.u0[0] == 1.0 and prob.p[0] == 1.5

    split = js.SplitODEProblem(-np.ones(2), lotka, U0, (0.0, 1.0), P)
    c = js.remake(split)
    c.L[0], c.u0[0], c.p[0] = 5.0, 5.0, 5.0
    assert split.L.tolist() == [-1.0, -1.0] and split.u0[0] == 1.0 and split.p[0] == 1.5

    sde = js.SDEProblem(nl_f, nl_g, U0, (0.0, 1.0), PS)
    c = js.remake(sde)
    assert c._g_raw is sde._g_raw and c.g is sde.g and c.nbrownian == 2
    c.u0[0], c.p[0] = 7.0, 7.0
    assert sde.u0[0] == 1.0 and sde.p[0] == 0.5

    lin = js.LinearProblem(2.0 * np.eye(2), np.ones(2), x0=np.zeros(2))
    c = js.remake(lin)
    c.A[0, 0], c.b[0], c.x0[0] = 3.0, 3.0, 3.0
    assert lin.A[0, 0] == 2.0 and lin.b[0] == 1.0 and lin.x0[0] == 0.0

    ens = js.EnsembleProblem(prob, u0s=np.ones((3, 2)), ps=np.tile(P, (3, 1)))
    c = js.remake(ens)
    assert c.ntrajectories == 3 and c.prob is not prob
    c.u0s[0, 0], c.ps[0, 0], c.prob.u0[0], c.prob.p[0] = 4.0, 4.0, 4.0, 4.0
    assert ens.u0s[0, 0] == 1.0 and ens.ps[0, 0] == 1.5
    assert prob.u0[0] == 1.0 and prob.p[0] == 1.5


@pytest.mark.parametrize("field, bad", [
    ("u0", np.array([np.nan, 1.0])),
    ("u0", np.array([True, False])),
    ("u0", np.zeros(0)),
    ("u0", "ab"),
    ("tspan", (1.0, 1.0)),
    ("tspan", (0.0, np.inf)),
    ("tspan", (0.0, 1.0, 2.0)),
    ("p", np.ones((2, 2))),
    ("p", P + 0j),
    ("p", np.array([1.0, np.nan, 3.0, 1.0])),
    ("f", None),
])
def test_an_ode_remake_is_refused_as_the_constructor_refuses(field, bad):
    args = dict(f=lotka, u0=U0, tspan=(0.0, 1.0), p=P)
    args[field] = bad
    want = _raises(lambda: js.ODEProblem(args["f"], args["u0"], args["tspan"], args["p"]))
    got = _raises(lambda: js.remake(_ode(), **{field: bad}))
    assert got == want and got.split(":")[0].split("[")[0] == field


def test_an_unknown_field_is_refused_naming_it():
    for prob, name in [(_ode(), "mass_matrix"), (_ode(), "kwargs"),
                       (js.LinearProblem(np.eye(2), np.ones(2)), "u0"),
                       (js.EnsembleProblem(_ode(), ps=np.tile(P, (2, 1))), "ntrajectories"),
                       (js.SDEProblem(nl_f, nl_g, U0, (0.0, 1.0), PS), "g_sparsity")]:
        msg = _raises(lambda: js.remake(prob, **{name: 1}))
        assert msg.startswith(f"{name}: {type(prob).__name__} has no such field")
    with pytest.raises(InvalidProblemError, match="^prob: expected a problem"):
        js.remake("not a problem", u0=U0)


def test_a_u0_that_does_not_fit_the_kept_jac_sparsity_names_both():
    F = js.ODEFunction(lotka, jac_sparsity=np.ones((2, 2)))
    prob = js.ODEProblem(F, U0, (0.0, 1.0), P)
    msg = _raises(lambda: js.remake(prob, u0=np.ones(3)))
    assert msg.startswith("f: jac_sparsity of shape (2, 2), but the state has 3 entries")
    assert "remake changed u0; pass f with it" in msg
    # changed together it is fine, and the remade problem keeps the pattern
    F3 = js.ODEFunction(_decay_all, jac_sparsity=np.eye(3))
    new = js.remake(prob, f=F3, u0=np.ones(3), p=np.array([2.0]))
    assert new.f.jac_sparsity.shape == (3, 3)
    assert js.remake(prob, u0=np.array([2.0, 0.5])).f.jac_sparsity is F.jac_sparsity


# ------------------------------------------------------------------------ grid operators
def test_a_grid_ode_keeps_its_operator_and_refuses_a_u0_of_another_layout():
    g = js.Grid((4, 6), bc=js.Dirichlet(0.0))
    kappa = 1.0 + np.arange(24.0).reshape(g.shape) / 24
    D = js.Diffusion(g, kappa)
    rng = np.random.default_rng(0)
    u0, u1 = rng.random(g.shape), rng.random(g.shape)
    prob = js.ODEProblem(D, u0, (0.0, 0.01))
    new = js.remake(prob, u0=u1)
    assert new.f is D and np.array_equal(new.f.kappa, kappa)
    a = js.solve(new, js.Tsit5()).u
    b = js.solve(js.ODEProblem(js.Diffusion(g, kappa), u1, (0.0, 0.01)), js.Tsit5()).u
    assert a.shape[1:] == g.shape and np.array_equal(a, b)
    flat = js.solve(js.remake(prob, u0=u1.ravel()), js.Tsit5()).u
    assert np.array_equal(flat.reshape(a.shape), a)
    for bad in (u1.reshape(6, 4), u1.reshape(2, 3, 4)):       # the size, another layout
        for make in (lambda: js.remake(prob, u0=bad),
                     lambda: js.ODEProblem(D, bad, (0, 1))):
            assert _raises(make).startswith("u0: expected the operator's grid shape (4, 6)")
    msg = _raises(lambda: js.remake(prob, u0=np.ones(23)))
    assert msg.startswith("u0: the operator's grid has 24 cells")
    # kappa remade through kappa_of equals a fresh operator's solve
    from jitsolve.problems import kappa_of
    k, with_kappa = kappa_of(prob)
    assert np.array_equal(k, kappa)
    c = js.solve(with_kappa(2.0 * kappa), js.Tsit5()).u
    d = js.solve(js.ODEProblem(js.Diffusion(g, 2.0 * kappa), u0, (0.0, 0.01)), js.Tsit5()).u
    assert np.array_equal(c, d) and np.array_equal(prob.f.kappa, kappa)


def test_a_split_problem_remakes_as_a_fresh_one_and_checks_its_grid_shape():
    g = js.Grid((16,), bc=js.Periodic())
    L = 0.01 * js.Laplacian(g)
    x = np.linspace(0.0, 1.0, 16, endpoint=False)
    prob = js.SplitODEProblem(L, _decay_all, np.sin(2 * np.pi * x), (0.0, 0.5),
                              np.array([1.0]))
    u1, p1 = np.cos(2 * np.pi * x), np.array([0.5])
    new = js.remake(prob, u0=u1, p=p1)
    assert new.L is L
    a = js.solve(new, js.ETDRK4(), dt=0.05).u
    fresh = js.SplitODEProblem(L, _decay_all, u1, (0.0, 0.5), p1)
    b = js.solve(fresh, js.ETDRK4(), dt=0.05).u
    assert np.array_equal(a, b)
    assert prob.p.tolist() == [1.0]
    msg = _raises(lambda: js.remake(prob, u0=np.ones(15)))
    assert msg.startswith("L: operator on 16 cells, u0 has 15 entries")
    g2 = js.Grid((4, 4))
    prob2 = js.SplitODEProblem(js.Laplacian(g2), _decay_all, np.ones((4, 4)), (0, 1), [1.0])
    msg = _raises(lambda: js.remake(prob2, u0=np.ones((2, 8))))
    assert msg.startswith("u0: expected the operator's grid shape (4, 4)")
    # a dense linear part of the wrong size names L, and what remake changed
    dense = js.SplitODEProblem(-np.ones(2), lotka, U0, (0.0, 1.0), P)
    msg = _raises(lambda: js.remake(dense, u0=np.ones(3)))
    assert msg.startswith("L: a diagonal needs 3 entries, got 2")
    assert "remake changed u0; pass L with it" in msg
    with pytest.raises(InvalidProblemError, match="^L: complex linear parts"):
        js.remake(dense, L=np.ones(2) * 1j)


# ------------------------------------------------------------------------ SDEProblem
def test_a_remade_sde_solves_as_a_fresh_one_on_the_same_seed():
    sde = js.SDEProblem(gbm_f, gbm_g, np.array([1.0]), (0.0, 1.0), p=np.array([0.5, 0.2]))
    new = js.remake(sde, u0=np.array([2.0]), p=np.array([0.3, 0.4]), tspan=(0.0, 0.5))
    fresh = js.SDEProblem(gbm_f, gbm_g, np.array([2.0]), (0.0, 0.5), p=np.array([0.3, 0.4]))
    assert new._g_raw is gbm_g          # the user's g, not the dispatcher compiled from it
    a = js.solve(new, js.EM(), dt=1 / 64, seed=3)
    b = js.solve(fresh, js.EM(), dt=1 / 64, seed=3)
    assert np.array_equal(a.u, b.u) and a.u[-1, 0] != 2.0
    c = js.solve(js.remake(sde), js.EM(), dt=1 / 64, seed=3)
    assert np.array_equal(c.u, js.solve(sde, js.EM(), dt=1 / 64, seed=3).u)
    strat = js.remake(sde, interpretation="stratonovich")
    assert strat.interpretation == "stratonovich" and sde.interpretation == "ito"


def test_an_sde_remake_keeps_its_noise_consistent_with_u0():
    p = np.array([1.0, 0.3])
    diag = js.SDEProblem(_decay_all, _diag_g, np.ones(2), (0.0, 1.0), p)
    big = js.remake(diag, u0=np.ones(3))
    assert big.nbrownian == 3 and diag.nbrownian == 2
    a = js.solve(big, js.EM(), dt=1 / 32, seed=5).u
    b = js.solve(js.SDEProblem(_decay_all, _diag_g, np.ones(3), (0.0, 1.0), p), js.EM(),
                 dt=1 / 32, seed=5).u
    assert a.shape == (33, 3) and np.array_equal(a, b)
    scalar = js.SDEProblem(_decay_all, _diag_g, np.ones(2), (0.0, 1.0), p, noise="scalar")
    assert js.remake(scalar, u0=np.ones(4)).nbrownian == 1
    gen = js.SDEProblem(_decay_all, _general_g, np.ones(2), (0.0, 1.0), p, noise="general",
                        nbrownian=3)
    g3 = js.remake(gen, u0=np.ones(4))
    assert g3.nbrownian == 3 and g3.noise == "general"
    a = js.solve(g3, js.EM(), dt=1 / 32, seed=2).u
    b = js.solve(js.SDEProblem(_decay_all, _general_g, np.ones(4), (0.0, 1.0), p,
                               noise="general", nbrownian=3), js.EM(), dt=1 / 32, seed=2).u
    assert np.array_equal(a, b)
    assert js.remake(gen, noise="diagonal", g=_diag_g).nbrownian == 2
    # to general noise: nbrownian must come with it
    msg = _raises(lambda: js.remake(diag, noise="general", g=_general_g))
    assert msg.startswith("nbrownian: required for noise='general'")
    assert "remake changed g, noise; pass nbrownian with them" in msg
    assert js.remake(diag, noise="general", g=_general_g, nbrownian=2).nbrownian == 2
    with pytest.raises(InvalidProblemError, match="^nbrownian: diagonal noise has 2"):
        js.remake(diag, nbrownian=3)
    with pytest.raises(InvalidProblemError, match="^u0: SDEs are real"):
        js.remake(diag, u0=np.ones(2) + 1j)
    with pytest.raises(InvalidProblemError, match="^noise: expected one of"):
        js.remake(diag, noise="pink")
    with pytest.raises(InvalidProblemError, match="^interpretation: expected one of"):
        js.remake(diag, interpretation="backward")


def test_an_sde_remake_keeps_g_s_derivatives_and_checks_them_against_u0():
    G = js.ODEFunction(nl_g, jac_sparsity=np.ones((2, 2)))
    sde = js.SDEProblem(nl_f, G, U0, (0.0, 1.0), PS)
    new = js.remake(sde, p=2 * PS)
    assert new.g_sparsity.shape == (2, 2) and new._g_raw is nl_g
    msg = _raises(lambda: js.remake(sde, u0=np.ones(3)))
    assert msg.startswith("g: jac_sparsity of shape (2, 2), but the state has 3 entries")
    assert "remake changed u0; pass g with it" in msg

    def g_vjp(out_u, out_p, lam, u, p, t):
        pass
    Gv = js.ODEFunction(nl_g, vjp=g_vjp)
    sv = js.SDEProblem(nl_f, Gv, U0, (0.0, 1.0), PS)
    assert js.remake(sv, tspan=(0.0, 2.0)).g_function is Gv
    msg = _raises(lambda: js.remake(sv, noise="general", nbrownian=2))
    assert msg.startswith("g: its own vjp is for diagonal or scalar noise")
    sc = js.SDEProblem(nl_f, sc_g, U0, (0.0, 1.0), PS, noise="scalar",
                       ggprime=lambda out, u, p, t: None)
    msg = _raises(lambda: js.remake(sc, noise="general", g=_general_g, nbrownian=1))
    assert msg.startswith("ggprime: the Milstein term is for diagonal or scalar noise")
    to_general = js.remake(sc, noise="general", g=_general_g, nbrownian=1, ggprime=None)
    assert to_general.ggprime is None and to_general.nbrownian == 1


# ------------------------------------------------------------------------ LinearProblem
def test_a_remade_linear_problem_solves_as_a_fresh_one():
    rng = np.random.default_rng(1)
    A = rng.random((4, 4)) + 4 * np.eye(4)
    prob = js.LinearProblem(A, np.ones(4))
    b2 = rng.random(4)
    new = js.remake(prob, b=b2)
    x = js.solve(new, js.Direct()).u
    assert np.array_equal(x, js.solve(js.LinearProblem(A, b2), js.Direct()).u)
    np.testing.assert_allclose(A @ x, b2, rtol=1e-12)
    assert prob.b.tolist() == [1.0] * 4
    msg = _raises(lambda: js.remake(prob, b=np.ones(3)))
    assert msg.startswith("A: expected shape (3, 3) to match b, got (4, 4)")
    assert "remake changed b; pass A with it" in msg
    with pytest.raises(InvalidProblemError, match="^b: contains NaN"):
        js.remake(prob, b=np.array([1.0, np.nan, 1.0, 1.0]))
    with pytest.raises(InvalidProblemError, match=r"^x0: expected the shape of b \(4,\)"):
        js.remake(prob, x0=np.zeros(3))
    withx0 = js.LinearProblem(A, np.ones(4), x0=np.zeros(4))
    msg = _raises(lambda: js.remake(withx0, A=np.eye(3), b=np.ones(3)))
    assert msg.startswith("x0: expected the shape of b (3,)") and "pass x0 with them" in msg
    assert js.remake(withx0, A=np.eye(3), b=np.ones(3), x0=None).x0 is None
    g = js.Grid((8, 8))
    gl = js.LinearProblem(-js.Laplacian(g), np.ones(g.shape))
    assert js.remake(gl, b=np.zeros(64)).A is gl.A
    with pytest.raises(InvalidProblemError, match=r"^b: expected the grid's shape \(8, 8"):
        js.remake(gl, b=np.ones((4, 16)))


# ------------------------------------------------------------------------ EnsembleProblem
def test_a_remade_ensemble_solves_as_a_fresh_one_and_checks_its_rows():
    prob = _ode()
    ens = js.EnsembleProblem(prob, ps=np.tile(P, (3, 1)))
    ps2 = np.tile(P, (2, 1)) * np.array([[1.0], [1.2]])
    new = js.remake(ens, ps=ps2)
    assert new.ntrajectories == 2 and ens.ntrajectories == 3
    kw = dict(rtol=1e-8, atol=1e-10, saveat=[0.5, 1.0])
    a = js.solve(new, js.Tsit5(), **kw).u
    b = js.solve(js.EnsembleProblem(prob, ps=ps2), js.Tsit5(), **kw).u
    assert a.shape == (2, 2, 2) and np.array_equal(a, b)
    # a new base problem whose p does not fit the kept rows
    short = js.remake(prob, p=P[:3], f=_decay_all)
    msg = _raises(lambda: js.remake(ens, prob=short))
    assert msg.startswith("ps: expected shape (N, 3), got (3, 4)")
    assert "remake changed prob; pass ps with it" in msg
    msg = _raises(lambda: js.remake(ens, u0s=np.ones((3, 3))))
    assert msg.startswith("u0s: expected shape (N, 2), got (3, 3)")
    msg = _raises(lambda: js.remake(ens, u0s=np.ones((2, 2))))
    assert msg.startswith("ps: has 3 rows but u0s has 2")
    # prob_func is kept; rows and prob_func do not mix
    pf = js.EnsembleProblem(prob, prob_func=lambda pr, i: js.remake(pr, p=P * (1 + i)))
    c = js.remake(pf, prob=js.remake(prob, tspan=(0.0, 0.5)))
    assert c.prob_func is pf.prob_func and c.prob.tspan == (0.0, 0.5)
    with pytest.raises(InvalidProblemError, match="^prob_func: give prob_func or u0s/ps"):
        js.remake(pf, ps=ps2)
    assert js.remake(pf, prob_func=None, ps=ps2).ntrajectories == 2
