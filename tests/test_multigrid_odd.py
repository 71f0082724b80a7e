"""Geometric multigrid on grids with odd cell counts (issue 3).

An odd axis that is not periodic coarsens to ``(n - 1) / 2`` cells; the extra last fine
cell is interpolated from the last coarse cell and its ghost, and on a Dirichlet side
every level's ghost sign puts the boundary where the finest grid has it
(``level_ghost_signs``).  Checked here: the ghost signs, the preconditioned spectrum
against the even grid's (the coarse problems keep the domain: no over-correction),
iteration counts that do not grow along 2^k + 1 grids, the cycle's symmetry and
definiteness for every option, and the coefficient restriction.  (The transfer kernels
on odd axes are in tests/test_linear_multigrid.py.)"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitsolve as js
from jitsolve.solvers.linear.precond.multigrid import (GeometricMultigrid, assemble,
                                                        level_ghost_signs,
                                                        restrict_coefficient)
from mg_checks import assert_symmetric_positive


def test_level_ghost_signs_put_the_boundary_where_the_fine_grid_has_it():
    sgn = np.array([[1.0, 1.0], [-1.0, -1.0], [-1.0, 1.0]])   # axis 2: Neumann far side
    per = np.zeros(3, np.int64)
    n0 = (1, 1025, 1025)
    # 1025 -> 512 (H 2) -> 256 (H 4) -> 128 (H 8): d = 1025 - (m - 1/2) H = 2, 3, 5
    for m, H, want in ((512, 2, 0.0), (256, 4, 1 - 4 / 3), (128, 8, 1 - 8 / 5)):
        s = level_ghost_signs(sgn, per, n0, (1, m, m), (1, H, H))
        assert s[1, 1] == pytest.approx(want, abs=1e-15)
        # the near sides, the Neumann side and the padded axis are untouched
        assert s[1, 0] == -1.0 and s[2, 1] == 1.0 and s[2, 0] == -1.0
        assert np.array_equal(s[0], sgn[0])
    # an even grid keeps -1 on every level
    s = level_ghost_signs(sgn, per, (1, 1024, 1024), (1, 128, 128), (1, 8, 8))
    assert np.array_equal(s, sgn)
    # periodic axes keep theirs
    s = level_ghost_signs(sgn, np.array([0, 1, 0]), n0, (1, 512, 512), (1, 2, 2))
    assert s[1, 1] == -1.0


def _spectrum(shape, bcs, coarse_size):
    """Eigenvalues of ``B A`` for the V(1,1)-cycle ``B`` of ``-L`` (dense; small grids;
    the textbook cycle, without the finest level's over-correction)."""
    c = np.array([0.0 if n == 1 else float(n * n) for n in shape])
    per = np.array([1 if b == "P" else 0 for b in bcs], dtype=np.int64)
    sgn = np.array([[-1.0 if b == "D" else 1.0] * 2 for b in bcs])
    mg = GeometricMultigrid(shape, c, per, sgn, -1.0, coarse_size=coarse_size,
                            overcorrection=1.0)
    A = assemble(shape, c, per, sgn, -1.0).toarray()
    N = A.shape[0]
    B = np.column_stack([mg(e, np.empty(N)) for e in np.eye(N)])
    return np.sort(np.linalg.eigvals(B @ A).real), mg.nlevels


@pytest.mark.parametrize("odd,even,bcs", [((1, 33, 32), (1, 32, 32), "xDD"),
                                          ((1, 33, 33), (1, 32, 32), "xDD"),
                                          ((1, 1, 65), (1, 1, 64), "xxD"),
                                          ((9, 9, 8), (8, 8, 8), "DDD")])
def test_odd_dirichlet_axes_keep_the_preconditioned_spectrum(odd, even, bcs):
    """With the ghost signs the cycle of 33 x 32 cells has the spectrum range of 32 x 32's
    (condition number within 1 %, largest eigenvalue 1: the coarse problems see the
    domain's true length; padding the grid instead over-corrected, eigenvalues up to
    1.36, and CG needed 27 iterations at 1025^2 against 9)."""
    ev_odd, nl_odd = _spectrum(odd, bcs, 8)
    ev_even, nl_even = _spectrum(even, bcs, 8)
    assert nl_odd == nl_even >= 3
    assert ev_odd[0] > 0 and ev_odd[-1] <= 1.0 + 1e-9
    assert ev_odd[-1] / ev_odd[0] == pytest.approx(ev_even[-1] / ev_even[0], rel=0.01)


@pytest.mark.parametrize("bc,most", [(js.Dirichlet(0.0), 9),
                                     ([(js.Neumann(), js.Dirichlet(1.0))] * 2, 9),
                                     ([(js.Dirichlet(0.0), js.Neumann())] * 2, 12)])
def test_iterations_do_not_grow_along_odd_grids(bc, most):
    """2^k + 1 cells per axis (every level odd): CG + Multigrid to rtol 1e-8 takes the
    iterations of 2^k cells (9 with Dirichlet far sides; a Neumann far side keeps its
    face where the level ends, 10-12)."""
    iters = []
    for n in (65, 129, 257, 513):
        g = js.Grid((n, n), bc=bc)
        b = np.random.default_rng(n).standard_normal(g.shape)
        for A in (-js.Laplacian(g), -js.Diffusion(g, np.exp(
                np.random.default_rng(1).uniform(-1, 1, g.shape)))):
            sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid()), rtol=1e-8)
            assert sol.retcode == js.ReturnCode.Success
            assert np.linalg.norm(b - A.apply(sol.u)) <= 1.01e-8 * np.linalg.norm(b)
            iters.append(sol.iters)
    lap, dif = iters[0::2], iters[1::2]
    assert max(lap) <= most and max(dif) <= most + 2, iters
    assert lap[-1] <= lap[0] + 1, iters


