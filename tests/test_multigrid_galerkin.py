"""Galerkin multigrid levels and the automatic choice of coarse operators (issue 3).

The kernels of the assembled levels (kernels/cpu/galerkin.py) against NumPy / SciPy
references: the one-pass CSR assembly bit for bit against the face-by-face NumPy one and
against the operators' own ``to_csr``; the prolongation matrix bit for bit against the
Kronecker product of the one-axis taps; the greedy colouring (no two coupled rows share a
colour); the multicolour Gauss-Seidel sweep against a colour-by-colour NumPy sweep; the
residual of the colour-ordered rows.  Then the cycle with coloured levels (symmetric,
positive, and the iterations of the lexicographic levels to within a few), and
``coarse="auto"``: the neighbour ratio, the level it is read on, the choice on jumps that
persist on coarse grids and on cell-scale noise, and W-cycles that no longer break down on
jumping coefficients."""
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import given, settings
from hypothesis import strategies as st

import jitsolve as js
from jitsolve.kernels.cpu import galerkin as GK
from jitsolve.kernels.cpu import multigrid as K
from jitsolve.solvers.linear.precond import multigrid as MG
from mg_checks import assert_symmetric_positive
from test_linear_multigrid import _bc_arrays, _checkerboard   # tests/, the same helpers


# ------------------------------------------------------------------- assembly, transfers
@pytest.mark.parametrize("shape", [(1, 1, 7), (1, 5, 6), (3, 4, 5), (1, 33, 32), (6, 5, 7)])
@pytest.mark.parametrize("bcs", ["DDD", "NPD", "PPP", "DNP"])
@pytest.mark.parametrize("coefficient", [False, True])
def test_assembly_kernel_is_the_face_by_face_assembly_bit_for_bit(shape, bcs, coefficient):
    rng = np.random.default_rng(sum(shape) + len(bcs))
    per, sgn = _bc_arrays(bcs)
    sgn[sgn < 0] = rng.choice([-1.0, -0.4], size=int((sgn < 0).sum()))  # odd-axis ghosts too
    c = np.array([0.0 if n == 1 else rng.uniform(0.5, 2.0) for n in shape])
    kappa = np.exp(rng.standard_normal(shape)) if coefficient else None
    A = MG.assemble(shape, c, per, sgn, -1.5, kappa)
    R = MG.assemble_faces(shape, c, per, sgn, -1.5, kappa)
    assert A.has_sorted_indices and A.shape == R.shape and A.nnz == R.nnz
    assert abs(A - R).max() == 0.0


def test_assembly_kernel_is_the_operators_matrix():
    g = js.Grid((12, 9), extent=((0.0, 1.0), (0.0, 2.0)), bc=js.Neumann())
    kappa = np.exp(np.random.default_rng(1).standard_normal(g.shape))
    D = js.Diffusion(g, kappa)
    A = MG.assemble((1,) + g.shape, D._c, D._per, D._sgn, 1.0, D._k3)
    np.testing.assert_allclose(A.toarray(), D.to_csr().toarray(), rtol=1e-14, atol=1e-12)


def test_small_periodic_axes_fall_back_to_the_face_by_face_assembly():
    # two cells on a periodic axis: the neighbour above and below is one cell
    per, sgn = _bc_arrays("xPD")
    c = np.array([0.0, 1.0, 1.0])
    A = MG.assemble((1, 2, 5), c, per, sgn, 1.0)
    np.testing.assert_array_equal(A.toarray(), MG.assemble_faces((1, 2, 5), c, per, sgn,
                                                                  1.0).toarray())
    assert A[0, 5] == 2.0       # both faces of cell 0 along axis 1 lead to cell 5


