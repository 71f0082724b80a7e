"""Geometric multigrid: transfer kernels, symmetry of the cycle, grid-independent iteration
counts, jump coefficients; Chebyshev; FlexibleCG with a variable preconditioner; pyamg AMG."""
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import scipy.sparse.linalg as spla

import jitsolve as js
from jitsolve.kernels.cpu import multigrid as K
from jitsolve.solvers.linear.precond.multigrid import assemble
from mg_checks import assert_symmetric_positive

NO_DOTS = np.empty(0)       # the sweeps' rowdot: no row dots


def _bc_arrays(bcs):
    per = np.zeros(3, dtype=np.int64)
    sgn = np.ones((3, 2))
    for a, b in enumerate(bcs):
        if b == "P":
            per[a] = 1
        elif b == "D":
            sgn[a] = -1.0
    return per, sgn


@pytest.mark.parametrize("shape,bcs", [((1, 8, 16), "xDN"), ((1, 16, 8), "xPD"),
                                       ((8, 4, 16), "DPN"), ((4, 8, 8), "NND")])
def test_restriction_is_scaled_transpose_of_prolongation(shape, bcs):
    rng = np.random.default_rng(0)
    act = np.array([1 if s > 1 else 0 for s in shape], dtype=np.int64)
    per, sgn = _bc_arrays(bcs)
    cshape = tuple(s // 2 if a else s for s, a in zip(shape, act))
    c = rng.standard_normal(cshape)
    f = rng.standard_normal(shape)
    Pc = np.zeros(shape)
    K.prolong_add(c, Pc, act, per, sgn)
    Rf = np.empty(cshape)
    K.restrict_fw(f, Rf, act, per, sgn)
    d = int(act.sum())
    assert np.sum(Pc * f) == pytest.approx(2 ** d * np.sum(c * Rf), rel=1e-12)
    # interpolation reproduces constants away from Dirichlet walls and is exact on periodic axes
    ones = np.zeros(shape)
    K.prolong_add(np.ones(cshape), ones, act, per, sgn)
    inner = tuple(slice(1, -1) if a else slice(None) for a in act)
    np.testing.assert_allclose(ones[inner], 1.0)


@pytest.mark.parametrize("shape,bcs,act", [((1, 260, 12), "xDN", None), ((20, 16, 8), "PDN", None),
                                           ((1, 130, 6), "xPP", None), ((6, 2, 4), "NDD", None),
                                           ((1, 130, 6), "xDN", (0, 1, 0)),
                                           ((1, 12, 260), "xNP", (0, 0, 1)),
                                           ((20, 16, 8), "PDN", (1, 1, 0)),
                                           ((20, 16, 8), "DND", (1, 0, 0)),
                                           ((6, 10, 4), "NPD", (0, 1, 1)),
                                           # odd non-periodic axes: n -> (n - 1) / 2
                                           ((1, 131, 7), "xDN", None),
                                           ((1, 9, 3), "xND", None),
                                           ((1, 129, 5), "xNP", (0, 1, 0)),
                                           ((1, 10, 263), "xPD", (0, 0, 1)),
                                           ((21, 15, 9), "DND", None),
                                           ((7, 16, 5), "NPD", None),
                                           ((5, 3, 11), "DDN", (1, 1, 0))])
def test_transfers_match_the_interpolation_matrix(shape, bcs, act):
    """``prolong_add`` against ``P`` (the Kronecker product of the one-axis taps) and
    ``restrict_fw`` against ``P^T / 2^d``, on grids with more rows than the kernels'
    chunks (several rows per row buffer) and fewer, every axis halved or some
    (semi-coarsening: ``act``), odd axes coarsened to ``(n - 1) / 2``; serial =
    parallel."""
    rng = np.random.default_rng(5)
    if act is None:
        act = [1 if s > 1 else 0 for s in shape]
    act = np.array(act, dtype=np.int64)
    per, sgn = _bc_arrays(bcs)
    cshape = tuple(s // 2 if a else s for s, a in zip(shape, act))
    nc = int(np.prod(cshape))
    P = np.zeros((int(np.prod(shape)), nc))
    for j in range(nc):
        e = np.zeros(nc)
        e[j] = 1.0
        col = np.zeros(shape)
        K.prolong_add(e.reshape(cshape), col, act, per, sgn)
        P[:, j] = col.ravel()
    # P itself against the Kronecker product of the one-axis taps
    mats = []
    for a in range(3):
        I, wI, N, wN = K.interpolation_taps(cshape[a], shape[a], act[a], per[a], sgn[a, 0],
                                            sgn[a, 1])
        M = np.zeros((shape[a], cshape[a]))
        np.add.at(M, (np.arange(shape[a]), I), wI)
        np.add.at(M, (np.arange(shape[a]), N), wN)
        mats.append(M)
    Pk = np.kron(mats[0], np.kron(mats[1], mats[2]))
    np.testing.assert_allclose(P, Pk, rtol=0, atol=1e-15)
    c = rng.standard_normal(cshape)
    base = rng.standard_normal(shape)
    Pc = base.copy()
    K.prolong_add(c, Pc, act, per, sgn)
    np.testing.assert_allclose(Pc.ravel(), base.ravel() + Pk @ c.ravel(), rtol=1e-14, atol=1e-14)
    Ps = base.copy()
    K.prolong_add_serial(c, Ps, act, per, sgn)
    np.testing.assert_array_equal(Ps, Pc)
    f = rng.standard_normal(shape)
    Rf = np.full(cshape, np.nan)
    K.restrict_fw(f, Rf, act, per, sgn)
    want = (P.T @ f.ravel()) / 2 ** int(act.sum())
    np.testing.assert_allclose(Rf.ravel(), want, rtol=1e-14, atol=1e-14 * np.abs(want).max())
    if shape[0] > 1:        # 3-D: plane by plane
        for nch in (1, 3):
            Rp = np.full(cshape, np.nan)
            K.restrict_planes(f, f, Rp, np.zeros(3), per, sgn, sgn, 0.0, act, nch, False)
            np.testing.assert_allclose(Rp.ravel(), want, rtol=1e-14,
                                       atol=1e-14 * np.abs(want).max())
    Rs = np.full(cshape, np.nan)
    K.restrict_fw_serial(f, Rs, act, per, sgn)
    np.testing.assert_array_equal(Rs, Rf)
    # complex fields restrict their real and imaginary parts
    g = f + 1j * rng.standard_normal(shape)
    Rc = np.empty(cshape, dtype=complex)
    K.restrict_fw(g, Rc, act, per, sgn)
    Ri = np.empty(cshape)
    K.restrict_fw(np.ascontiguousarray(g.imag), Ri, act, per, sgn)
    np.testing.assert_array_equal(Rc.real, Rf)
    np.testing.assert_array_equal(Rc.imag, Ri)


@pytest.mark.parametrize("kappa", [None, "field"])
def test_residual_and_smoother_kernels_match_the_matrix(kappa):
    rng = np.random.default_rng(1)
    shape = (1, 12, 10)
    per, sgn = _bc_arrays("xDN")
    c = np.array([0.0, 144.0, 100.0])
    k = None if kappa is None else np.exp(rng.standard_normal(shape))
    s = -1.7
    A = assemble(shape, c, per, sgn, s, k)
    u = rng.standard_normal(shape)
    f = rng.standard_normal(shape)
    r = np.empty(shape)
    if k is None:
        K.residual_laplacian(u, f, r, c, per, sgn, s)
    else:
        K.residual_diffusion(u, f, k, r, c, per, sgn, s)
    np.testing.assert_allclose(r.ravel(), f.ravel() - A @ u.ravel(), rtol=1e-12, atol=1e-9)
    # one red half-sweep solves exactly the red equations (red cells: i0 + i1 + i2 even)
    v = u.copy()
    if k is None:
        K.rbgs_laplacian(v, f, c, per, sgn, s, 0, False)
    else:
        K.rbgs_diffusion(v, f, k, c, per, sgn, s, 0, False)
    red = (np.indices(shape).sum(axis=0) % 2 == 0).ravel()
    np.testing.assert_allclose((A @ v.ravel())[red], f.ravel()[red], rtol=1e-10, atol=1e-9)
    np.testing.assert_array_equal(v.ravel()[~red], u.ravel()[~red])


@pytest.mark.parametrize("cycle", ["V", "W"])
@pytest.mark.parametrize("op", ["lap", "diff"])
def test_multigrid_cycle_is_symmetric_positive_definite(cycle, op):
    g = js.Grid((32, 24), bc=[js.Dirichlet(), (js.Neumann(), js.Dirichlet())])
    rng = np.random.default_rng(2)
    A = -js.Laplacian(g) if op == "lap" else -2.0 * js.Diffusion(g, np.exp(rng.standard_normal(g.shape)))
    M = js.Multigrid(cycle=cycle).setup(A)
    x, y = rng.standard_normal(g.size), rng.standard_normal(g.size)
    assert_symmetric_positive(M, x, y)


@pytest.mark.parametrize("n", [64, 128, 256, 512])
def test_cg_multigrid_iterations_grid_independent_2d(n):
    g = js.Grid((n, n))
    b = np.ones(g.shape)
    sol = js.solve(js.LinearProblem(-js.Laplacian(g), b), js.CG(js.Multigrid()), rtol=1e-8)
    assert sol.retcode == js.ReturnCode.Success
    assert sol.iters <= 12
    assert sol.resnorm <= 1e-8 * np.linalg.norm(b)


@pytest.mark.parametrize("n", [16, 32, 64])
def test_cg_multigrid_iterations_grid_independent_3d(n):
    g = js.Grid((n, n, n))
    sol = js.solve(js.LinearProblem(-js.Laplacian(g), np.ones(g.shape)), js.CG(js.Multigrid()),
                   rtol=1e-8)
    # (the default symmetric red-black sweeps in 3-D: 7 iterations; 9-10 with "rbgs")
    assert sol.retcode == js.ReturnCode.Success and sol.iters <= 8


@pytest.mark.parametrize("shape,bc", [((48, 40), js.Dirichlet()), ((24, 64), js.Neumann(2.0)),
                                      ((32, 32), [js.Periodic(), js.Dirichlet()]),
                                      ((12, 16, 20), [js.Dirichlet(), js.Periodic(), js.Neumann()])])
def test_multigrid_other_shapes_and_boundaries(shape, bc):
    g = js.Grid(shape, bc=bc)
    A = -js.Laplacian(g)
    rng = np.random.default_rng(3)
    b = rng.standard_normal(g.shape)
    if all(isinstance(lo, js.Neumann) for lo, _ in g.bcs):
        b -= b.mean()                       # singular (pure Neumann): a consistent right-hand side
    sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid()), rtol=1e-9)
    assert sol.retcode == js.ReturnCode.Success and sol.iters <= 20
    np.testing.assert_allclose(A.apply(sol.u), b, atol=1e-7 * np.abs(b).max() * 10)


