"""Audit of the grid operators: every method of every operator, composed or not, against a
dense matrix and boundary vector built cell by cell from the ghost-cell definitions
(independent of the kernels, the face tables and ``tests/reference.py``); coefficient VJPs
against central differences of that reference; and the input checks the audit found
missing (out= aliasing ``lam``, ``out=`` on composed VJPs, ``kappa`` out of the range the
face means can represent, boundary arrays that were aliased or silently cast)."""
import itertools

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import jitsolve as js
from jitsolve.errors import InvalidProblemError


# ------------------------------------------------------------------ dense reference
def _face_value(cond, shape, axis, side, idx):
    v = cond.value
    if isinstance(v, float):
        return v
    p = [i + 1 for i in idx]
    p[axis] = 0 if side == 0 else shape[axis] + 1
    return v[tuple(p)]


def dense(g, kind, kappa=None, vel=None, scheme="upwind"):
    """``(M, b)`` with ``M u + b`` the affine operator, one face at a time."""
    shape, n = g.shape, g.size
    M = np.zeros((n, n))
    b = np.zeros(n)
    for idx in itertools.product(*[range(s) for s in shape]):
        i = int(np.ravel_multi_index(idx, shape))
        for a in range(g.ndim):
            h = g.spacing[a]
            for side in (0, 1):
                cond = g.bcs[a][side]
                j = list(idx)
                j[a] += -1 if side == 0 else 1
                ghost = not 0 <= j[a] < shape[a]
                if ghost and isinstance(cond, js.Periodic):
                    j[a] %= shape[a]
                    ghost = False
                s = cst = 0.0
                m = i
                if ghost:       # u_ghost = s u_i + cst
                    q = _face_value(cond, shape, a, side, idx)
                    if isinstance(cond, js.Neumann):
                        s, cst = 1.0, h * q
                    elif kind == "advection" and scheme == "upwind":
                        s, cst = 0.0, q
                    else:
                        s, cst = -1.0, 2.0 * q
                else:
                    m = int(np.ravel_multi_index(tuple(j), shape))
                if kind in ("laplacian", "diffusion"):
                    kf = 1.0
                    if kind == "diffusion":
                        ki = kappa[idx]
                        km = ki if ghost else kappa.ravel()[m]
                        kf = 2.0 * ki * km / (ki + km)
                    w = kf / h ** 2          # w (u_nb - u_i)
                    M[i, i] -= w
                    if ghost:
                        M[i, i] += w * s
                        b[i] += w * cst
                    else:
                        M[i, m] += w
                    continue
                vi = vel[a][idx]
                vf = 0.5 * (vi + (vi if ghost else vel[a].ravel()[m]))
                wl, wr = ((max(vf, 0.0), min(vf, 0.0)) if scheme == "upwind"
                          else (0.5 * vf, 0.5 * vf))
                # F = wl u_L + wr u_R; (A u)_i = (F_low - F_high) / h
                cnb, cself, sign = (wl, wr, 1.0) if side == 0 else (wr, wl, -1.0)
                M[i, i] += sign * cself / h
                if ghost:
                    M[i, i] += sign * cnb * s / h
                    b[i] += sign * cnb * cst / h
                else:
                    M[i, m] += sign * cnb / h
    return M, b.reshape(shape)


def _padded(shape, rng):
    return rng.standard_normal(tuple(n + 2 for n in shape))


BCS = {
    "dirichlet": lambda s, r: js.Dirichlet(1.3),
    "dirichlet-array": lambda s, r: js.Dirichlet(_padded(s, r)),
    "neumann-array": lambda s, r: js.Neumann(_padded(s, r)),
    "periodic": lambda s, r: js.Periodic(),
    "mixed": lambda s, r: [(js.Dirichlet(_padded(s, r)), js.Neumann(-0.4)) if a != 1
                           else js.Periodic() for a in range(len(s))],
}
SHAPES = [(1,), (2,), (3,), (1, 1), (2, 1), (1, 3), (3, 2), (1, 1, 1), (2, 1, 3), (2, 3, 2)]
KINDS = [("laplacian", None), ("diffusion", None), ("advection", "upwind"),
         ("advection", "central")]