def _kron_prolongation(shape_coarse, act, per, sgn, shape_fine):
    """The Kronecker product of the one-axis taps, the reference construction."""
    P = None
    for a in range(3):
        I, wI, N, wN = K.interpolation_taps(int(shape_coarse[a]), int(shape_fine[a]),
                                            int(act[a]), int(per[a]),
                                            float(sgn[a, 0]), float(sgn[a, 1]))
        nf = I.size
        Pa = sp.coo_matrix((np.concatenate([wI, wN]),
                            (np.tile(np.arange(nf), 2), np.concatenate([I, N]))),
                           shape=(nf, int(shape_coarse[a]))).tocsr()
        Pa.sum_duplicates()
        Pa.eliminate_zeros()
        P = Pa if P is None else sp.kron(P, Pa, format="csr")
    return P


@pytest.mark.parametrize("shape_coarse,act,bcs", [
    ((1, 4, 5), (0, 1, 1), "xDN"), ((3, 4, 5), (1, 1, 1), "DDD"), ((1, 1, 6), (0, 0, 1), "xxP"),
    ((4, 3, 2), (1, 0, 1), "PNP"), ((2, 2, 2), (1, 1, 1), "NDN"), ((5, 1, 3), (1, 0, 1), "DxD")])
@pytest.mark.parametrize("odd", [False, True])
def test_prolongation_matrix_is_the_kronecker_product_bit_for_bit(shape_coarse, act, bcs, odd):
    per, sgn = _bc_arrays(bcs.replace("x", "N"))
    sgn[:, 1] = np.where(sgn[:, 1] < 0, -0.3, sgn[:, 1])    # a fractional far ghost
    fine = [2 * m + (1 if odd and a and not p else 0) if a else m
            for m, a, p in zip(shape_coarse, act, per)]
    act = np.array(act)
    P = MG.prolongation_matrix(shape_coarse, act, per, sgn, fine)
    R = _kron_prolongation(shape_coarse, act, per, sgn, fine)
    assert P.shape == R.shape and P.nnz == R.nnz
    assert abs(P - R).max() == 0.0
    # its rows sorted, as it declares (SciPy trusts the flag)
    rows = np.repeat(np.arange(P.shape[0]), np.diff(P.indptr))
    step = np.diff(P.indices.astype(np.int64))
    assert P.has_sorted_indices and np.all(step[rows[1:] == rows[:-1]] > 0)


def test_prolongation_matrix_refuses_taps_outside_the_coarse_grid():
    per, sgn = _bc_arrays("NNN")
    with pytest.raises(ValueError, match="outside"):
        MG.prolongation_matrix((1, 1, 3), np.array([0, 1, 1]), per, sgn, (1, 5, 6))


# ------------------------------------------------------------------- colouring, kernels
def _galerkin(shape, kappa, **kw):
    g = js.Grid(shape)
    D = js.Diffusion(g, kappa)
    shape3 = (1,) * (3 - g.ndim) + g.shape
    return g, -D, MG.GeometricMultigrid(shape3, D._c, D._per, D._sgn, -1.0, D._k3,
                                       coarse="galerkin", **kw)


def _random_symmetric(n, density, seed):
    rng = np.random.default_rng(seed)
    B = sp.random(n, n, density=density, random_state=rng, format="csr")
    A = (B + B.T + sp.identity(n) * (2.0 + abs(B).sum(axis=1).max() * 2)).tocsr()
    A.sort_indices()
    return A


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 120), density=st.floats(0.0, 0.2), seed=st.integers(0, 10**6))
def test_greedy_colouring_separates_every_coupled_pair(n, density, seed):
    A = _random_symmetric(n, density, seed)
    colour, nc = GK.greedy_colouring(A.indptr, A.indices)
    assert colour.min() == 0 and colour.max() == nc - 1
    coo = A.tocoo()
    off = coo.row != coo.col
    assert not np.any(colour[coo.row[off]] == colour[coo.col[off]])
    # greedy: at most one more colour than the widest row has neighbours
    assert nc <= np.diff(A.indptr).max() + 1


