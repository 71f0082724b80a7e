"""The large-state loop's stage combinations with a Laplacian or Diffusion stencil folded
in (``kernels/cpu/erk_large_stencil.py``): the kernel against the two passes it replaces
and a NumPy reference, and split problems through it against the general loop, bit for
bit, on every boundary kind, dimension, scaling, operator and method family."""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit, prange

import jitsolve as js
from jitsolve.kernels.cpu.erk_large import stage_combine
from jitsolve.kernels.cpu.erk_large_stencil import combine_stencil
from jitsolve.kernels.cpu.rhs_grid import _grid_apply, grid_cfuncs, is_packed_stencil
from jitsolve.rhs import pack_grid_operator


def _grid(dims, kind):
    shape = {1: (37,), 2: (9, 13), 3: (5, 6, 7)}[dims]
    bc = {"dirichlet0": js.Dirichlet(0.0),
          "dirichlet": js.Dirichlet(1.5),
          "mixed": [(js.Dirichlet(1.0), js.Neumann(0.5))] + [js.Periodic()] * (dims - 1),
          "neumann": js.Neumann(0.25),
          "periodic": js.Periodic()}[kind]
    return js.Grid(shape, extent=[(0.0, 1.0 + 0.3 * a) for a in range(dims)], bc=bc)


def _operator(g, which, seed=0):
    if which == "laplacian":
        return js.Laplacian(g)
    kappa = np.random.default_rng(seed).uniform(0.2, 3.0, g.shape)
    return js.Diffusion(g, kappa)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kind", ["dirichlet0", "dirichlet", "mixed", "neumann", "periodic"])
@pytest.mark.parametrize("scale", [1.0, -0.7])
@pytest.mark.parametrize("nst", [1, 2, 4])
@pytest.mark.parametrize("store", [False, True])
@pytest.mark.parametrize("which", ["laplacian", "diffusion"])
def test_combine_stencil_is_the_two_passes_bit_for_bit(dims, kind, scale, nst, store, which):
    g = _grid(dims, kind)
    A = _operator(g, which, dims)
    op = A if scale == 1.0 else scale * A
    plin = pack_grid_operator(op)
    rng = np.random.default_rng(dims * 100 + nst)
    n = g.size
    u, Y = rng.standard_normal(n), rng.standard_normal(n)
    ks = rng.standard_normal((nst, n))
    coef = rng.uniform(-1.0, 1.0, nst)
    h = 0.37
    # the unfused passes: tmp = lin(Y), then the combination completing ks[nst-1]
    tmp = np.empty(n)
    _grid_apply(tmp, Y, plin, False)
    ref, ks_ref = np.empty(n), ks.copy()
    bad_ref = stage_combine(ref, u, ks_ref, coef, nst, h, nst - 1, tmp, True, store)
    out, ks_out = np.empty(n), ks.copy()
    bad = combine_stencil(out, u, ks_out, coef, nst, h, Y, plin, np.empty(n), store)
    assert np.array_equal(out, ref) and bad == bad_ref == 0
    # with store the completed slope is written back (a later stage reads it)
    assert np.array_equal(ks_out, ks_ref) and np.array_equal(ks_out[:-1], ks[:-1])
    assert np.array_equal(ks_out[-1], ks[-1]) != store
    # and the formula, through the operator's own apply and boundary term
    lin = scale * (A.apply(Y.reshape(g.shape)) + A.boundary_term()).ravel()
    k = ks.copy()
    k[-1] += lin
    np.testing.assert_allclose(out, u + h * (coef @ k), rtol=1e-13, atol=1e-13 * np.abs(out).max())


def test_combine_stencil_counts_non_finite_entries():
    g = _grid(2, "dirichlet")
    plin = pack_grid_operator(js.Laplacian(g))
    n = g.size
    u = np.ones(n)
    u[[3, 50]] = [np.inf, np.nan]
    ks = np.zeros((1, n))
    out = np.empty(n)
    # u[3] = inf spreads to its stencil neighbours through Y = u (nan from inf - inf)
    bad = combine_stencil(out, u, ks, np.ones(1), 1, 0.1, u, plin, np.empty(n), False)
    assert bad == np.count_nonzero(~np.isfinite(out)) and bad >= 2


@settings(max_examples=25, deadline=None)
@given(n0=st.integers(1, 6), n1=st.integers(1, 40), n2=st.integers(2, 70),
       per=st.booleans(), nst=st.integers(1, 5), store=st.booleans(),
       which=st.sampled_from(["laplacian", "diffusion"]))
def test_combine_stencil_any_shape(n0, n1, n2, per, nst, store, which):
    """Chunks of rows over any grid shape (one row, fewer rows than chunks, uneven
    chunks) give the unfused passes' bits."""
    shape = tuple(x for x in (n0, n1, n2) if x > 1) or (n2,)
    g = js.Grid(shape, bc=js.Periodic() if per else js.Dirichlet(0.5))
    plin = pack_grid_operator(_operator(g, which, n1))
    n = g.size
    rng = np.random.default_rng(n)
    u, Y = rng.standard_normal(n), rng.standard_normal(n)
    ks = rng.standard_normal((nst, n))
    coef = rng.uniform(-1, 1, nst)
    tmp = np.empty(n)
    _grid_apply(tmp, Y, plin, False)
    ref, out, ks2 = np.empty(n), np.empty(n), ks.copy()
    stage_combine(ref, u, ks, coef, nst, 0.01, nst - 1, tmp, True, store)
    combine_stencil(out, u, ks2, coef, nst, 0.01, Y, plin, np.empty(n), store)
    assert np.array_equal(out, ref) and np.array_equal(ks2, ks)