@pytest.mark.parametrize("n,most", [(33, 11), (65, 11)])
def test_odd_3d_grids_keep_the_iteration_count(n, most):
    g = js.Grid((n, n - 1, n))
    A = -js.Laplacian(g)
    b = np.random.default_rng(0).standard_normal(g.shape)
    sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid()), rtol=1e-8)
    assert sol.retcode == js.ReturnCode.Success and sol.iters <= most, sol.iters


@pytest.mark.parametrize("kw", [dict(), dict(coarse="galerkin"), dict(smoother="jacobi"),
                                dict(smoother="srbgs"), dict(cycle="W")])
@pytest.mark.parametrize("case", ["lap2d", "diff2d", "lap3d"])
def test_cycle_on_odd_grids_is_symmetric_positive_definite(case, kw):
    rng = np.random.default_rng(3)
    if case == "lap2d":
        g = js.Grid((37, 21), bc=[(js.Neumann(), js.Dirichlet(2.0)), js.Dirichlet()])
        A = -0.8 * js.Laplacian(g)
    elif case == "diff2d":
        g = js.Grid((23, 64), bc=[js.Dirichlet(), js.Periodic()])
        A = -js.Diffusion(g, np.exp(rng.uniform(-1, 1, g.shape)))
    else:
        g = js.Grid((11, 13, 9), bc=[js.Neumann(), js.Dirichlet(), (js.Dirichlet(), js.Neumann())])
        A = -js.Laplacian(g)
    M = js.Multigrid(coarse_size=8, **kw).setup(A)
    assert M.nlevels >= 3 and any(n % 2 for n in g.shape)
    x, y = rng.standard_normal(g.size), rng.standard_normal(g.size)
    assert_symmetric_positive(M, x, y)