def test_colouring_of_a_galerkin_level_is_small():
    _, _, M = _galerkin((64, 64), np.exp(np.random.default_rng(2).standard_normal((64, 64))))
    A = M.levels[1].A
    colour, nc = GK.greedy_colouring(A.indptr, A.indices)
    assert 9 <= nc <= 16    # a 5 x 5 stencil needs 9; greedy in natural order a few more


def _reference_colour_sweep(A, x, b, colour, forward):
    """Colour by colour: every row of the colour from the current ``x`` at once."""
    d = A.diagonal()
    order = range(colour.max() + 1) if forward else range(colour.max(), -1, -1)
    for c in order:
        rows = np.flatnonzero(colour == c)
        x[rows] = x[rows] + (b[rows] - A[rows] @ x) / d[rows]
    return x


@pytest.mark.parametrize("forward", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_multicolour_gauss_seidel_is_the_colour_by_colour_sweep(forward, dtype):
    A = _random_symmetric(300, 0.03, 7)
    Ac, (dinv, order, cptr) = MG._coloured(A)
    colour = np.empty(A.shape[0], np.int64)
    for c in range(cptr.size - 1):
        colour[order[cptr[c]:cptr[c + 1]]] = c
    rng = np.random.default_rng(3)
    b = rng.standard_normal(300).astype(dtype)
    x0 = rng.standard_normal(300).astype(dtype)
    if dtype == np.complex128:
        b = b + 1j * rng.standard_normal(300)
    x = x0.copy()
    GK.csr_gauss_seidel_colours(Ac.indptr, Ac.indices, Ac.data, dinv, x, b, order, cptr, forward)
    ref = _reference_colour_sweep(A, x0.copy(), b, colour, forward)
    np.testing.assert_allclose(x, ref, rtol=1e-13, atol=1e-13)
    # a converging iteration: many sweeps solve the system
    for _ in range(60):
        GK.csr_gauss_seidel_colours(Ac.indptr, Ac.indices, Ac.data, dinv, x, b, order, cptr,
                                    forward)
    np.testing.assert_allclose(A @ x, b, rtol=1e-10, atol=1e-10)


def test_residual_of_colour_ordered_rows():
    A = _random_symmetric(250, 0.05, 11)
    Ac, (dinv, order, cptr) = MG._coloured(A)
    np.testing.assert_array_equal(np.sort(order), np.arange(250))
    np.testing.assert_allclose(dinv, 1.0 / A.diagonal()[order], rtol=0)
    rng = np.random.default_rng(5)
    x, b, r = rng.standard_normal(250), rng.standard_normal(250), np.empty(250)
    GK.csr_residual_rows(Ac.indptr, Ac.indices, Ac.data, x, b, r, order)
    np.testing.assert_allclose(r, b - A @ x, rtol=1e-13, atol=1e-13)
    GK.csr_residual_serial(A.indptr, A.indices, A.data, x, b, r)
    np.testing.assert_allclose(r, b - A @ x, rtol=1e-13, atol=1e-13)


# ------------------------------------------------------------------- the cycle
@pytest.mark.parametrize("shape", [(24, 20), (8, 6, 10)])
@pytest.mark.parametrize("smoother", ["rbgs", "srbgs"])
def test_coloured_levels_keep_the_cycle_symmetric_positive(monkeypatch, shape, smoother):
    g = js.Grid(shape)
    kappa = _checkerboard(g, 4)
    L = np.linalg.cholesky((-js.Diffusion(g, kappa)).to_csr().toarray())
    spectra = {}
    for nnz in (1 << 40, 0):            # lexicographic levels, then every level coloured
        monkeypatch.setattr(MG, "_SERIAL_NNZ", nnz)
        _, A, M = _galerkin(shape, kappa, smoother=smoother, coarse_size=8)
        coloured = [lev.colours is not None for lev in M.levels[1:-1]]
        assert coloured and all(coloured) == (nnz == 0) and any(coloured) == (nnz == 0)
        n = g.size
        B = np.array([M(e, np.empty(n)) for e in np.eye(n)]).T
        assert abs(B - B.T).max() <= 1e-12 * abs(B).max()
        spectra[nnz] = np.linalg.eigvalsh(L.T @ (0.5 * (B + B.T)) @ L)
    # B A: positive, at most 1 (the Galerkin coarse correction is an energy projection),
    # and the coloured levels' extremes those of the lexicographic ones (the few small
    # eigenvalues are the floating 1000-blocks, which linear interpolation misses)
    ev, ref = spectra[0], spectra[1 << 40]
    assert ev.min() > 0.0 and ev.max() < 1.0 + 1e-9
    assert ev.min() >= 0.8 * ref.min() and ev[ev > 0.3].size >= ref[ref > 0.3].size - 2


def test_coloured_and_lexicographic_levels_take_about_the_same_iterations(monkeypatch):
    g = js.Grid((96, 96))
    A = -js.Diffusion(g, _checkerboard(g, 6))
    b = np.ones(g.shape)
    its = {}
    for nnz in (1 << 40, 0):
        monkeypatch.setattr(MG, "_SERIAL_NNZ", nnz)
        sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid(coarse="galerkin")),
                       rtol=1e-10)
        assert sol.retcode == js.ReturnCode.Success
        assert np.linalg.norm(b - A.apply(sol.u)) <= 1.01e-10 * np.linalg.norm(b)
        its[nnz] = sol.iters
    assert abs(its[0] - its[1 << 40]) <= 0.15 * its[1 << 40] + 1, its