def _checkerboard(g, nblocks, lo=1.0, hi=1000.0):
    idx = np.indices(g.shape)
    blk = sum((idx[a] * nblocks // g.shape[a]) for a in range(g.ndim))
    return np.where(blk % 2 == 0, lo, hi)


@pytest.mark.parametrize("precond", [js.Multigrid(), js.AMG()])
def test_jump_coefficients_3d_agree_with_direct(precond):
    g = js.Grid((16, 16, 16))
    kappa = _checkerboard(g, 4)
    A = -js.Diffusion(g, kappa)
    b = np.ones(g.shape)
    ref = spla.spsolve(A.to_csr().tocsc(), b.ravel()).reshape(g.shape)
    sol = js.solve(js.LinearProblem(A, b), js.CG(precond), rtol=1e-10)
    assert sol.retcode == js.ReturnCode.Success
    assert np.linalg.norm(sol.u - ref) / np.linalg.norm(ref) < 1e-7
    assert sol.iters <= (80 if isinstance(precond, js.Multigrid) else 30)


def test_chebyshev_reduces_iterations_and_is_spd():
    g = js.Grid((64, 64))
    A = -js.Diffusion(g, _checkerboard(g, 4, 1.0, 10.0))
    b = np.ones(g.shape)
    plain = js.solve(js.LinearProblem(A, b), js.CG(), rtol=1e-8)
    cheb = js.solve(js.LinearProblem(A, b), js.CG(js.Chebyshev(degree=6)), rtol=1e-8)
    assert cheb.retcode == js.ReturnCode.Success
    assert cheb.iters < plain.iters / 3
    M = js.Chebyshev(6).setup(A)
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal(g.size), rng.standard_normal(g.size)
    assert np.dot(M(x, np.empty(g.size)), y) == pytest.approx(np.dot(x, M(y, np.empty(g.size))), rel=1e-9)


def test_flexible_cg_with_variable_nonlinear_preconditioner():
    g = js.Grid((64, 64))
    A = -js.Diffusion(g, np.exp(np.random.default_rng(5).standard_normal(g.shape)))
    b = np.ones(g.shape)
    M = js.Multigrid().setup(A)
    rng = np.random.default_rng(6)
    calls = []

    def inexact(r):
        # a random number (1-3) of multigrid cycles to a loose inner tolerance, then a random
        # positive rescaling of every entry: nonlinear and different at every call
        z = np.zeros_like(r)
        res = r.copy()
        for _ in range(rng.integers(1, 4)):
            z += M(res, np.empty_like(r))
            res = r - A.apply(z)
            if np.linalg.norm(res) < 0.1 * np.linalg.norm(r):
                break
        calls.append(1)
        return z * rng.uniform(0.9, 1.1, r.size)

    sol = js.solve(js.LinearProblem(A, b), js.FlexibleCG(inexact, truncate=2), rtol=1e-8, maxiter=60)
    assert sol.retcode == js.ReturnCode.Success and sol.iters <= 30
    assert np.linalg.norm(b - A.apply(sol.u)) <= 1e-8 * np.linalg.norm(b)
    assert len(calls) == sol.iters + 1 or len(calls) == sol.iters
    # plain PCG relies on a fixed preconditioner and does not converge in the same budget
    plain = js.solve(js.LinearProblem(A, b), js.CG(inexact), rtol=1e-8, maxiter=60)
    assert plain.retcode != js.ReturnCode.Success


def test_amg_kinds_and_lazy_import():
    g = js.Grid((32, 32))
    A = -js.Laplacian(g)
    b = np.ones(g.shape)
    for kind in ("sa", "rs"):
        sol = js.solve(js.LinearProblem(A.to_csr(), b.ravel()), js.CG(js.AMG(kind=kind)), rtol=1e-10)
        assert sol.retcode == js.ReturnCode.Success and sol.iters <= 15
    code = ("import sys, jitsolve, jitsolve.linear, jitsolve.solvers.linear.precond, "
            "jitsolve.solvers.linear.precond.amg; print('pyamg' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_preconditioner_setup_is_reused_for_the_same_operator():
    g = js.Grid((32, 32))
    A = -js.Laplacian(g)
    pc = js.Multigrid()
    assert pc.setup(A) is pc.setup(A)
    assert pc.setup(A) is not pc.setup(-js.Laplacian(g))
    assert js.Multigrid() == js.Multigrid() and js.Multigrid() != js.Multigrid(cycle="W")


@pytest.mark.parametrize("shape,bcs", [((1, 16, 12), "xDN"), ((1, 8, 16), "xPP"), ((8, 12, 10), "DPN"),
                                       ((16, 8, 6), "PPD"), ((1, 18, 10), "xPD"), ((1, 1, 16), "xxD"),
                                       ((6, 10, 2), "PDD"), ((1, 17, 13), "xDN"),
                                       ((9, 12, 11), "DPN"), ((1, 15, 16), "xNP"),
                                       ((1, 3, 5), "xND")])
def test_fused_laplacian_kernels_match_unfused(shape, bcs):
    """The fused sweeps equal their half-sweeps bit for bit: two (red-black) and three
    (red-black-red), from any guess, and from the zero guess whatever ``u`` held; the
    one-pass residual equals the reference kernel, and the restriction that forms the
    residual rows itself equals the residual pass followed by the restriction, bit for
    bit, for any number of chunks; in 3-D the restriction plane by plane equals them to
    rounding."""
    rng = np.random.default_rng(3)
    per, sgn = _bc_arrays(bcs)
    act = np.array([1 if s > 1 else 0 for s in shape], dtype=np.int64)
    c = act * np.array([1.3, 2.0, 0.7])
    s = -1.7
    f = rng.standard_normal(shape)
    u0 = rng.standard_normal(shape)
    for nh in (2, 3):
        for color in (0, 1):
            for first in (False, True):
                ref = u0.copy()
                for k in range(nh):
                    K.rbgs_laplacian(ref, f, c, per, sgn, s, (color + k) % 2, first and k == 0)
                for sweep in (K.gs_sweep_laplacian, K.gs_sweep_laplacian_serial):
                    v = np.full(shape, np.nan) if first else u0.copy()
                    sweep(v, f, c, per, sgn, s, color, first, nh, NO_DOTS)
                    np.testing.assert_array_equal(v, ref)
    r = np.empty(shape)
    K.residual_laplacian(u0, f, r, c, per, sgn, s)
    for res in (K.residual_laplacian_fast, K.residual_laplacian_serial):
        out = np.full(shape, np.nan)
        res(u0, f, out, c, per, sgn, s)
        np.testing.assert_allclose(out, r, rtol=1e-12, atol=1e-12)
    K.residual_laplacian_fast(u0, f, r, c, per, sgn, s)
    # every axis halved, and (2-D) one of the two (semi-coarsening): the same identity
    semis = ((0, 1, 0), (0, 0, 1)) if shape[0] == 1 else ()
    for halved in [act] + [np.array(h, dtype=np.int64) * act for h in semis]:
        if not halved.any():
            continue
        cshape = tuple(n // 2 if a else n for n, a in zip(shape, halved))
        # the coarse level's ghost signs: the fine ones, or a far Dirichlet ghost moved
        # (below an odd axis, level_ghost_signs)
        moved = sgn.copy()
        moved[:, 1] = np.where(sgn[:, 1] < 0, [0.0, -1.0 / 3.0, 0.2], sgn[:, 1])
        for csgn in (sgn, moved):
            ref = np.empty(cshape)
            K.restrict_fw(r, ref, halved, per, csgn)
            for fn in (K.restrict_residual_laplacian, K.restrict_residual_laplacian_serial):
                for nch in (1, 3, 64):
                    out = np.full(cshape, np.nan)
                    fn(u0, f, out, c, per, sgn, csgn, s, halved, nch)
                    np.testing.assert_array_equal(out, ref)
            # 3-D: plane by plane (another order of the same sums: equal to rounding),
            # the residual formed inside or given
            if shape[0] > 1:
                tol = 8 * np.finfo(float).eps * np.abs(r).max()
                for nch in (1, 2, 5):
                    for resid in (True, False):
                        out = np.full(cshape, np.nan)
                        K.restrict_planes(u0 if resid else r, f, out, c, per, sgn, csgn, s,
                                          halved, nch, resid)
                        np.testing.assert_allclose(out, ref, rtol=0, atol=tol)


@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_coarse_solve_matches_lapack(n):
    """The coarsest level's in-process solve: LAPACK's factors (row interchanges
    included) and the pseudo-inverse path, against SciPy."""
    import scipy.linalg as sla
    rng = np.random.default_rng(n)
    A = rng.standard_normal((n, n)) + n * np.eye(n)
    b = rng.standard_normal(n)
    lu, piv = sla.lu_factor(A)
    x = b.copy()
    K.coarse_solve(np.ascontiguousarray(lu), piv.astype(np.int32), np.empty((0, 0)), x, x)
    np.testing.assert_allclose(x, sla.lu_solve((lu, piv), b), rtol=1e-13, atol=1e-13)
    P = np.linalg.pinv(A)
    y = np.full(n, np.nan)
    K.coarse_solve(np.empty((0, 0)), np.empty(0, np.int32), P, b, y)
    np.testing.assert_allclose(y, P @ b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("shape,bcs", [((1, 16, 12), "xDN"), ((1, 8, 16), "xPP"), ((8, 12, 10), "DPN"),
                                       ((16, 8, 6), "PPD"), ((1, 18, 10), "xPD"), ((1, 1, 16), "xxD"),
                                       ((6, 10, 2), "PDD"), ((1, 9, 7), "xDD")])
def test_diffusion_sweep_from_face_weights_matches_half_sweeps(shape, bcs):
    """``D(k)`` smoothing from the face weights and diagonal computed once per level: two
    and three half-sweeps in one pass equal the colour-by-colour kernel (harmonic means
    on the fly) bit for bit, from any guess and from the zero guess; the face weights are
    symmetric (one weight per face) and the diagonal that of the assembled matrix."""
    rng = np.random.default_rng(5)
    per, sgn = _bc_arrays(bcs)
    act = np.array([1 if s > 1 else 0 for s in shape], dtype=np.int64)
    c = act * np.array([1.3, 2.0, 0.7])
    s = -1.7
    k = np.exp(rng.standard_normal(shape))
    f = rng.standard_normal(shape)
    u0 = rng.standard_normal(shape)
    n = int(np.prod(shape))
    w, dg = np.full((3, n + shape[2]), np.nan), np.full(n, np.nan)
    K.diffusion_faces(k, c, per, sgn, w, dg)
    np.testing.assert_allclose(s * dg, assemble(shape, c, per, sgn, s, k).diagonal(), rtol=1e-13)
    assert np.all(w[:, n:] == 0.0) and np.all(w >= 0.0)
    for nh in (2, 3):
        for color in (0, 1):
            for first in (False, True):
                ref = u0.copy()
                for kk in range(nh):
                    K.rbgs_diffusion(ref, f, k, c, per, sgn, s, (color + kk) % 2, first and kk == 0)
                for sweep in (K.gs_sweep_diffusion, K.gs_sweep_diffusion_serial):
                    v = np.full(shape, np.nan) if first else u0.copy()
                    sweep(v, f, w, dg, c, per, sgn, s, color, first, nh, NO_DOTS)
                    np.testing.assert_array_equal(v, ref)


@settings(max_examples=40, deadline=None)
@given(dims=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       kinds=st.lists(st.sampled_from("DNP"), min_size=3, max_size=3),
       nh=st.sampled_from([2, 3]), color=st.integers(0, 1), first=st.booleans(),
       odd=st.lists(st.booleans(), min_size=3, max_size=3), seed=st.integers(0, 2**31 - 1))
def test_fused_multigrid_kernels_property(dims, kinds, nh, color, first, odd, seed):
    """Random shapes (1-D to 3-D, padded to three axes; even, or odd along axes that are
    not periodic) and boundary mixes: the fused red-black sweeps (Laplacian, and
    Diffusion from face weights) equal their half-sweeps, and the restriction that forms
    the residual rows equals the two passes, bit for bit (plane by plane in 3-D: to
    rounding)."""
    rng = np.random.default_rng(seed)
    kinds = kinds[3 - len(dims):]
    shape = (1,) * (3 - len(dims)) + tuple(2 * d + (o and b != "P")
                                           for d, o, b in zip(dims, odd, kinds))
    kinds = "x" * (3 - len(dims)) + "".join(kinds)
    per, sgn = _bc_arrays("".join("x" if n == 1 else b for n, b in zip(shape, kinds)))
    # the far Dirichlet ghost of a coarse level below an odd axis (level_ghost_signs)
    sgn[:, 1] = np.where(sgn[:, 1] < 0, rng.choice([-1.0, -1.0 / 3.0, 0.0, 0.2], 3), sgn[:, 1])
    act = np.array([1 if n > 1 else 0 for n in shape], dtype=np.int64)
    c = act * rng.uniform(0.5, 2.0, 3)
    s = -rng.uniform(0.5, 2.0)
    f = rng.standard_normal(shape)
    u0 = rng.standard_normal(shape)
    k = np.exp(rng.standard_normal(shape))
    n = int(np.prod(shape))
    w, dg = np.empty((3, n + shape[2])), np.empty(n)
    K.diffusion_faces(k, c, per, sgn, w, dg)
    ref_l, ref_d = u0.copy(), u0.copy()
    for kk in range(nh):
        K.rbgs_laplacian(ref_l, f, c, per, sgn, s, (color + kk) % 2, first and kk == 0)
        K.rbgs_diffusion(ref_d, f, k, c, per, sgn, s, (color + kk) % 2, first and kk == 0)
    v = np.full(shape, np.nan) if first else u0.copy()
    K.gs_sweep_laplacian(v, f, c, per, sgn, s, color, first, nh, NO_DOTS)
    np.testing.assert_array_equal(v, ref_l)
    v = np.full(shape, np.nan) if first else u0.copy()
    K.gs_sweep_diffusion(v, f, w, dg, c, per, sgn, s, color, first, nh, NO_DOTS)
    np.testing.assert_array_equal(v, ref_d)
    r = np.empty(shape)
    K.residual_laplacian_fast(u0, f, r, c, per, sgn, s)
    cshape = tuple(m // 2 if a else m for m, a in zip(shape, act))
    csgn = sgn.copy()
    csgn[:, 1] = np.where(sgn[:, 1] < 0, rng.choice([-1.0, 0.0, 0.2], 3), sgn[:, 1])
    ref = np.empty(cshape)
    K.restrict_fw(r, ref, act, per, csgn)
    out = np.full(cshape, np.nan)
    K.restrict_residual_laplacian(u0, f, out, c, per, sgn, csgn, s, act,
                                  int(rng.integers(1, 9)))
    np.testing.assert_array_equal(out, ref)
    if shape[0] > 1:
        for resid in (True, False):
            out = np.full(cshape, np.nan)
            K.restrict_planes(u0 if resid else r, f, out, c, per, sgn, csgn, s, act,
                              int(rng.integers(1, 9)), resid)
            np.testing.assert_allclose(out, ref, rtol=0,
                                       atol=8 * np.finfo(float).eps * np.abs(r).max())


@pytest.mark.parametrize("shape,bc,op,coarse", [
    ((40, 36, 34), js.Dirichlet(), "lap", "auto"),
    ((41, 34, 36), js.Neumann(), "lap", "auto"),          # an odd axis: n -> (n - 1) / 2
    ((40, 32, 40), js.Periodic(), "lap", "auto"),
    ((36, 40, 34), js.Dirichlet(), "diff", "rediscretised"),
    ((36, 34, 40), js.Dirichlet(), "diff", "galerkin")])
def test_plane_restriction_in_whole_solves(monkeypatch, shape, bc, op, coarse):
    """3-D levels above the serial size restrict plane by plane (the residual of a
    rediscretised Laplacian formed inside, a Diffusion level's given): the same
    iterations and the same solution to rounding as the residual pass followed by
    ``restrict_fw``."""
    from jitsolve.solvers.linear.precond import multigrid as MG
    rng = np.random.default_rng(11)
    g = js.Grid(shape, bc=bc)
    if op == "lap":
        A = -js.Laplacian(g)
    else:
        A = -js.Diffusion(g, np.exp(rng.uniform(-1, 1, shape)))
    b = rng.standard_normal(shape)
    if not isinstance(bc, js.Dirichlet):
        b -= b.mean()                       # a singular operator: b in its range
    calls = []
    real = K.restrict_planes
    monkeypatch.setattr(K, "restrict_planes", lambda *a: (calls.append(a[-1]), real(*a)))
    sols = {}
    for planes in (False, True):
        monkeypatch.setattr(MG, "PLANE_RESTRICTION", planes)
        sols[planes] = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid(coarse=coarse)),
                                rtol=1e-9)
        assert sols[planes].retcode == js.ReturnCode.Success
    # one call a cycle on each large level (the finest; the second Galerkin level too):
    # the residual formed inside on a rediscretised Laplacian level only
    per_cycle = 2 if coarse == "galerkin" else 1
    assert calls.count(op == "lap") == len(calls) == per_cycle * sols[True].iters
    assert sols[True].iters == sols[False].iters
    u, v = sols[True].u, sols[False].u
    assert np.abs(u - v).max() <= 1e-11 * np.abs(v).max()
    assert np.linalg.norm(b.ravel() - A.apply(u).ravel()) <= 1e-9 * np.linalg.norm(b)
    # the cycle stays symmetric positive definite with the planes (P^T to rounding)
    if isinstance(bc, js.Dirichlet):
        monkeypatch.setattr(MG, "PLANE_RESTRICTION", True)
        M = js.Multigrid(coarse=coarse).setup(A)
        assert_symmetric_positive(M, rng.standard_normal(g.size), rng.standard_normal(g.size))


@pytest.mark.parametrize("shape, bcs, refused", [
    ((1, 20, 9), "xDP", True), ((1, 9, 20), "xPN", True), ((7, 4, 6), "PDN", True),
    ((1, 20, 9), "xDN", False), ((7, 4, 6), "DPP", False), ((1, 1, 2), "xxP", False)])
def test_sweeps_refuse_an_odd_periodic_axis(shape, bcs, refused):
    """The fused red-black sweeps (threaded and serial, Laplacian and face weights) raise
    ``ValueError`` on a periodic axis of odd length (more than one cell): such an axis
    has no red-black ordering, and a threaded sweep over it races across the wrap.  Odd
    non-periodic and even periodic axes sweep."""
    rng = np.random.default_rng(5)
    per, sgn = _bc_arrays(bcs)
    act = np.array([1 if m > 1 else 0 for m in shape], dtype=np.int64)
    c = act * np.array([1.3, 2.0, 0.7])
    f = rng.standard_normal(shape)
    n = int(np.prod(shape))
    w, dg = np.empty((3, n + shape[2])), np.empty(n)
    K.diffusion_faces(np.exp(rng.standard_normal(shape)), c, per, sgn, w, dg)
    kernels = [(sw, (c,)) for sw in (K.gs_sweep_laplacian, K.gs_sweep_laplacian_serial)]
    kernels += [(sw, (w, dg, c)) for sw in (K.gs_sweep_diffusion, K.gs_sweep_diffusion_serial)]
    for sweep, args in kernels:
        u = rng.standard_normal(shape)
        before = u.copy()
        if refused:
            with pytest.raises(ValueError, match="odd length"):
                sweep(u, f, *args, per, sgn, -1.0, 0, False, 2, NO_DOTS)
            np.testing.assert_array_equal(u, before)     # refused before any write
        else:
            sweep(u, f, *args, per, sgn, -1.0, 0, False, 2, NO_DOTS)
            assert np.isfinite(u).all() and not np.array_equal(u, before)


@pytest.mark.parametrize("shape, bcs", [((40, 6, 10), "DNP"), ((1, 20, 9), "xDN"),
                                        ((32, 5, 17), "PDD"), ((1, 1, 12), "xxD")])
def test_sweep_row_dots(shape, bcs):
    """The sweeps' row dots: ``f_row . u_row`` of the swept ``u`` (to rounding; every row
    once, those finished at the chunks' ends included), the sweep itself unchanged bit for
    bit, and their total in row order.  (A periodic axis must have even length: an odd
    one has no red-black ordering, and a threaded sweep over it is not even
    deterministic; multigrid never smooths one.)"""
    rng = np.random.default_rng(11)
    per, sgn = _bc_arrays(bcs)
    act = np.array([1 if m > 1 else 0 for m in shape], dtype=np.int64)
    c = act * np.array([1.3, 2.0, 0.7])
    s = -1.7
    f = rng.standard_normal(shape)
    u0 = rng.standard_normal(shape)
    k = np.exp(rng.standard_normal(shape))
    n = int(np.prod(shape))
    rows = shape[0] * shape[1]
    w, dg = np.empty((3, n + shape[2])), np.empty(n)
    K.diffusion_faces(k, c, per, sgn, w, dg)
    kernels = [(sw, (c,)) for sw in (K.gs_sweep_laplacian, K.gs_sweep_laplacian_serial)]
    kernels += [(sw, (w, dg, c)) for sw in (K.gs_sweep_diffusion, K.gs_sweep_diffusion_serial)]
    for sweep, args in kernels:
        for nh in (1, 2, 3):
            for first in (False, True):
                ref = u0.copy()
                sweep(ref, f, *args, per, sgn, s, 1, first, nh, NO_DOTS)
                v = u0.copy()
                rowdot = np.full(rows, np.nan)
                sweep(v, f, *args, per, sgn, s, 1, first, nh, rowdot)
                np.testing.assert_array_equal(v, ref)
                want = np.einsum("ij,ij->i", f.reshape(rows, -1), v.reshape(rows, -1))
                np.testing.assert_allclose(rowdot, want, rtol=1e-13, atol=1e-13)
                assert K.row_dots_total(rowdot) == pytest.approx(np.vdot(f, v), rel=1e-13)


@pytest.mark.parametrize("shape", [(64, 48), (24, 16, 20)])
@pytest.mark.parametrize("opts", [{}, {"smoother": "srbgs"}, {"smoother": "rbgs"},
                                  {"smoother": "jacobi"}, {"coarse": "galerkin"},
                                  {"postsmooth": 0, "presmooth": 2}, {"cycle": "W"}])
def test_apply_dot_is_the_cycle_and_its_dot(shape, opts):
    """``apply_dot``: the cycle's ``z`` bit for bit and ``r^T z`` (from the last sweep's row
    dots where it is a red-black one, else the blocked dot), to rounding; with ``r`` a
    view of another shape too."""
    from jitsolve.kernels.cpu import krylov
    rng = np.random.default_rng(5)
    g = js.Grid(shape, bc=js.Dirichlet(0.0))
    kap = np.where(rng.random(shape) < 0.5, 1.0, 1000.0)
    for A in (-js.Laplacian(g), -js.Diffusion(g, kap)):
        M = js.Multigrid(**opts).setup(A)
        r = rng.standard_normal(g.size)
        z_ref = M(r)
        z = np.full(g.size, np.nan)
        rz = M.apply_dot(r, z)
        np.testing.assert_array_equal(z, z_ref)
        assert rz == pytest.approx(np.dot(r, z_ref), rel=1e-13)
        no_sweep = opts.get("smoother") == "jacobi" or opts.get("postsmooth") == 0
        # the row dots were summed inside the last sweep exactly where there is one
        assert M._apply(r, np.empty(g.size), True)[1] == (not no_sweep)
        if no_sweep:
            assert rz == krylov.dot_real(r, z_ref)      # no sweep to fuse into: the dot
