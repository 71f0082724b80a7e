"""The coarsest level of geometric multigrid (issue 3): a dense LU (or pseudo-inverse)
up to ``DENSE_COARSEST`` cells, a sparse LU above, for coarsest levels left large by an
odd periodic axis or by ``coarse_size`` (odd axes that are not periodic coarsen on:
tests/test_multigrid_odd.py).

The sparse path is checked against the dense one (the same cycle to rounding, for every
boundary kind, Laplacian and Diffusion, rediscretised and Galerkin levels, complex
right-hand sides), its singular form against the pseudo-inverse, the cycle's symmetry,
and CG iteration counts on such grids."""
import numpy as np
import pytest

import jitsolve as js
import jitsolve.solvers.linear.precond.multigrid as MG
from mg_checks import assert_symmetric_positive


def _mg(A, monkeypatch=None, dtype=np.float64, **kw):
    """``A``'s multigrid hierarchy; with ``monkeypatch`` the coarsest level is dense."""
    if monkeypatch is not None:
        monkeypatch.setattr(MG, "DENSE_COARSEST", 1 << 30)
    M = js.Multigrid(**kw).setup(A, dtype=dtype)
    if monkeypatch is not None:
        monkeypatch.undo()
    return M


def _cases():
    rng = np.random.default_rng(7)
    kap2 = np.exp(rng.uniform(-1, 1, (40, 36)))
    kap3 = np.exp(rng.uniform(-1, 1, (20, 18, 22)))
    return {
        "lap2d-dirichlet": -js.Laplacian(js.Grid((40, 36))),
        "lap2d-neumann": -js.Laplacian(js.Grid((40, 36), bc=js.Neumann())),
        "diff2d-periodic": -js.Diffusion(js.Grid((40, 36), bc=js.Periodic()), kap2),
        "diff2d-mixed": -2.5 * js.Diffusion(
            js.Grid((40, 36), bc=[js.Periodic(), (js.Neumann(), js.Dirichlet(1.0))]), kap2),
        "diff3d-dirichlet": -js.Diffusion(js.Grid((20, 18, 22)), kap3),
        "lap3d-neumann": -js.Laplacian(js.Grid((20, 18, 22), bc=js.Neumann())),
    }


@pytest.mark.parametrize("coarse", ["rediscretised", "galerkin"])
@pytest.mark.parametrize("case", list(_cases()))
def test_sparse_coarsest_solve_is_the_dense_one(case, coarse, monkeypatch):
    A = _cases()[case]
    kw = dict(coarse=coarse, coarse_size=1000)
    rng = np.random.default_rng(1)
    for dtype in (np.float64, np.complex128):
        sparse, dense = _mg(A, dtype=dtype, **kw), _mg(A, monkeypatch, dtype=dtype, **kw)
        n = sparse.coarse_n
        assert n == dense.coarse_n and MG.DENSE_COARSEST < n <= 1000
        assert sparse._splu is not None and dense._splu is None
        b = rng.standard_normal(A.grid.size).astype(dtype)
        if dtype == np.complex128:
            b += 1j * rng.standard_normal(A.grid.size)
        xs, xd = sparse(b, np.empty_like(b)), dense(b, np.empty_like(b))
        assert np.abs(xs - xd).max() <= 1e-11 * np.abs(xd).max()
        if dtype == np.complex128:          # the two parts solved apart, both nonzero
            assert np.abs(xs.imag).max() > 0.1 * np.abs(xs.real).max()


@pytest.mark.parametrize("bc", [js.Neumann(), js.Periodic()])
def test_singular_sparse_coarse_solve_is_the_pseudo_inverse(bc):
    g = js.Grid((24, 20), bc=bc)
    A = -js.Diffusion(g, np.exp(np.random.default_rng(2).uniform(-1, 1, g.shape)))
    M = _mg(A, coarse_size=1000)            # no halving below 480 cells: the grid itself
    assert M._splu is not None and M._singular and M.coarse_n == g.size
    b = np.random.default_rng(3).standard_normal(g.size)   # not in the range of A
    x = M._coarse(b.copy())
    ref = np.linalg.pinv(A.to_csr().toarray()) @ b
    assert np.abs(x - ref).max() <= 1e-10 * np.abs(ref).max()


@pytest.mark.parametrize("case", ["lap2d-neumann", "diff2d-mixed", "diff3d-dirichlet"])
def test_cycle_with_a_sparse_coarsest_level_is_symmetric_positive_definite(case):
    A = _cases()[case]
    M = _mg(A, coarse_size=1000)
    assert M._splu is not None
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal(A.grid.size), rng.standard_normal(A.grid.size)
    if case == "lap2d-neumann":             # positive on the complement of the constants
        x -= x.mean()
        y -= y.mean()
    assert_symmetric_positive(M, x, y)