def test_large_galerkin_levels_are_coloured_and_symmetric():
    # 256^2: the second level (128^2, ~21 entries a row) passes the threshold by itself
    g, A, M = _galerkin((256, 256), np.exp(np.random.default_rng(6).standard_normal((256, 256))))
    assert M.levels[1].colours is not None and M.levels[1].A.nnz > MG._SERIAL_NNZ
    rng = np.random.default_rng(7)
    assert_symmetric_positive(M, rng.standard_normal(g.size), rng.standard_normal(g.size))


# ------------------------------------------------------------------- coarse="auto"
def test_jump_ratio_is_the_largest_neighbour_ratio():
    rng = np.random.default_rng(8)
    k = np.exp(rng.standard_normal((3, 4, 5)))
    for per in ((0, 0, 0), (1, 0, 1)):
        want = 1.0
        for a in range(3):
            for i in range(k.shape[a]):
                j = i + 1
                if j == k.shape[a]:
                    if not per[a]:
                        continue
                    j = 0
                x, y = np.take(k, i, axis=a), np.take(k, j, axis=a)
                want = max(want, (x / y).max(), (y / x).max())
        assert MG.jump_ratio(k, per) == pytest.approx(want, rel=1e-15)
    assert MG.jump_ratio(np.ones((1, 1, 1))) == 1.0


def _auto(shape, kappa, cycle="V"):
    g = js.Grid(shape)
    D = js.Diffusion(g, kappa)
    shape3 = (1,) * (3 - g.ndim) + g.shape
    return MG.GeometricMultigrid(shape3, D._c, D._per, D._sgn, -1.0, D._k3, cycle=cycle)