def _setup(kind, scheme, shape, bcname, seed=0):
    rng = np.random.default_rng(seed)
    ext = [(0.0, 0.5 + 0.7 * a) for a in range(len(shape))]
    g = js.Grid(shape, extent=ext, bc=BCS[bcname](shape, rng))
    if kind == "laplacian":
        return g, js.Laplacian(g), dense(g, kind), None, rng
    if kind == "diffusion":
        kappa = 0.3 + rng.random(shape)
        return g, js.Diffusion(g, kappa), dense(g, kind, kappa=kappa), kappa, rng
    vel = rng.uniform(-1.0, 1.0, (len(shape),) + shape)
    return (g, js.Advection(g, vel, scheme), dense(g, kind, vel=vel, scheme=scheme), vel, rng)


def _close(got, expect, scale):
    got = np.asarray(got, dtype=float).ravel()
    expect = np.asarray(expect, dtype=float).ravel()
    assert got.shape == expect.shape
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("bcname", list(BCS))
@pytest.mark.parametrize("kind,scheme", KINDS, ids=[f"{k}-{s}" for k, s in KINDS])
def test_every_method_matches_the_dense_reference(kind, scheme, shape, bcname):
    g, A, (M, b), _, rng = _setup(kind, scheme, shape, bcname)
    L, bL = dense(g, "laplacian")
    scale = max(1.0, np.abs(M).max(), np.abs(L).max())
    u = rng.standard_normal(shape)
    lam = rng.standard_normal(shape)
    _close(A.apply(u), M @ u.ravel(), scale * np.abs(u).max())
    _close(A.T.apply(lam), M.T @ lam.ravel(), scale * np.abs(lam).max())
    _close(A.to_csr().toarray(), M, scale)
    _close(A.T.to_csr().toarray(), M.T, scale)
    _close(A.diagonal(), np.diag(M), scale)
    _close(A.T.diagonal(), np.diag(M), scale)
    _close(A.boundary_term(), b, scale * 10)
    lo = A.as_linear_operator()
    _close(lo.matvec(u.ravel()), M @ u.ravel(), scale * np.abs(u).max())
    _close(lo.rmatvec(lam.ravel()), M.T @ lam.ravel(), scale * np.abs(lam).max())
    # composed: a scaled leaf, a Laplacian of the same grid and an identity
    B = 2.5 * A - js.Laplacian(g) + js.Identity(g)
    MB = 2.5 * M - L + np.eye(g.size)
    _close(B.apply(u), MB @ u.ravel(), 5 * scale * np.abs(u).max())
    _close(B.T.apply(lam), MB.T @ lam.ravel(), 5 * scale * np.abs(lam).max())
    _close(B.to_csr().toarray(), MB, 5 * scale)
    _close(B.T.to_csr().toarray(), MB.T, 5 * scale)
    _close(B.diagonal(), np.diag(MB), 5 * scale)
    _close(B.boundary_term(), 2.5 * b - bL, 50 * scale)
    _close((-1.5 * A).T.apply(lam), -1.5 * M.T @ lam.ravel(), 2 * scale * np.abs(lam).max())
    # flat, Fortran-ordered and strided inputs; a flat out
    out = np.empty(g.size)
    assert A.apply(u.ravel(), out=out) is out
    _close(out, M @ u.ravel(), scale * np.abs(u).max())
    _close(B.apply(np.asfortranarray(u)), MB @ u.ravel(), 5 * scale * np.abs(u).max())
    wide = np.zeros((2,) + shape)
    wide[0] = u
    _close(A.T.apply(wide[0]), M.T @ u.ravel(), scale * np.abs(u).max())


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 1, 3)], ids=str)
@pytest.mark.parametrize("bcname", list(BCS))
@pytest.mark.parametrize("kind,scheme", KINDS[1:], ids=[f"{k}-{s}" for k, s in KINDS[1:]])
def test_param_vjp_against_central_differences_of_the_reference(kind, scheme, shape, bcname):
    g, A, _, p, rng = _setup(kind, scheme, shape, bcname, seed=3)
    u = rng.standard_normal(shape)
    lam = rng.standard_normal(shape)

    def f(q):
        M, b = (dense(g, kind, kappa=q) if kind == "diffusion"
                else dense(g, kind, vel=q, scheme=scheme))
        return lam.ravel() @ (M @ u.ravel() + b.ravel())

    eps = 1e-6
    fd = np.zeros(p.shape)
    for i in np.ndindex(p.shape):
        e = np.zeros(p.shape)
        e[i] = eps
        fd[i] = (f(p + e) - f(p - e)) / (2 * eps)
    tol = 1e-6 * max(1.0, np.abs(fd).max())
    np.testing.assert_allclose(A.param_vjp(u, lam), fd, rtol=0, atol=tol)
    # scaled and summed: the same field, scaled; into out=
    out = np.empty(p.shape)
    assert (-2.0 * A).param_vjp(u, lam, out=out) is out
    np.testing.assert_allclose(out, -2.0 * fd, rtol=0, atol=2 * tol)
    S = js.Identity(g) - 0.5 * A + js.Laplacian(g)
    np.testing.assert_allclose(S.param_vjp(u, lam, out=out), -0.5 * fd, rtol=0, atol=tol)
    np.testing.assert_allclose(S.param_vjp(u, lam), -0.5 * fd, rtol=0, atol=tol)