@pytest.mark.parametrize("shape,levels,most", [((600, 600), 8, 9),
                                               ((200, 120), 6, 10),
                                               ((1025, 1025), 8, 9),
                                               ((999, 1001), 8, 10),
                                               ((72, 72, 72), 5, 11),
                                               ((65, 33, 65), 5, 11)])
def test_grids_of_any_size_coarsen_to_a_small_level(shape, levels, most):
    """Grids of m 2^k cells with an odd m used to stop coarsening at the odd level (600^2
    at 75^2, solved by a sparse LU; 1025^2 and 101^3 were refused): an odd axis now goes
    to (n - 1) / 2 and the iterations are those of a power-of-two grid."""
    g = js.Grid(shape, extent=[(0.0, n / 100) for n in shape])   # square cells
    A = -js.Laplacian(g)
    M = js.Multigrid().setup(A)
    assert M.nlevels == levels and M.coarse_n <= 64 and M._splu is None
    b = np.random.default_rng(0).standard_normal(g.shape)
    sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid()), rtol=1e-8)
    assert sol.retcode == js.ReturnCode.Success and sol.iters <= most
    assert np.linalg.norm(b - A.apply(sol.u)) <= 1.01e-8 * np.linalg.norm(b)


def test_an_odd_periodic_grid_is_its_own_coarsest_level():
    """301 x 300 with a periodic odd axis does not halve (no red-black ordering there):
    the hierarchy is one level, solved by the sparse factor: CG converges in one
    iteration (it was refused: a dense factorisation of 90,300^2 entries)."""
    g = js.Grid((301, 300), bc=[js.Periodic(), js.Dirichlet()])
    b = np.random.default_rng(0).standard_normal(g.shape)
    sol = js.solve(js.LinearProblem(-js.Laplacian(g), b), js.CG(js.Multigrid()), rtol=1e-10)
    assert sol.retcode == js.ReturnCode.Success and sol.iters == 1
    assert np.linalg.norm(b + js.Laplacian(g).apply(sol.u)) <= 1e-10 * np.linalg.norm(b)


def test_coarse_size_may_exceed_the_limit(monkeypatch):
    """``coarse_size`` above the dimension's limit is the user's choice: honoured (the
    3-D limit lowered here to keep the factorisation small)."""
    monkeypatch.setitem(MG.MAX_COARSEST, 3, 1000)
    # 1,100 cells; axis 0 odd and periodic: no halving
    g = js.Grid((11, 10, 10), bc=[js.Periodic(), js.Dirichlet(), js.Dirichlet()])
    with pytest.raises(js.errors.InvalidProblemError,
                       match=r"periodic axis 0\b.*at most 1000 cells on a 3-D grid"):
        js.Multigrid().setup(-js.Laplacian(g))
    M = js.Multigrid(coarse_size=2000).setup(-js.Laplacian(g))
    assert M.nlevels == 1 and M.coarse_n == 1100 and M._splu is not None


# ---------------------------------------------------------------- semi-coarsening
@pytest.mark.parametrize("shape,extent,levels", [
    ((1024, 64), None, [(1024, 64), (512, 64), (256, 64), (128, 64), (64, 64), (32, 32),
                        (16, 16), (8, 8)]),
    ((64, 512), None, [(64, 512), (64, 256), (64, 128), (64, 64), (32, 32), (16, 16),
                       (8, 8)]),
    ((64, 64), [(0, 1), (0, 4)], [(64, 64), (32, 64), (16, 64), (8, 32), (4, 16)]),
    ((128, 128, 32), None, [(128, 128, 32), (64, 64, 32), (32, 32, 32), (16, 16, 16),
                            (8, 8, 8), (4, 4, 4)]),
    ((96, 96), [(0, 1), (0, 1.4)], [(96, 96), (48, 48), (24, 24), (12, 12), (6, 6)]),
])
def test_stretched_cells_are_coarsened_along_their_strong_axes(shape, extent, levels):
    """An axis is halved while its coupling 1/h^2 is at least half the strongest: cells
    16 times longer than wide are halved along their short side four times, then on
    every axis; a 1 : 1.4 aspect ratio (couplings within 2) is coarsened fully."""
    g = js.Grid(shape, extent=extent) if extent else js.Grid(shape)
    M = js.Multigrid().setup(-js.Laplacian(g))
    assert [lev.shape[3 - g.ndim:] for lev in M.levels] == levels
    for up, lev in zip(M.levels, M.levels[1:]):
        halved = tuple(int(a != b) for a, b in zip(up.shape, lev.shape))
        assert tuple(up.act) == halved
        np.testing.assert_allclose(lev.c, up.c / np.where(up.act == 1, 4.0, 1.0))


@pytest.mark.parametrize("kw", [dict(), dict(coarse="galerkin"), dict(smoother="jacobi"),
                                dict(smoother="srbgs"), dict(cycle="W")])