def test_auto_takes_galerkin_levels_for_jumps_that_survive_coarsening():
    n = 128
    idx = np.indices((n, n))
    blocks = np.where((idx[0] // 16 + idx[1] // 16) % 2 == 0, 1.0, 1000.0)
    channel = np.where(np.abs(idx[0] - n // 2) < 3, 1e4, 1.0)
    for kappa in (blocks, channel):
        M = _auto((n, n), kappa)
        assert M.galerkin and M.jump > MG.JUMP_RATIO["V"]
    # two-cell blocks average to a uniform field on the second coarse level
    M = _auto((n, n), np.where((idx[0] // 2 + idx[1] // 2) % 2 == 0, 1.0, 1000.0))
    assert not M.galerkin and M.jump == pytest.approx(1.0)


def test_auto_keeps_rediscretised_levels_for_noise_and_smooth_fields():
    rng = np.random.default_rng(9)
    n = 128
    noise = np.exp(rng.standard_normal((n, n)))         # ~700 between some neighbours
    assert MG.jump_ratio(noise[None]) > MG.JUMP_RATIO["V"]
    x = (np.arange(n) + 0.5) / n
    smooth = np.exp(6.0 * np.sin(2 * np.pi * x)[:, None] * np.cos(np.pi * x)[None, :])
    for kappa in (noise, smooth):
        M = _auto((n, n), kappa)
        assert not M.galerkin and M.jump < MG.JUMP_RATIO["V"]
    # the Laplacian has no coefficient: rediscretised, ratio 1
    g = js.Grid((n, n))
    L = js.Laplacian(g)
    M = MG.GeometricMultigrid((1, n, n), L._c, L._per, L._sgn, -1.0)
    assert not M.galerkin and M.jump == 1.0


def test_explicit_coarse_operators_are_kept():
    g = js.Grid((64, 64))
    kappa = _checkerboard(g, 4)
    D = js.Diffusion(g, kappa)
    M = MG.GeometricMultigrid((1, 64, 64), D._c, D._per, D._sgn, -1.0, D._k3,
                              coarse="rediscretised")
    assert not M.galerkin and M.jump > MG.JUMP_RATIO["V"]
    assert "coarse=rediscretised" in repr(M) and "jump=1e+03" in repr(M)


def test_w_cycles_on_jumps_no_longer_break_down():
    """A rediscretised W-cycle iterates an over-correcting coarse correction on every
    level: with kappa 1 : 100 blocks it is indefinite and CG stops at once (Breakdown,
    never a wrong Success); the default takes Galerkin levels for W-cycles from a ratio
    of 30 between neighbours and converges."""
    g = js.Grid((64, 64))
    A = -js.Diffusion(g, _checkerboard(g, 8, hi=100.0))
    b = np.ones(g.shape)
    bad = js.solve(js.LinearProblem(A, b),
                   js.CG(js.Multigrid(cycle="W", coarse="rediscretised")), rtol=1e-8)
    assert bad.retcode == js.ReturnCode.Breakdown
    sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid(cycle="W")), rtol=1e-8)
    assert sol.retcode == js.ReturnCode.Success and sol.iters <= 15
    assert np.linalg.norm(b - A.apply(sol.u)) <= 1.01e-8 * np.linalg.norm(b)
    # cell-scale noise, exp(N(0, 2)): the W default is Galerkin there too
    rng = np.random.default_rng(10)
    A = -js.Diffusion(g, np.exp(2.0 * rng.standard_normal(g.shape)))
    sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid(cycle="W")), rtol=1e-8)
    assert sol.retcode == js.ReturnCode.Success


@pytest.mark.parametrize("shape,nblocks,most", [((128, 128), 8, 60), ((32, 32, 32), 4, 45)])
def test_default_multigrid_on_jumps_agrees_with_the_direct_solve(shape, nblocks, most):
    g = js.Grid(shape)
    A = -js.Diffusion(g, _checkerboard(g, nblocks))
    b = np.ones(g.shape)
    ref = spla.spsolve(A.to_csr().tocsc(), b.ravel()).reshape(g.shape)
    sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid()), rtol=1e-10, maxiter=500)
    assert sol.retcode == js.ReturnCode.Success and sol.iters <= most, sol.iters
    assert np.linalg.norm(sol.u - ref) / np.linalg.norm(ref) < 1e-7


@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
def test_coloured_levels_in_other_dtypes(monkeypatch, dtype):
    monkeypatch.setattr(MG, "_SERIAL_NNZ", 0)
    g = js.Grid((48, 40))
    # float32: a contrast its precision can solve to 1e-5 (1 : 1000 stalls near 1e-3)
    A = -js.Diffusion(g, _checkerboard(g, 4, hi=10.0 if dtype == np.float32 else 1000.0))
    rng = np.random.default_rng(12)
    b = rng.standard_normal(g.shape).astype(dtype)
    if np.iscomplexobj(b):
        b = b + 1j * rng.standard_normal(g.shape)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid(coarse="galerkin")), rtol=rtol)
    assert sol.retcode == js.ReturnCode.Success and sol.u.dtype == dtype
    ref = spla.spsolve(A.to_csr().tocsc().astype(np.result_type(dtype, np.float64)),
                       b.ravel().astype(np.result_type(dtype, np.float64)))
    err = np.linalg.norm(sol.u.ravel() - ref) / np.linalg.norm(ref)
    assert err < (1e-3 if dtype == np.float32 else 1e-7), err