def test_param_vjp_out_must_not_alias_lam():
    # out=lam was accepted: the kernel overwrote lam while it still read it (error 1.9e3)
    rng = np.random.default_rng(1)
    g = js.Grid((4, 3))
    D = js.Diffusion(g, 0.5 + rng.random(g.shape))
    u, lam = rng.standard_normal((2,) + g.shape)
    expect = D.param_vjp(u, lam)
    keep = lam.copy()
    for out in (lam, lam.ravel()):
        with pytest.raises(InvalidProblemError, match="^out:.*overlap"):
            D.param_vjp(u, lam, out=out)
    with pytest.raises(InvalidProblemError, match="^out:.*overlap"):
        (3.0 * D).param_vjp(u, lam, out=lam)
    np.testing.assert_array_equal(lam, keep)
    np.testing.assert_allclose(D.param_vjp(u, lam), expect, rtol=1e-15)
    g1 = js.Grid((5,), bc=js.Dirichlet(1.0))
    V = js.Advection(g1, rng.standard_normal((1, 5)))
    u1 = np.ones((1, 5))
    with pytest.raises(InvalidProblemError, match="^out:.*overlap"):
        V.param_vjp(u1[0], np.ones(5), out=u1)


def test_composed_param_vjp_takes_out_and_counts_fields():
    rng = np.random.default_rng(2)
    g = js.Grid((3, 4), bc=js.Neumann(0.3))
    kappa = 0.5 + rng.random(g.shape)
    D = js.Diffusion(g, kappa)
    u, lam = rng.standard_normal((2,) + g.shape)
    base = D.param_vjp(u, lam)
    out = np.empty(g.shape)
    assert (D + js.Laplacian(g)).param_vjp(u, lam, out=out) is out
    np.testing.assert_allclose(out, base, rtol=1e-14)
    np.testing.assert_allclose((0.5 * (js.Laplacian(g) - 4.0 * D)).param_vjp(u, lam), -2.0 * base,
                               rtol=1e-14)
    with pytest.raises(InvalidProblemError, match="^param_vjp: this sum has 2 terms"):
        (D + 2.0 * D).param_vjp(u, lam)
    with pytest.raises(InvalidProblemError, match="^param_vjp: this sum has 0 terms"):
        (js.Laplacian(g) + js.Identity(g)).param_vjp(u, lam)
    V = js.Advection(g, (1.0, -0.5))
    with pytest.raises(InvalidProblemError, match="^param_vjp: the transpose of Advection"):
        (2.0 * V).T.param_vjp(u, lam)


@pytest.mark.parametrize("k", [1e-200, 1e-160, 1e160, 1e200])
def test_kappa_the_face_means_cannot_represent_is_refused(k):
    # kappa = 1e-200 gave the zero operator, 1e-160 a relative error of 1e-5 and 1e160
    # NaN: 2 k_i k_m under- or overflows
    g = js.Grid((6,))
    with pytest.raises(InvalidProblemError, match=r"^kappa: entries must lie in \[1e-150"):
        js.Diffusion(g, k)
    kk = np.ones(6)
    kk[2] = k
    with pytest.raises(InvalidProblemError, match=r"^kappa: entries must lie in"):
        js.Diffusion(g, kk)