@pytest.mark.parametrize("case", ["lap2d", "diff2d", "lap3d"])
def test_semi_coarsened_cycle_is_symmetric_positive_definite(case, kw):
    rng = np.random.default_rng(11)
    if case == "lap2d":
        g = js.Grid((64, 16), bc=[js.Periodic(), (js.Neumann(), js.Dirichlet(2.0))])
        A = -0.8 * js.Laplacian(g)
    elif case == "diff2d":
        g = js.Grid((16, 96), bc=[js.Dirichlet(), js.Neumann()])
        A = -js.Diffusion(g, np.exp(rng.uniform(-1, 1, g.shape)))
    else:
        g = js.Grid((8, 32, 32), bc=[js.Neumann(), js.Periodic(), js.Dirichlet()])
        A = -js.Laplacian(g)
    M = js.Multigrid(**kw).setup(A)
    assert any(0 < lev.act.sum() < g.ndim for lev in M.levels[:-1])   # semi-coarsened
    x, y = rng.standard_normal(g.size), rng.standard_normal(g.size)
    assert_symmetric_positive(M, x, y)


@pytest.mark.parametrize("shape,extent,most", [((1024, 64), None, 10),
                                               ((64, 1024), None, 10),
                                               ((512, 128), None, 10),
                                               ((256, 256), [(0, 1), (0, 4)], 10),
                                               ((128, 128, 32), None, 11),
                                               ((32, 128, 128), None, 11)])
def test_stretched_cells_keep_the_iteration_count(shape, extent, most):
    """Poisson on stretched cells (16 : 1 and 4 : 1): 25-100 CG iterations with full
    coarsening, now those of square cells (9-10)."""
    g = js.Grid(shape, extent=extent) if extent else js.Grid(shape)
    A = -js.Laplacian(g)
    b = np.random.default_rng(0).standard_normal(g.shape)
    for op in (A, -js.Diffusion(g, np.exp(np.random.default_rng(1).uniform(-1, 1, g.shape)))):
        sol = js.solve(js.LinearProblem(op, b), js.CG(js.Multigrid()), rtol=1e-8)
        assert sol.retcode == js.ReturnCode.Success
        assert sol.iters <= (most if op is A else most + 4), sol.iters
        assert np.linalg.norm(b - op.apply(sol.u)) <= 1.01e-8 * np.linalg.norm(b)


@pytest.mark.parametrize("shape,bc,nlev", [((64, 7), js.Periodic(), 1),
                                           ((128, 9), [js.Dirichlet(), js.Periodic()], 1),
                                           ((128, 10), [js.Dirichlet(), js.Periodic()], 6),
                                           ((128, 9), [js.Periodic(), js.Dirichlet()], 6)])
def test_an_odd_periodic_axis_is_never_smoothed(shape, bc, nlev):
    """Semi-coarsening would leave the long axis whole; if that axis is periodic with an
    odd number of cells it has no red-black ordering, and a level smoothed there made
    the cycle unsymmetric (<M x, y> - <x, M y> ~ 1e-2 relative).  Such a level is the
    coarsest (solved exactly) instead; a Dirichlet odd axis is smoothed as usual."""
    rng = np.random.default_rng(0)
    g = js.Grid(shape, bc=bc)
    A = -js.Laplacian(g)
    M = js.Multigrid().setup(A)
    assert M.nlevels == nlev
    x, y = rng.standard_normal(g.size), rng.standard_normal(g.size)
    assert_symmetric_positive(M, x, y, positive=False)


@pytest.mark.parametrize("grid,kw", [(js.Grid((64, 64)), dict(coarse_size=256)),
                                     (js.Grid((18, 18), bc=js.Periodic()), {}),
                                     (js.Grid((12, 12, 12)), dict(coarse_size=216))])
def test_coarsest_above_64_cells_is_factorised_sparsely(grid, kw):
    """Coarsest levels of 65-256 cells (a larger ``coarse_size``; an odd periodic axis
    that stops the coarsening) take SuperLU, not LAPACK's dense LU, whose threads (from
    ~192 cells) keep spinning on the cores of the solve that follows; the solve agrees
    with the dense factorisation."""
    A = -js.Laplacian(grid)
    M = _mg(A, **kw)
    assert 64 < M.coarse_n <= 256 and MG.DENSE_COARSEST == 64
    assert M._splu is not None
    b = np.random.default_rng(3).standard_normal(grid.size)
    if isinstance(grid.bcs[0][0], js.Periodic):
        b -= b.mean()
    with pytest.MonkeyPatch.context() as mp:
        D = _mg(A, mp, **kw)
    assert D._splu is None and D.coarse_n == M.coarse_n
    xs, xd = M(b, np.empty_like(b)), D(b, np.empty_like(b))
    assert np.abs(xs - xd).max() <= 1e-11 * np.abs(xd).max()
    sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid(**kw)), rtol=1e-8)
    assert sol.retcode == js.ReturnCode.Success and sol.iters <= 12