def test_only_the_symmetric_stencils_apply_cfuncs_are_recognised():
    g = js.Grid((8, 8), bc=js.Dirichlet(0.0))
    lap = grid_cfuncs(pack_grid_operator(js.Laplacian(g)))
    dif = grid_cfuncs(pack_grid_operator(js.Diffusion(g, np.ones(g.shape))))
    adv = grid_cfuncs(pack_grid_operator(js.Advection(g, (np.ones(g.shape), np.ones(g.shape)))))
    assert is_packed_stencil(lap[0]) and is_packed_stencil(dif[0])
    assert not any(is_packed_stencil(c) for c in (lap[1], dif[1], adv[0], adv[1], None))


@njit(parallel=True)
def _reaction(du, u, p, t):
    for i in prange(u.size):
        x = u[i]
        du[i] = p[0] * (x - x * x * x) + p[1]


def _split(shape, bc, scale, which):
    g = js.Grid(shape, bc=bc)
    A = _operator(g, which, len(shape))
    L = A if scale == 1.0 else scale * A
    rng = np.random.default_rng(len(shape))
    u0 = 0.3 * rng.standard_normal(g.shape)
    dt = 0.2 * min(g.spacing) ** 2 / abs(scale) / (3.0 if which == "diffusion" else 1.0)
    F = js.ODEFunction(_reaction, jac_sparsity=sp.identity(g.size))
    return js.SplitODEProblem(L, F, u0, (0.0, 3 * dt), np.array([0.05 / dt, 0.3])), dt


@pytest.mark.parametrize("case", [
    ((192, 192), js.Dirichlet(0.5), 1.0, "laplacian"),
    ((34, 34, 34), js.Neumann(0.2), 0.5, "laplacian"),
    ((40, 1000), js.Periodic(), 1.0, "laplacian"),
    ((36864,), [(js.Dirichlet(1.0), js.Neumann(-0.5))], 2.0, "laplacian"),
    ((192, 192), [js.Dirichlet(0.5), js.Periodic()], 1.0, "diffusion"),
    ((34, 34, 34), js.Neumann(0.2), 0.5, "diffusion"),
], ids=["2d-dirichlet", "3d-neumann-scaled", "2d-periodic", "1d-mixed-scaled",
        "2d-diffusion", "3d-diffusion-scaled"])
@pytest.mark.parametrize("alg", [js.Euler(), js.RK4(), js.Tsit5(), js.Vern7()],
                         ids=["Euler", "RK4", "Tsit5", "Vern7"])
def test_split_problems_through_the_fused_pass_match_the_general_loop(case, alg, monkeypatch):
    """Above PARALLEL_N the threaded loop (the stencil folded into the stage
    combinations) gives the general loop's states bit for bit; the checkpointed gradient
    (its recomputing steps fused too) equals the store-all one bit for bit; with a
    Diffusion operator also the gradient wrt kappa."""
    import jitsolve.adjoint.discrete as D
    import jitsolve.kernels.cpu.erk as K
    from jitsolve.rhs import problem_rhs
    shape, bc, scale, which = case
    prob, dt = _split(shape, bc, scale, which)
    wrt = ("u0", "p", "kappa") if which == "diffusion" and scale == 1.0 else ("u0", "p")
    assert prob.u0.size >= K.PARALLEL_N and is_packed_stencil(problem_rhs(prob).lin)
    kw = dict(dt=dt, adaptive=False) if alg.adaptive else dict(dt=dt)
    sol = js.solve(prob, alg, **kw)
    loss = js.L2Loss([3 * dt], np.zeros((1,) + shape))
    _, g = js.gradient(prob, alg, loss, wrt=wrt, **kw)
    _, gc = js.gradient(prob, alg, loss, wrt=wrt, sensealg=js.DiscreteAdjoint(checkpoints=1),
                        **kw)
    for key in wrt:
        assert np.array_equal(g[key], gc[key]), key
    monkeypatch.setattr(K, "PARALLEL_N", 10**12)
    monkeypatch.setattr(D, "PARALLEL_N", 10**12)
    ref = js.solve(prob, alg, **kw)
    assert np.array_equal(sol.u, ref.u) and sol.retcode == ref.retcode == js.ReturnCode.Success
    _, g2 = js.gradient(prob, alg, loss, wrt=wrt, **kw)
    np.testing.assert_allclose(g["u0"], g2["u0"], rtol=0, atol=1e-12 * np.abs(g2["u0"]).max())
    np.testing.assert_allclose(g["p"], g2["p"], rtol=1e-11)
    if "kappa" in wrt:
        np.testing.assert_allclose(g["kappa"], g2["kappa"], rtol=0,
                                   atol=1e-12 * np.abs(g2["kappa"]).max())