@pytest.mark.parametrize("shape_coarse,act,bcs,odd", [
    ((3, 4, 5), (1, 1, 1), "DNP", False), ((3, 4, 5), (1, 1, 1), "DND", True),
    ((4, 2, 3), (1, 0, 1), "NDD", True), ((1, 4, 4), (0, 1, 1), "NPD", False)])
def test_axis_factors_multiply_to_the_prolongation(shape_coarse, act, bcs, odd):
    per, sgn = _bc_arrays(bcs)
    sgn[:, 1] = np.where(sgn[:, 1] < 0, -0.3, sgn[:, 1])
    fine = [2 * m + (1 if odd and not p else 0) if a else m
            for m, a, p in zip(shape_coarse, act, per)]
    act = np.array(act)
    F = MG._axis_factors(shape_coarse, fine, act, per, sgn)
    assert len(F) == int(act.sum()) and all(np.diff(f.indptr).max() <= 2 for f in F)
    prod = F[0]
    for f in F[1:]:
        prod = prod @ f
    P = MG.prolongation_matrix(shape_coarse, act, per, sgn, fine)
    assert prod.shape == P.shape
    assert abs(prod - P).max() <= 1e-15


def test_three_d_galerkin_levels_are_the_triple_product():
    g = js.Grid((10, 12, 9))                  # odd axes, every axis coarsened
    D = js.Diffusion(g, _checkerboard(g, 3))
    M = MG.GeometricMultigrid(g.shape, D._c, D._per, D._sgn, -1.0, D._k3, coarse="galerkin",
                              coarse_size=8)
    top, lev = M.levels[0], M.levels[1]
    assert int(top.act.sum()) == 3
    P = MG.prolongation_matrix(lev.shape, top.act, M.per, lev.sgn, top.shape)
    A = MG.assemble(top.shape, top.c, M.per, top.sgn, -1.0, top.kappa)
    ref = (P.T @ A @ P) / 8.0
    np.testing.assert_allclose(lev.A.toarray(), ref.toarray(), rtol=0,
                               atol=1e-13 * abs(ref).max())


def test_kappa_gradient_through_the_default_on_blocks_is_the_direct_one():
    """The adjoint solve reuses the forward's hierarchy (Galerkin here, by the auto rule):
    the implicit-function gradient equals the direct solver's, and a central difference."""
    g = js.Grid((64, 64))
    kappa = _checkerboard(g, 4)
    rng = np.random.default_rng(13)
    f = rng.standard_normal(g.shape)
    loss = js.L2Loss(None, rng.standard_normal(g.shape))
    M = js.Multigrid()
    assert M.setup(-js.Diffusion(g, kappa)).galerkin      # setup() returns the hierarchy
    v, gr = js.gradient(js.LinearProblem(-js.Diffusion(g, kappa), f), js.CG(M), loss,
                        wrt=("b", "kappa"), rtol=1e-12)
    vd, gd = js.gradient(js.LinearProblem(-js.Diffusion(g, kappa), f), js.Direct(), loss,
                         wrt=("b", "kappa"))
    assert v == pytest.approx(vd, rel=1e-10)
    for name in ("b", "kappa"):
        np.testing.assert_allclose(gr[name], gd[name], rtol=0,
                                   atol=1e-8 * np.abs(gd[name]).max())
    d = rng.standard_normal(g.shape) * kappa
    e = 1e-4       # the matrix's condition (~1e7) leaves the difference ~1e-5 of noise
    vp = js.gradient(js.LinearProblem(-js.Diffusion(g, kappa + e * d), f), js.Direct(), loss,
                     wrt=("b",))[0]
    vm = js.gradient(js.LinearProblem(-js.Diffusion(g, kappa - e * d), f), js.Direct(), loss,
                     wrt=("b",))[0]
    assert np.sum(gr["kappa"] * d) == pytest.approx((vp - vm) / (2 * e), rel=1e-4)