@pytest.mark.parametrize("k", [1e-150, 1e150])
def test_kappa_at_the_ends_of_the_range_is_exact(k):
    g = js.Grid((6,), bc=js.Dirichlet(0.5))
    u = np.sin(np.arange(6.0))
    D = js.Diffusion(g, k)
    L = js.Laplacian(g)
    np.testing.assert_allclose(D.apply(u), k * L.apply(u), rtol=1e-14)
    np.testing.assert_allclose(D.to_csr() @ u, k * L.apply(u), rtol=1e-14)
    np.testing.assert_allclose(D.boundary_term(), k * L.boundary_term(), rtol=1e-14)
    lam = np.cos(np.arange(6.0))
    g_k = D.param_vjp(u, lam)            # D is linear in a uniform k: <lam, L u + b> each
    assert np.all(np.isfinite(g_k))
    np.testing.assert_allclose(g_k.sum(), lam @ (L.apply(u) + L.boundary_term()), rtol=1e-12)


def test_jumps_across_the_whole_kappa_range():
    g = js.Grid((4,), bc=js.Neumann())
    k = np.array([1e-150, 1e150, 1.0, 1e-150])
    D = js.Diffusion(g, k)
    M, _ = dense(g, "diffusion", kappa=k)
    u = np.array([1.0, -2.0, 3.0, 0.5])
    np.testing.assert_allclose(D.apply(u), M @ u, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(D.to_csr().toarray(), M, rtol=1e-13, atol=1e-300)


def test_boundary_arrays_are_copied_and_must_be_real():
    g_shape = (4,)
    arr = np.zeros(6)
    arr[0] = 1.0
    L = js.Laplacian(js.Grid(g_shape, bc=js.Dirichlet(arr)))
    before = L.boundary_term().copy()          # [2/h^2 * 1, 0, 0, 0]
    np.testing.assert_allclose(before, [32.0, 0.0, 0.0, 0.0])
    arr[0] = np.nan                            # was seen by the operator: boundary_term NaN
    np.testing.assert_array_equal(L.boundary_term(), before)
    q = np.ones(6)
    N = js.Laplacian(js.Grid(g_shape, bc=js.Neumann(q)))
    q[:] = 7.0
    np.testing.assert_allclose(N.boundary_term(), [4.0, 0.0, 0.0, 4.0])
    for bad in (np.ones(6, complex), np.complex128(1.0), np.ones(6, bool), np.bool_(True),
                np.array(["1"] * 6)):
        with pytest.raises(InvalidProblemError, match=r"^Dirichlet\(value\)"):
            js.Dirichlet(bad)
        with pytest.raises(InvalidProblemError, match=r"^Neumann\(flux\)"):
            js.Neumann(bad)


def test_assigning_kappa_or_velocity_checks_and_replaces_the_field():
    # D.kappa = k changed to_csr() but not apply() (the kernel kept the old array)
    g = js.Grid((5,), bc=js.Dirichlet(0.0))
    u = np.sin(np.arange(5.0))
    D = js.Diffusion(g, np.ones(5))
    k = np.linspace(1.0, 3.0, 5)
    D.kappa = k
    M, _ = dense(g, "diffusion", kappa=k)
    np.testing.assert_allclose(D.apply(u), M @ u, rtol=1e-14)
    np.testing.assert_allclose(D.to_csr() @ u, M @ u, rtol=1e-14)
    k[:] = 100.0                               # the operator holds a copy
    np.testing.assert_allclose(D.apply(u), M @ u, rtol=1e-14)
    for bad, msg in ((-np.ones(5), "> 0"), (np.ones(4), "shape"), (np.full(5, np.nan), "NaN")):
        with pytest.raises(InvalidProblemError, match=f"^kappa:.*{msg}"):
            D.kappa = bad
    np.testing.assert_allclose(D.apply(u), M @ u, rtol=1e-14)
    V = js.Advection(g, (1.0,), scheme="central")
    vel = np.linspace(-1.0, 1.0, 5)[None]
    V.velocity = vel
    Mv, _ = dense(g, "advection", vel=vel, scheme="central")
    np.testing.assert_allclose(V.apply(u), Mv @ u, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(V.T.apply(u), Mv.T @ u, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(V.to_csr().toarray(), Mv, rtol=1e-14, atol=1e-14)
    with pytest.raises(InvalidProblemError, match="^velocity:"):
        V.velocity = np.ones((2, 5))


def test_boundary_data_mean_what_the_docstrings_say():
    # a linear harmonic field: the second-order ghost extrapolation is exact for it, so
    # solving with its face values (Dirichlet array) or its outward normal derivatives
    # (Neumann array) returns it at the cell centres to rounding
    g0 = js.Grid((5, 4), extent=((0, 2), (-1, 0.5)))
    (x0, x1), (y0, y1) = g0.extent
    x, y = g0.cell_centers()

    def exact(x, y):
        return 1.0 + 2.0 * x - 3.0 * y

    V = np.full((7, 6), 1e9)                   # corners are ignored
    V[0, 1:-1], V[-1, 1:-1] = exact(x0, y), exact(x1, y)
    V[1:-1, 0], V[1:-1, -1] = exact(x, y0), exact(x, y1)
    g = js.Grid(g0.shape, extent=g0.extent, bc=js.Dirichlet(V))
    X, Y = g.mesh()
    assert X.shape == g.shape and X[1, 0] == x[1] and Y[0, 1] == y[1]
    for A in (js.Laplacian(g), js.Diffusion(g, 3.0)):
        u = spla.spsolve(A.to_csr().tocsc(), -A.boundary_term().ravel()).reshape(g.shape)
        np.testing.assert_allclose(u, exact(X, Y), atol=1e-12)
    Q = np.zeros((7, 6))
    Q[0, 1:-1], Q[-1, 1:-1], Q[1:-1, 0], Q[1:-1, -1] = -2.0, 2.0, 3.0, -3.0
    L = js.Laplacian(js.Grid(g0.shape, extent=g0.extent, bc=js.Neumann(Q)))
    np.testing.assert_allclose(L.apply(exact(X, Y)) + L.boundary_term(), 0.0, atol=1e-12)
    # central advection of the same field with constant velocity: -v . grad u exactly
    Av = js.Advection(g, (0.5, -2.0), scheme="central")
    np.testing.assert_allclose(Av.apply(exact(X, Y)) + Av.boundary_term(),
                               -(0.5 * 2.0 + (-2.0) * (-3.0)), atol=1e-12)


def test_as_linear_operator_with_scipy_krylov():
    rng = np.random.default_rng(4)
    g = js.Grid((7, 5), extent=((0, 1), (0, 3)),
                bc=[js.Dirichlet(0.0), (js.Neumann(), js.Dirichlet(0.0))])
    L = js.Laplacian(g)
    f = rng.standard_normal(g.size)
    x, info = spla.cg((-L).as_linear_operator(), f, rtol=1e-12, atol=0.0)
    assert info == 0
    np.testing.assert_allclose(-(L.to_csr() @ x), f, atol=1e-9)
    B = js.Identity(g) - 0.01 * js.Advection(g, (1.0, -0.5))
    x, info = spla.gmres(B.as_linear_operator(), f, rtol=1e-12, atol=0.0)
    assert info == 0
    M = B.to_csr()
    np.testing.assert_allclose(M @ x, f, atol=1e-9)
    op = B.as_linear_operator()
    assert op.shape == (35, 35) and op.matvec(f.reshape(-1, 1)).shape == (35, 1)
    np.testing.assert_allclose(op.rmatvec(f), M.T @ f, atol=1e-13)
    np.testing.assert_allclose(op.H.matvec(f), M.T @ f, atol=1e-13)


def test_read_only_or_aliased_outputs_are_refused_before_any_kernel_runs():
    # a read-only out= of Advection.param_vjp reached Numba (a TypingError, no name)
    g = js.Grid((4, 3))
    V = js.Advection(g, (1.0, 0.5))
    u = np.ones(g.shape)
    ro = np.zeros((2,) + g.shape)
    ro.setflags(write=False)
    with pytest.raises(InvalidProblemError, match="^out: expected a writeable"):
        V.param_vjp(u, u, out=ro)
    for op in (V, V.T, 2.0 * V, js.Identity(g) - V, V + js.Laplacian(g)):
        w = np.arange(12.0).reshape(g.shape)
        with pytest.raises(InvalidProblemError, match="^out:.*overlap"):
            op.apply(w, out=w.ravel())
        np.testing.assert_array_equal(w, np.arange(12.0).reshape(g.shape))


def test_one_axis_low_high_pair_without_the_list_gets_a_hint():
    with pytest.raises(InvalidProblemError, match=r"^bc: .*bc=\[\(low, high\)\]"):
        js.Grid((8,), bc=(js.Dirichlet(1.0), js.Neumann()))
    g = js.Grid((8,), bc=[(js.Dirichlet(1.0), js.Neumann())])
    assert g.bcs == ((js.Dirichlet(1.0), js.Neumann()),)