def test_galerkin_levels_on_odd_grids():
    """``R A P`` with the odd axes' interpolation: the iterations of the even grid."""
    its = []
    for shape in ((129, 127), (128, 128)):
        g = js.Grid(shape)
        A = -js.Diffusion(g, np.exp(np.random.default_rng(2).uniform(-1, 1, shape)))
        b = np.random.default_rng(0).standard_normal(shape)
        sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid(coarse="galerkin")), rtol=1e-8)
        assert sol.retcode == js.ReturnCode.Success
        its.append(sol.iters)
    assert its[0] <= its[1] + 1, its


def test_coefficient_restriction_leaves_the_extra_cell_out():
    k = np.exp(np.random.default_rng(0).uniform(-1, 1, (1, 7, 5)))
    act = np.array([0, 1, 1])
    for mode in ("geometric", "arithmetic", "harmonic"):
        kc = restrict_coefficient(k, act, mode)
        assert kc.shape == (1, 3, 2)
        np.testing.assert_allclose(kc, restrict_coefficient(np.ascontiguousarray(k[:, :6, :4]),
                                                            act, mode), rtol=0)
    kc = restrict_coefficient(k, act, "arithmetic")
    assert kc[0, 2, 1] == pytest.approx(k[0, 4:6, 2:4].mean())


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.complex128, 1e-8)])
def test_odd_grids_in_other_precisions(dtype, rtol):
    g = js.Grid((65, 63))
    A = -js.Laplacian(g)
    rng = np.random.default_rng(4)
    b = rng.standard_normal(g.shape)
    if dtype == np.complex128:
        b = b + 1j * rng.standard_normal(g.shape)
    b = b.astype(dtype)
    sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid()), rtol=rtol)
    assert sol.retcode == js.ReturnCode.Success and sol.u.dtype == dtype
    assert sol.iters <= (6 if dtype == np.float32 else 10), sol.iters
    assert np.linalg.norm(b - A.apply(sol.u)) <= 1.5 * rtol * np.linalg.norm(b)


_KINDS = {"D": js.Dirichlet(0.0), "N": js.Neumann()}


@settings(max_examples=60, deadline=None)
@given(dims=st.lists(st.integers(3, 40), min_size=1, max_size=3),
       sides=st.lists(st.sampled_from(["DD", "DN", "ND", "NN", "P"]), min_size=3, max_size=3),
       diffusion=st.booleans(), option=st.integers(0, 4), seed=st.integers(0, 2**31 - 1))
def test_any_grid_gives_a_symmetric_positive_cycle_that_converges(dims, sides, diffusion,
                                                                  option, seed):
    """Random shapes (odd and even, 1-D to 3-D), cell aspects, boundary mixes, Laplacian
    or Diffusion and every option: the cycle is symmetric and positive definite and CG +
    Multigrid reaches rtol 1e-8 in at most 25 iterations (periodic axes even: an odd
    one ends the coarsening, tests/test_multigrid_coarsest.py)."""
    rng = np.random.default_rng(seed)
    nd = len(dims)
    shape = tuple(d + 1 if s == "P" and d % 2 else d for d, s in zip(dims, sides))
    bc = [js.Periodic() if s == "P" else (_KINDS[s[0]], _KINDS[s[1]]) for s in sides[:nd]]
    g = js.Grid(shape, extent=[(0.0, float(rng.uniform(0.5, 2.0))) for _ in shape], bc=bc)
    A = (-js.Diffusion(g, np.exp(rng.uniform(-1, 1, shape))) if diffusion
         else -js.Laplacian(g))
    kw = [dict(), dict(smoother="srbgs"), dict(cycle="W"), dict(coarse="galerkin"),
          dict(smoother="jacobi")][option]
    M = js.Multigrid(**kw).setup(A)
    x, y = rng.standard_normal(g.size), rng.standard_normal(g.size)
    assert_symmetric_positive(M, x, y, rel=1e-10)
    b = rng.standard_normal(shape)
    if "D" not in "".join(sides[:nd]):
        b -= b.mean()                       # a consistent right-hand side
    sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid(**kw)), rtol=1e-8, maxiter=100)
    assert sol.retcode == js.ReturnCode.Success and sol.iters <= 25, sol.iters