# ------------------------------------------------------------------- singular coarsest
def test_pseudo_inverse_of_a_constant_null_space():
    rng = np.random.default_rng(14)
    g = js.Grid((6, 5), bc=js.Neumann())
    A = (-js.Diffusion(g, np.exp(rng.standard_normal(g.shape)))).to_csr().toarray()
    Ap = MG._pinv_constants(A)
    np.testing.assert_allclose(Ap, np.linalg.pinv(A, rcond=1e-10), atol=1e-12 * abs(Ap).max())
    # the rounding-level eigenvalue of a Galerkin product is not inverted
    A2 = A + 1e-13 * np.outer(np.ones(30), np.ones(30)) / 30
    assert abs(MG._pinv_constants(A2)).max() < 10 * abs(Ap).max()


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("dims,sides,seed", [((3, 3, 35), ("NN", "NN", "P"), 0),
                                             ((3, 35), ("P", "NN"), 1)])
def test_galerkin_on_singular_stretched_grids_is_symmetric_positive(dims, sides, seed, dense,
                                                                    monkeypatch):
    """Hypothesis examples of tests/test_multigrid_odd.py that found the pseudo-inverse's
    cut-off too small for a Galerkin coarsest level (B had entries of 1e10); the coarsest
    level (81 and 32 cells) dense with the pseudo-inverse, and by default (81 cells:
    SuperLU with a cell pinned, above ``DENSE_COARSEST`` = 64 cells)."""
    rng = np.random.default_rng(seed)
    shape = tuple(d + 1 if s == "P" and d % 2 else d for d, s in zip(dims, sides))
    kinds = {"D": js.Dirichlet(0.0), "N": js.Neumann()}
    bc = [js.Periodic() if s == "P" else (kinds[s[0]], kinds[s[1]]) for s in sides]
    g = js.Grid(shape, extent=[(0.0, float(rng.uniform(0.5, 2.0))) for _ in shape], bc=bc)
    A = -js.Laplacian(g)
    if dense:
        monkeypatch.setattr(MG, "DENSE_COARSEST", 1 << 30)
    M = js.Multigrid(coarse="galerkin").setup(A)
    as_dense = dense or M.coarse_n <= MG.DENSE_COARSEST
    assert M._singular and (M._pinv.size > 0) == as_dense and (M._splu is None) == as_dense
    n = g.size
    B = np.array([M(e, np.empty(n)) for e in np.eye(n)]).T
    assert abs(B - B.T).max() <= 1e-12 * abs(B).max()
    ev = np.linalg.eigvalsh(0.5 * (B + B.T))
    assert ev.min() > 0
    # of the size of A's pseudo-inverse (it had entries of 1e10)
    assert abs(B).max() <= 10 * abs(np.linalg.pinv(A.to_csr().toarray(), rcond=1e-10)).max()
    b = rng.standard_normal(shape)
    b -= b.mean()
    sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid(coarse="galerkin")), rtol=1e-8)
    assert sol.retcode == js.ReturnCode.Success and sol.iters <= 25
