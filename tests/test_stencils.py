"""Stencil operators against NumPy references, their transposes, coefficient VJPs,
sparse assembly and boundary terms, in 1D/2D/3D for every boundary condition."""

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jitsolve as js
import reference as ref

BCS = {
    "dirichlet0": lambda: js.Dirichlet(0.0),
    "dirichlet": lambda: js.Dirichlet(1.5),
    "neumann0": lambda: js.Neumann(),
    "neumann": lambda: js.Neumann(-0.7),
    "periodic": lambda: js.Periodic(),
}
SHAPES = [(17,), (9, 7), (5, 6, 4)]


def _grid(shape, bc, extent=None):
    if extent is None:
        extent = [(0.0, 1.0 + 0.3 * a) for a in range(len(shape))]
    return js.Grid(shape, extent=extent, bc=bc)


def _make(kind, g, rng, scheme="upwind"):
    if kind == "laplacian":
        return js.Laplacian(g), lambda u: ref.laplacian(u, g)
    if kind == "diffusion":
        kappa = 0.5 + rng.random(g.shape)
        return js.Diffusion(g, kappa), lambda u: ref.diffusion(u, kappa, g)
    vel = rng.uniform(0.2, 1.0, (g.ndim,) + g.shape) * rng.choice([-1.0, 1.0], size=(g.ndim, 1) + (1,) * (g.ndim - 1))
    return js.Advection(g, vel, scheme), lambda u: ref.advection(u, vel, g, scheme)


KINDS = [("laplacian", "upwind"), ("diffusion", "upwind"), ("advection", "upwind"), ("advection", "central")]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("bcname", list(BCS))
@pytest.mark.parametrize("kind,scheme", KINDS, ids=[f"{k}-{s}" for k, s in KINDS])
def test_operator_matches_reference(kind, scheme, bcname, shape, rng):
    g = _grid(shape, BCS[bcname]())
    A, reference = _make(kind, g, rng, scheme)
    u = rng.standard_normal(g.shape)
    full = A.apply(u) + A.boundary_term()
    expect = reference(u)
    np.testing.assert_allclose(full, expect, rtol=1e-12, atol=1e-12 * np.abs(expect).max())
    assert np.all(np.isfinite(full))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("bcname", list(BCS))
@pytest.mark.parametrize("kind,scheme", KINDS, ids=[f"{k}-{s}" for k, s in KINDS])
def test_linear_part_and_csr(kind, scheme, bcname, shape, rng):
    g = _grid(shape, BCS[bcname]())
    A, reference = _make(kind, g, rng, scheme)
    u = rng.standard_normal(g.shape)
    Au = A.apply(u)
    # linear part = affine reference minus its value at u = 0
    expect = reference(u) - reference(np.zeros(g.shape))
    np.testing.assert_allclose(Au, expect, rtol=1e-12, atol=1e-11 * np.abs(expect).max())
    M = A.to_csr()
    np.testing.assert_allclose(M @ u.ravel(), Au.ravel(), rtol=1e-12, atol=1e-12 * np.abs(Au).max())
    np.testing.assert_allclose(A.diagonal().ravel(), M.diagonal(), rtol=1e-13, atol=0)
    np.testing.assert_allclose(A.boundary_term(), reference(np.zeros(g.shape)), rtol=1e-12,
                               atol=1e-13 * max(1.0, np.abs(expect).max()))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("bcname", list(BCS))
@pytest.mark.parametrize("kind,scheme", KINDS, ids=[f"{k}-{s}" for k, s in KINDS])
def test_dot_product_transpose(kind, scheme, bcname, shape, rng):
    g = _grid(shape, BCS[bcname]())
    A, _ = _make(kind, g, rng, scheme)
    u = rng.standard_normal(g.shape)
    v = rng.standard_normal(g.shape)
    lhs = np.vdot(A.apply(u), v)
    rhs = np.vdot(u, A.T.apply(v))
    scale = np.linalg.norm(A.apply(u)) * np.linalg.norm(v)
    assert abs(lhs - rhs) <= 1e-12 * scale
    # the transpose is its own matrix-free kernel; check it against the assembled matrix too
    np.testing.assert_allclose(A.T.apply(v).ravel(), A.to_csr().T @ v.ravel(), rtol=1e-12,
                               atol=1e-12 * np.abs(A.T.apply(v)).max())


def _central_difference(J, x, d, eps):
    return (J(x + eps * d) - J(x - eps * d)) / (2 * eps)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("bcname", list(BCS))
def test_diffusion_param_vjp(bcname, shape, rng):
    g = _grid(shape, BCS[bcname]())
    kappa = 0.5 + rng.random(g.shape)
    u = rng.standard_normal(g.shape)
    lam = rng.standard_normal(g.shape)
    d = rng.standard_normal(g.shape)

    def J(k):
        D = js.Diffusion(g, k)
        return np.vdot(lam, D.apply(u) + D.boundary_term())

    grad = js.Diffusion(g, kappa).param_vjp(u, lam)
    fd = _central_difference(J, kappa, d, 1e-6)
    assert abs(np.vdot(grad, d) - fd) <= 1e-7 * max(1.0, abs(fd))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("bcname", list(BCS))
@pytest.mark.parametrize("scheme", ["upwind", "central"])
def test_advection_param_vjp(scheme, bcname, shape, rng):
    g = _grid(shape, BCS[bcname]())
    signs = rng.choice([-1.0, 1.0], size=(g.ndim,) + (1,) * g.ndim)
    vel = signs * rng.uniform(0.3, 1.0, (g.ndim,) + g.shape)
    u = rng.standard_normal(g.shape)
    lam = rng.standard_normal(g.shape)
    d = rng.standard_normal(vel.shape)

    def J(v):
        A = js.Advection(g, v, scheme)
        return np.vdot(lam, A.apply(u) + A.boundary_term())

    grad = js.Advection(g, vel, scheme).param_vjp(u, lam)
    assert grad.shape == vel.shape
    fd = _central_difference(J, vel, d, 1e-7)   # piecewise linear in v: exact away from v_f = 0
    assert abs(np.vdot(grad, d) - fd) <= 1e-7 * max(1.0, abs(fd))


@pytest.mark.parametrize("bcname", ["dirichlet0", "periodic", "neumann0"])
@pytest.mark.parametrize("shape", [(6, 5, 7), (9, 8), (13,)], ids=lambda s: f"{len(s)}d")
def test_upwind_advection_reads_only_upwind_values(shape, bcname, rng):
    """A non-finite value reaches exactly the cells whose row of the assembled matrix
    weights it: upwind, a cell downwind of a face never multiplies it by a zero weight."""
    g = _grid(shape, BCS[bcname]())
    vel = rng.uniform(-1.0, 1.0, (g.ndim,) + g.shape)
    A = js.Advection(g, vel, "upwind")
    column = A.to_csr().tocsc()
    for k in rng.choice(g.size, size=4, replace=False):
        u = rng.standard_normal(g.size)
        u[k] = np.nan
        reached = np.isnan(A.apply(u))
        weights = column[:, k].toarray().ravel() != 0.0
        np.testing.assert_array_equal(reached, weights)


@pytest.mark.parametrize("shape", [(16, 8, 32), (64, 64), (5,)], ids=lambda s: f"{len(s)}d")
def test_advection_velocity_components_are_staggered(shape, rng):
    """The velocity's components are stored a page and a cache line apart, never at
    offsets equal modulo a power of two of 4 KiB or more; values and results unchanged."""
    g = js.Grid(shape, bc=js.Periodic())
    vel = rng.uniform(-1.0, 1.0, (g.ndim,) + g.shape)
    A = js.Advection(g, vel, "upwind")
    np.testing.assert_array_equal(A.velocity, vel)
    assert all(A.velocity[a].flags.c_contiguous for a in range(g.ndim))
    starts = [A.velocity[a].ctypes.data for a in range(g.ndim)]
    for a in range(1, g.ndim):
        assert (starts[a] - starts[a - 1]) % 4096 == 64
    B = js.Advection(g, tuple(0.5 + a for a in range(g.ndim)), "upwind")   # constant: broadcast
    np.testing.assert_array_equal(B.velocity, np.broadcast_to(
        (0.5 + np.arange(g.ndim)).reshape((-1,) + (1,) * g.ndim), (g.ndim,) + g.shape))
    u = rng.standard_normal(g.shape)
    np.testing.assert_allclose(A.apply(u).ravel(), A.to_csr() @ u.ravel(), rtol=1e-13,
                               atol=1e-13 * np.abs(u).max())


@pytest.mark.parametrize("scheme", ["upwind", "central"])
@pytest.mark.parametrize("bcname", list(BCS))
@pytest.mark.parametrize("shape", [(150, 7), (131, 16), (200, 3)])
def test_2d_velocity_vjp_carried_rows_equal_per_cell_terms(shape, bcname, scheme, rng):
    """On 2-D grids the velocity VJP forms each face's term once for the two rows it joins
    (rows carried within a chunk, more rows than chunks here); the 3-D kernel forms them
    per cell.  The same field on a one-cell-thick 3-D grid gives the same bits."""
    from jitsolve.kernels.cpu.stencil import VJP_CHUNKS
    assert shape[0] > 2 * VJP_CHUNKS
    g2 = _grid(shape, BCS[bcname]())
    g3 = js.Grid((1,) + shape, extent=[(0.0, 0.5)] + [(0.0, 1.0 + 0.3 * a) for a in range(2)],
                 bc=BCS[bcname]())
    vel = rng.uniform(-1.0, 1.0, (2,) + shape)
    vel[:, ::7] = np.round(vel[:, ::7])          # some faces with v_f = 0
    u = rng.standard_normal(shape)
    lam = rng.standard_normal(shape)
    grad2 = js.Advection(g2, vel, scheme).param_vjp(u, lam)
    vel3 = np.concatenate([rng.uniform(-1.0, 1.0, (1, 1) + shape), vel[:, None]])
    grad3 = js.Advection(g3, vel3, scheme).param_vjp(u[None], lam[None])
    np.testing.assert_array_equal(grad2, grad3[1:, 0])


def test_laplacian_converges_second_order():
    """The 2D Dirichlet Laplacian of sin(pi x) sin(pi y) converges at O(h^2) in the interior."""
    errs = []
    for n in (16, 32, 64):
        g = js.Grid((n, n), bc=js.Dirichlet(0.0))
        x, y = g.mesh()
        u = np.sin(np.pi * x) * np.sin(np.pi * y)
        e = js.Laplacian(g).apply(u) + 2 * np.pi ** 2 * u
        errs.append(np.abs(e[n // 4:-n // 4, n // 4:-n // 4]).max())
    slopes = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(slopes - 2.0) < 0.1), slopes


def test_mixed_boundaries_per_side(rng):
    g = js.Grid((6, 5), extent=((0, 2), (0, 1)),
                bc=[(js.Dirichlet(1.0), js.Neumann(0.5)), js.Periodic()])
    kappa = 0.5 + rng.random(g.shape)
    u = rng.standard_normal(g.shape)
    D = js.Diffusion(g, kappa)
    np.testing.assert_allclose(D.apply(u) + D.boundary_term(), ref.diffusion(u, kappa, g), rtol=1e-12)
    np.testing.assert_allclose(D.to_csr() @ u.ravel(), D.apply(u).ravel(), rtol=1e-12, atol=1e-12)


def test_dirichlet_array_values(rng):
    g = js.Grid((5, 4))
    frame = rng.standard_normal((7, 6))
    g = js.Grid((5, 4), bc=js.Dirichlet(frame))
    L = js.Laplacian(g)
    u = rng.standard_normal(g.shape)
    np.testing.assert_allclose(L.apply(u) + L.boundary_term(), ref.laplacian(u, g), rtol=1e-12)


def test_boundary_array_values_1d(rng):
    # padded 1-D data: entry 0 is the left face, entry -1 the right one; h = 1/4
    data = np.array([3.0, 9.0, 9.0, 9.0, 9.0, -2.0])
    g = js.Grid((4,), bc=[(js.Dirichlet(data), js.Neumann(data))])
    kappa = np.array([1.0, 2.0, 3.0, 4.0])
    # Dirichlet: 2 g / h^2 (times kappa); Neumann: q / h (times kappa)
    np.testing.assert_array_equal(js.Laplacian(g).boundary_term(), [96.0, 0.0, 0.0, -8.0])
    np.testing.assert_array_equal(js.Diffusion(g, kappa).boundary_term(), [96.0, 0.0, 0.0, -32.0])
    np.testing.assert_array_equal((-2.0 * js.Laplacian(g)).boundary_term(), [-192.0, 0.0, 0.0, 16.0])
    u = rng.standard_normal(g.shape)
    L = js.Laplacian(g)
    np.testing.assert_allclose(L.apply(u) + L.boundary_term(), ref.laplacian(u, g), rtol=1e-12)
    # an array of one value is the number
    for bc in (js.Dirichlet, js.Neumann):
        a, c = js.Grid((4,), bc=bc(np.full(6, 1.5))), js.Grid((4,), bc=bc(1.5))
        np.testing.assert_array_equal(js.Diffusion(a, kappa).boundary_term(),
                                      js.Diffusion(c, kappa).boundary_term())
        np.testing.assert_array_equal(js.Diffusion(a, kappa).param_vjp(u, u),
                                      js.Diffusion(c, kappa).param_vjp(u, u))


def test_operator_algebra(rng):
    g = js.Grid((7, 6), bc=js.Dirichlet(0.3))
    L = js.Laplacian(g)
    A = js.Advection(g, (0.4, -0.8), "central")
    u = rng.standard_normal(g.shape)
    v = rng.standard_normal(g.shape)
    combos = {
        "neg": (-L, -L.apply(u)),
        "scale": (2.5 * A, 2.5 * A.apply(u)),
        "rscale": (A * 2.5, 2.5 * A.apply(u)),
        "sum": (L + A, L.apply(u) + A.apply(u)),
        "diff": (L - A, L.apply(u) - A.apply(u)),
        "nested": (0.5 * (L - 2.0 * A), 0.5 * (L.apply(u) - 2.0 * A.apply(u))),
    }
    for name, (op, expect) in combos.items():
        np.testing.assert_allclose(op.apply(u), expect, rtol=1e-13, atol=1e-10, err_msg=name)
        M = op.to_csr()
        np.testing.assert_allclose(M @ u.ravel(), expect.ravel(), rtol=1e-12, atol=1e-10, err_msg=name)
        np.testing.assert_allclose(op.diagonal().ravel(), M.diagonal(), rtol=1e-13, atol=1e-12, err_msg=name)
        lhs, rhs = np.vdot(op.apply(u), v), np.vdot(u, op.T.apply(v))
        assert abs(lhs - rhs) <= 1e-12 * np.linalg.norm(op.apply(u)) * np.linalg.norm(v), name
    np.testing.assert_allclose((L - A).boundary_term(), L.boundary_term() - A.boundary_term())
    np.testing.assert_allclose((-L).T.apply(u), -L.apply(u))


def test_param_vjp_through_algebra(rng):
    g = js.Grid((6, 6))
    kappa = 0.5 + rng.random(g.shape)
    D = js.Diffusion(g, kappa)
    L = js.Laplacian(g)
    u, lam = rng.standard_normal(g.shape), rng.standard_normal(g.shape)
    np.testing.assert_allclose((-D).param_vjp(u, lam), -D.param_vjp(u, lam))
    np.testing.assert_allclose((L + 3.0 * D).param_vjp(u, lam), 3.0 * D.param_vjp(u, lam))
    with pytest.raises(js.errors.InvalidProblemError, match="param_vjp"):
        L.param_vjp(u, lam)
    with pytest.raises(js.errors.InvalidProblemError, match="param_vjps"):
        (D + D).param_vjp(u, lam)
    assert len((D + D).param_vjps(u, lam)) == 2


def test_flat_input_and_out_argument(rng):
    g = js.Grid((8, 5))
    L = js.Laplacian(g)
    u = rng.standard_normal(g.shape)
    out = np.empty(g.size)
    r = L.apply(u.ravel(), out=out)
    assert r is out and r.shape == (g.size,)
    np.testing.assert_allclose(out, L.apply(u).ravel())
    np.testing.assert_allclose(L @ u, L.apply(u))


@pytest.mark.parametrize("dtype", [np.float32, np.complex128, np.complex64])
def test_other_dtypes(dtype, rng):
    g = js.Grid((9, 8), bc=js.Neumann())
    D = js.Diffusion(g, 0.5 + rng.random(g.shape))
    u = rng.standard_normal(g.shape).astype(dtype)
    if np.iscomplexobj(u):
        u = u + 1j * rng.standard_normal(g.shape).astype(dtype)
    out = D.apply(u)
    assert out.dtype == dtype
    expect = D.to_csr() @ u.ravel().astype(np.complex128 if np.iscomplexobj(u) else np.float64)
    tol = 1e-5 if dtype in (np.float32, np.complex64) else 1e-12
    np.testing.assert_allclose(out.ravel(), expect, rtol=tol, atol=tol * np.abs(expect).max())


def test_linear_operator(rng):
    g = js.Grid((6, 7), bc=js.Periodic())
    A = js.Advection(g, (1.0, 0.5))
    op = A.as_linear_operator()
    u, v = rng.standard_normal(g.size), rng.standard_normal(g.size)
    np.testing.assert_allclose(op.matvec(u), A.apply(u))
    np.testing.assert_allclose(op.rmatvec(v), A.T.apply(v))
    assert op.shape == (g.size, g.size)


# ------------------------------------------------------------------- property tests
_bc_strategy = st.sampled_from(list(BCS))


@st.composite
def grids(draw):
    nd = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 6 if nd == 3 else 9)) for _ in range(nd))
    extent = []
    for _ in range(nd):
        lo = draw(st.floats(-5, 5))
        width = draw(st.floats(0.05, 20))
        extent.append((lo, lo + width))
    bcs = []
    for _ in range(nd):
        lo, hi = draw(_bc_strategy), draw(_bc_strategy)
        if "periodic" in (lo, hi):
            lo = hi = "periodic"
        bcs.append((BCS[lo](), BCS[hi]()))
    return js.Grid(shape, extent=extent, bc=bcs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(g=grids(), seed=st.integers(0, 2**31 - 1),
       kind=st.sampled_from(["laplacian", "diffusion", "advection-upwind", "advection-central"]))
def test_property_operators(g, seed, kind):
    rng = np.random.default_rng(seed)
    name, _, scheme = kind.partition("-")
    h = min(g.spacing)
    if name == "diffusion":
        kappa = np.exp(rng.uniform(-3, 3, g.shape))
        A, reference = js.Diffusion(g, kappa), (lambda u: ref.diffusion(u, kappa, g))
        coef = kappa.max() / h ** 2
    elif name == "laplacian":
        A, reference = js.Laplacian(g), (lambda u: ref.laplacian(u, g))
        coef = 1.0 / h ** 2
    else:
        vel = rng.uniform(-2, 2, (g.ndim,) + g.shape)
        A, reference = js.Advection(g, vel, scheme), (lambda u: ref.advection(u, vel, g, scheme))
        coef = np.abs(vel).max() / h
    u = rng.standard_normal(g.shape)
    v = rng.standard_normal(g.shape)
    Au = A.apply(u)
    full = reference(u)
    scale = max(np.abs(full).max(), np.abs(Au).max(), 1.0)
    np.testing.assert_allclose(Au + A.boundary_term(), full, rtol=1e-11, atol=1e-11 * scale)
    M = A.to_csr()
    np.testing.assert_allclose(M @ u.ravel(), Au.ravel(), rtol=1e-11, atol=1e-11 * scale)
    lhs, rhs = np.vdot(Au, v), np.vdot(u, A.T.apply(v))
    # scale of both sides: <|A| |u|, |v|>; where the stencil's terms cancel (central on 2
    # periodic cells: to_csr sums them to exact zeros, the apply kernel leaves ~1e-18)
    # the size of those terms, max |coefficient| / h^k, sets it (a wrong transpose is off
    # by that size, not by 1e-12 of it)
    rounding = (np.vdot(abs(M) @ np.abs(u).ravel(), np.abs(v).ravel())
                + coef * np.abs(u).sum() * np.abs(v).max())
    assert abs(lhs - rhs) <= 1e-12 * rounding


@settings(max_examples=30, deadline=None)
@given(g=grids(), seed=st.integers(0, 2**31 - 1))
def test_property_diffusion_vjp(g, seed):
    rng = np.random.default_rng(seed)
    kappa = np.exp(rng.uniform(-1, 1, g.shape))
    u, lam, d = (rng.standard_normal(g.shape) for _ in range(3))

    def J(k):
        D = js.Diffusion(g, k)
        return np.vdot(lam, D.apply(u) + D.boundary_term())

    grad = js.Diffusion(g, kappa).param_vjp(u, lam)
    eps = 1e-6
    fd = (J(kappa + eps * d) - J(kappa - eps * d)) / (2 * eps)
    scale = max(1.0, abs(fd), np.abs(grad).sum() * np.abs(d).max())
    assert abs(np.vdot(grad, d) - fd) <= 1e-6 * scale


def test_param_vjp_out_argument(rng):
    g = js.Grid((6, 5), bc=js.Dirichlet(0.5))
    D = js.Diffusion(g, 0.5 + rng.random(g.shape))
    A = js.Advection(g, rng.uniform(0.2, 1, (2,) + g.shape))
    u, lam = rng.standard_normal(g.shape), rng.standard_normal(g.shape)
    buf = np.full(g.shape, np.nan)
    assert D.param_vjp(u, lam, out=buf) is buf
    np.testing.assert_array_equal(buf, D.param_vjp(u, lam))
    gbuf = np.full((2,) + g.shape, np.nan)
    assert A.param_vjp(u, lam, out=gbuf) is gbuf
    np.testing.assert_array_equal(gbuf, A.param_vjp(u, lam))
    with pytest.raises(js.errors.InvalidProblemError, match="^out:"):
        A.param_vjp(u, lam, out=np.empty(g.shape))


# ------------------------------------------------------------ 2-D row pairs, bit for bit
@functools.lru_cache(maxsize=None)
def _single_row_kernels():
    from numba import njit

    from jitsolve.kernels.cpu.stencil import _dvjp_row, _neighbours, diff_apply_row, lap_apply_row

    @njit
    def lap_rows(u, out, c, per, sgn):
        n0, n1, n2 = u.shape
        for r in range(n0 * n1):
            i0, i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = _neighbours(r, n0, n1, per, sgn)
            lap_apply_row(u[i0, i1], u[a0, i1], u[b0, i1], u[i0, a1], u[i0, b1], out[i0, i1], n2,
                          s0, t0, s1, t1, per, sgn, c)

    @njit
    def diff_rows(u, k, out, c, per, sgn):
        n0, n1, n2 = u.shape
        for r in range(n0 * n1):
            i0, i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = _neighbours(r, n0, n1, per, sgn)
            diff_apply_row(u[i0, i1], k[i0, i1], u[a0, i1], u[b0, i1], k[a0, i1], k[b0, i1],
                           u[i0, a1], u[i0, b1], k[i0, a1], k[i0, b1], out[i0, i1], n2,
                           s0, t0, s1, t1, per, sgn, c)

    @njit
    def dvjp_rows(u, lam, k, out, c, per, sgn):
        n0, n1, n2 = u.shape
        for r in range(n0 * n1):
            i0, i1, a0, s0, g0, b0, t0, h0, a1, s1, g1, b1, t1, h1 = \
                _neighbours(r, n0, n1, per, sgn)
            _dvjp_row(u[i0, i1], lam[i0, i1], k[i0, i1], u[a0, i1], u[b0, i1], lam[a0, i1],
                      lam[b0, i1], k[a0, i1], k[b0, i1], u[i0, a1], u[i0, b1], lam[i0, a1],
                      lam[i0, b1], k[i0, a1], k[i0, b1], out[i0, i1], n2,
                      (s0, t0, g0, h0, s1, t1, g1, h1), per[2], sgn[2, 0], sgn[2, 1],
                      c[0], c[1], c[2], c[0] != 0.0)

    return lap_rows, diff_rows, dvjp_rows


@pytest.mark.parametrize("shape", [(1, 5), (2, 6), (3, 1), (4, 9), (7, 8), (10, 33), (3, 512),
                                   (259, 5)])
@pytest.mark.parametrize("bcname", list(BCS) + ["mixed"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_2d_row_pairs_equal_single_rows(shape, bcname, dtype, rng):
    """The 2-D apply kernels take the rows in pairs (each row the other's neighbour, the
    face between them averaged once): the same bits as one row at a time, the kernels'
    row helpers (also used by the fused CG and stage kernels)."""
    from jitsolve.kernels.cpu.stencil import diffusion_apply, diffusion_param_vjp, laplacian_apply

    lap_rows, diff_rows, dvjp_rows = _single_row_kernels()
    if bcname == "mixed":
        bc = [(js.Dirichlet(0.3), js.Neumann()), (js.Periodic(), js.Periodic())]
    else:
        bc = BCS[bcname]()
    g = _grid(shape, bc)
    L = js.Laplacian(g)
    D = js.Diffusion(g, np.exp(rng.uniform(-2, 2, shape)))
    u = rng.standard_normal((1,) + shape).astype(dtype)
    if np.iscomplexobj(u):
        u = u + 1j * rng.standard_normal(u.shape)
    for kernel, ref_rows, op, extra in ((laplacian_apply, lap_rows, L, ()),
                                        (diffusion_apply, diff_rows, D, (D._k3,))):
        got = np.full_like(u, np.nan)
        want = np.full_like(u, np.nan)
        kernel(u, *extra, got, op._c, op._per, op._sgn)
        ref_rows(u, *extra, want, op._c, op._per, op._sgn)
        assert np.array_equal(got, want), (type(op).__name__, shape, bcname)
        assert np.all(np.isfinite(got))
    if dtype is np.float32:
        # float32 coefficients: the pairs' buffers keep the arithmetic's float64 (a float32
        # buffer rounded the harmonic means: 2e-9..4e-8 off the row helper before)
        k32 = D._k3.astype(np.float32)
        got = np.full_like(u, np.nan)
        want = np.full_like(u, np.nan)
        diffusion_apply(u, k32, got, D._c, D._per, D._sgn)
        diff_rows(u, k32, want, D._c, D._per, D._sgn)
        assert np.array_equal(got, want), ("float32 kappa", shape, bcname)
    if dtype is np.float64:   # the coefficient VJP (single rows) is real only
        lam = rng.standard_normal(u.shape)
        got = np.full_like(lam, np.nan)
        want = np.full_like(lam, np.nan)
        diffusion_param_vjp(u, lam, D._k3, got, D._c, D._per, D._sgn)
        dvjp_rows(u, lam, D._k3, want, D._c, D._per, D._sgn)
        assert np.array_equal(got, want), ("param_vjp", shape, bcname)
        assert np.all(np.isfinite(got))


# ------------------------------------------------- shared harmonic faces, bit for bit
def _bc3(bcname):
    """A 3-D grid's boundary conditions: one kind everywhere, or periodic / Dirichlet and
    Neumann / periodic ("mixed")."""
    if bcname == "mixed":
        return [(js.Periodic(), js.Periodic()), (js.Dirichlet(0.3), js.Neumann()),
                (js.Periodic(), js.Periodic())]
    return BCS[bcname]()


@pytest.mark.parametrize("shape", [(2, 3, 5), (5, 6, 4), (9, 33, 7), (3, 70, 17), (40, 3, 4),
                                   (1, 4, 6), (17, 1, 9)])
@pytest.mark.parametrize("bcname", list(BCS) + ["mixed"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_3d_shared_faces_equal_single_rows(shape, bcname, dtype, rng):
    """The 3-D Diffusion apply evaluates every face's harmonic mean and flux term once
    (bands of ``DIFF_BAND`` rows, the terms below a row carried from the row before it
    and from the plane before): the same bits as the row helper that evaluates each
    cell's own faces, across band edges (70 rows: three bands), chunk starts, boundaries
    and periodic wrap; for a ``float32`` u too (the carried terms keep the arithmetic's
    float64, as the row helper's sums do)."""
    from jitsolve.kernels.cpu.stencil import diffusion_apply

    _lap_rows, diff_rows, _dvjp_rows = _single_row_kernels()
    g = _grid(shape, _bc3(bcname))
    D = js.Diffusion(g, np.exp(rng.uniform(-2, 2, shape)))
    assert D._c[0] != 0.0
    u = rng.standard_normal(shape).astype(dtype)
    if np.iscomplexobj(u):
        u = u + 1j * rng.standard_normal(shape)
    got = np.full_like(u, np.nan)
    want = np.full_like(u, np.nan)
    diffusion_apply(u, D._k3, got, D._c, D._per, D._sgn)
    diff_rows(u, D._k3, want, D._c, D._per, D._sgn)
    assert np.array_equal(got, want), (shape, bcname)
    assert np.all(np.isfinite(got))


@pytest.mark.parametrize("shape", [(2, 3, 5), (5, 6, 4), (9, 33, 7), (3, 70, 17), (2, 2, 1),
                                   (1, 4, 6), (17, 1, 9)])
@pytest.mark.parametrize("bcname", list(BCS) + ["mixed"])
def test_3d_vjp_shared_faces_match_single_rows(shape, bcname, rng):
    """The 3-D coefficient VJP forms each face's quotient once for both its cells: the
    per-cell row helper's values to rounding (a few ulps of the largest entry), across
    band edges, chunk starts, boundaries and periodic wrap."""
    from jitsolve.kernels.cpu.stencil import diffusion_apply, diffusion_param_vjp

    _lap_rows, _diff_rows, dvjp_rows = _single_row_kernels()
    g = _grid(shape, _bc3(bcname))
    D = js.Diffusion(g, np.exp(rng.uniform(-2, 2, shape)))
    u = rng.standard_normal(shape)
    lam = rng.standard_normal(shape)
    got = np.full_like(u, np.nan)
    want = np.full_like(u, np.nan)
    diffusion_param_vjp(u, lam, D._k3, got, D._c, D._per, D._sgn)
    dvjp_rows(u, lam, D._k3, want, D._c, D._per, D._sgn)
    assert np.all(np.isfinite(got))
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 8 * np.finfo(float).eps * scale, (shape, bcname)
    # the derivative of the kernel's own apply: <got, d> = d/de <lam, D(k + e d) u>
    d = rng.standard_normal(shape)

    def J(k):
        out = np.empty_like(u)
        diffusion_apply(u, k, out, D._c, D._per, D._sgn)
        return np.vdot(lam, out)

    fd = _central_difference(J, D._k3, d, 1e-6)
    assert abs(np.vdot(got, d) - fd) <= 1e-7 * max(1.0, abs(fd))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.tuples(st.integers(1, 7), st.integers(1, 40), st.integers(1, 9)),
       per=st.tuples(st.booleans(), st.booleans(), st.booleans()),
       signs=st.lists(st.sampled_from([-1.0, 1.0]), min_size=6, max_size=6),
       c=st.tuples(st.floats(0.1, 10), st.floats(0.0, 10), st.floats(0.0, 10)),
       seed=st.integers(0, 2**31 - 1))
def test_property_shared_face_kernels(n, per, signs, c, seed):
    """Each of the Diffusion apply's kernels (2-D pairs with shared faces, 3-D bands)
    gives the row helper's bits on arbitrary shapes, periodic axes, ghost signs and axis
    weights; the 2-D pairs with each cell's faces (the kernel for grids above
    ``DIFF_SHARED_2D`` cells: one division for a cell's two faces along the contiguous
    axis) its values to rounding."""
    from jitsolve.kernels.cpu import stencil as S

    _lap_rows, diff_rows, _dvjp_rows = _single_row_kernels()
    r = np.random.default_rng(seed)
    per = np.array(per, dtype=np.int64)    # the library's type (bool compiled every kernel again)
    sgn = np.array(signs).reshape(3, 2)
    k3 = np.exp(r.uniform(-3, 3, n))
    u3 = r.standard_normal(n)
    cases = [(S._diffusion_apply_bands, u3, k3, np.array(c))]
    c2d = np.array([0.0, c[1], c[2]])
    for kernel in (S._diffusion_apply_pairs, S._diffusion_apply_cells_2d):
        cases.append((kernel, u3[:1], k3[:1], c2d))
    for kernel, u, k, cc in cases:
        got = np.full_like(u, np.nan)
        want = np.full_like(u, np.nan)
        kernel(u, k, got, cc, per, sgn)
        diff_rows(u, k, want, cc, per, sgn)
        if kernel is S._diffusion_apply_cells_2d:
            scale = np.abs(cc).max() * np.abs(k).max() * np.abs(u).max()
            assert np.abs(got - want).max() <= 1e-14 * scale, (n, per, sgn, cc)
        else:
            assert np.array_equal(got, want), (kernel.__name__, n, per, sgn, cc)


@pytest.mark.parametrize("bcname", list(BCS))
@pytest.mark.parametrize("shape", [(10, 37), (151, 9)])
def test_large_2d_diffusion_divides_once_for_two_faces(bcname, shape, rng):
    """The large-grid 2-D Diffusion kernel (``_diffusion_apply_cells_2d``): the row
    helper's values to rounding (one division for a cell's two faces along the
    contiguous axis; the faces between rows carried from pair to pair, across chunks of
    ``DIFF_CELLS_CHUNK`` pairs on 151 rows, an odd last row), symmetric to rounding (the
    dot-product test), and row pairs whose coefficients leave the range of that division
    (1e150, 1e-150: the product of two sums would overflow or underflow) formed again
    face by face -- the row helper's bits there, finite; float32 coefficients face by
    face throughout."""
    from jitsolve.kernels.cpu import stencil as S

    assert shape[0] == 10 or shape[0] > 2 * 2 * S.DIFF_CELLS_CHUNK
    _lap_rows, diff_rows, _dvjp_rows = _single_row_kernels()
    g = _grid(shape, BCS[bcname]())
    D = js.Diffusion(g, np.exp(rng.uniform(-3, 3, g.shape)))
    u3, v3 = rng.standard_normal((2, 1) + shape)
    k3, c, per, sgn = D._k3, D._c, D._per, D._sgn
    du, dv, want = np.empty_like(u3), np.empty_like(u3), np.empty_like(u3)
    S._diffusion_apply_cells_2d(u3, k3, du, c, per, sgn)
    S._diffusion_apply_cells_2d(v3, k3, dv, c, per, sgn)
    diff_rows(u3, k3, want, c, per, sgn)
    assert not np.array_equal(du, want)            # the one-division faces ran
    assert np.abs(du - want).max() <= 1e-13 * np.abs(want).max()
    lhs, rhs = np.vdot(v3, du), np.vdot(dv, u3)
    assert abs(lhs - rhs) <= 1e-13 * np.linalg.norm(du) * np.linalg.norm(v3)
    # rows 2-3 (one pair) huge, rows 6-7 tiny: those pairs are formed face by face
    k = k3.copy()
    k[0, 2:4] *= 1e150
    k[0, 6:8] *= 1e-150
    got = np.empty_like(u3)
    S._diffusion_apply_cells_2d(u3, k, got, c, per, sgn)
    diff_rows(u3, k, want, c, per, sgn)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got[0, 2:4], want[0, 2:4])
    np.testing.assert_array_equal(got[0, 6:8], want[0, 6:8])
    ok = np.r_[0:2, 4:6, 8:shape[0]]
    assert np.abs(got[0, ok] - want[0, ok]).max() <= 1e-13 * np.abs(want[0, ok]).max()
    # float32 coefficients (whose products would leave float32's range far sooner): the
    # harmonic means one by one, the row helper's bits
    u32, k32 = u3.astype(np.float32), k3.astype(np.float32)
    got, want = np.empty_like(u32), np.empty_like(u32)
    S._diffusion_apply_cells_2d(u32, k32, got, c, per, sgn)
    diff_rows(u32, k32, want, c, per, sgn)
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------ streaming stores
@pytest.mark.parametrize("shape", [(300,), (1, 5), (3, 1), (7, 8), (10, 33), (3, 512), (37, 53),
                                   (2, 3, 5), (9, 33, 7), (17, 1, 9)])
@pytest.mark.parametrize("bcname", list(BCS) + ["mixed"])
@pytest.mark.parametrize("shift", [0, 1, 3, 7])
def test_streamed_laplacian_equals_the_plain_apply(shape, bcname, shift, rng):
    """``laplacian_apply_stream`` (rows formed in buffers, whole 64-byte lines written by
    non-temporal stores) gives ``laplacian_apply``'s bits, whatever the output's
    alignment (``shift`` entries into a buffer) and the grid's shape."""
    from jitsolve.kernels.cpu.stencil import laplacian_apply, laplacian_apply_stream

    if bcname == "mixed":
        bc = ([(js.Dirichlet(0.3), js.Neumann())] + [(js.Periodic(), js.Periodic())] * 2)
        bc = bc[:len(shape)]
    else:
        bc = BCS[bcname]()
    L = js.Laplacian(_grid(shape, bc))
    shape3 = (1,) * (3 - len(shape)) + shape
    u = rng.standard_normal(shape3)
    want = np.full(shape3, np.nan)
    laplacian_apply(u, want, L._c, L._per, L._sgn)
    base = np.full(u.size + 16, np.nan)
    got = base[shift:shift + u.size].reshape(shape3)
    laplacian_apply_stream(u, got, L._c, L._per, L._sgn)
    assert np.array_equal(got, want)
    assert np.isnan(base[:shift]).all() and np.isnan(base[shift + u.size:]).all()


def test_large_laplacian_outputs_are_streamed(monkeypatch, rng):
    """``Laplacian.apply`` streams float64 outputs of at least ``STREAM_MIN_BYTES`` on
    1-D and 2-D grids (on x86-64) and writes smaller ones, other dtypes, 3-D grids and
    other operators plainly: the same values either way."""
    from jitsolve.kernels.cpu import ntstore
    from jitsolve.kernels.cpu import stencil as S

    calls = []
    real = S.laplacian_apply_stream
    monkeypatch.setattr(S, "laplacian_apply_stream", lambda *a: (calls.append(1), real(*a)))
    g = js.Grid((48, 40))
    L = js.Laplacian(g)
    u = rng.standard_normal(g.shape)
    plain = L.apply(u)
    assert calls == []
    monkeypatch.setattr(ntstore, "STREAM_MIN_BYTES", u.nbytes)
    assert np.array_equal(L.apply(u), plain)
    assert calls == ([1] if ntstore.HAVE_STREAM else [])
    calls.clear()
    L.apply(u.astype(np.float32))
    (2.0 * L).apply(u)
    js.Diffusion(g, np.ones(g.shape)).apply(u)
    js.Laplacian(js.Grid((8, 6, 40))).apply(u.reshape(8, 6, 40))
    assert calls == ([1] if ntstore.HAVE_STREAM else [])   # the scaled operator's leaf only


# ------------------------------------------------------------ 3-D row order (tiles)
@settings(max_examples=80, deadline=None)
@given(n0=st.integers(1, 40), n1=st.integers(1, 70), tp=st.integers(1, 50))
def test_tiled_row_order_is_a_permutation(n0, n1, tp):
    """``_tiled_row`` visits every row of an ``n0 x n1`` grid of rows exactly once, tile
    by tile (``tp`` planes x 1 row, planes in order within a tile), for tiles larger or
    smaller than the grid and a partial last block."""
    from jitsolve.kernels.cpu.stencil import _tiled_row

    order = [_tiled_row(q, n0, n1, tp) for q in range(n0 * n1)]
    assert sorted(order) == list(range(n0 * n1))
    tp_ = min(tp, n0)
    want = [i0 * n1 + i1
            for p in range(0, n0, tp_) for i1 in range(n1)
            for i0 in range(p, min(p + tp_, n0))]
    assert order == want


def test_tiled_row_is_the_identity_on_one_plane():
    from jitsolve.kernels.cpu.stencil import LAP_TILE, _tiled_row

    for tp in (LAP_TILE, 1, 3, 1 << 30):
        assert [_tiled_row(q, 1, 37, tp) for q in range(37)] == list(range(37))


def test_laplacian_tile_follows_the_cpu(monkeypatch):
    """The 3-D Laplacian's row order is chosen per CPU (plane after plane on AMD Zen,
    tiles of 8 planes elsewhere), from the CPU name Numba compiles for: a cached kernel
    is keyed on that name, so the order compiled in matches it."""
    from numba.core import config

    from jitsolve.kernels.cpu import stencil as S

    assert S.lap_tile("znver4") == S.lap_tile("znver3") == 1
    assert S.lap_tile("sapphirerapids") == S.lap_tile("skylake-avx512") == 8
    assert S.LAP_TILE == S.lap_tile(S._codegen_cpu())
    monkeypatch.setattr(config, "CPU_NAME", "znver2")
    assert S._codegen_cpu() == "znver2"
    # whichever order this CPU takes, the kernel gives the rows' bits in any tile size
    g = js.Grid((11, 6, 9), bc=js.Dirichlet(0.3))
    L = js.Laplacian(g)
    u = np.random.default_rng(5).standard_normal(g.shape)
    got = np.empty_like(u)
    S.laplacian_apply(u, got, L._c, L._per, L._sgn)
    lap_rows, _, _ = _single_row_kernels()
    want = np.empty_like(u)
    lap_rows(u, want, L._c, L._per, L._sgn)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("shape", [(19, 70, 5), (8, 32, 3), (17, 33, 6), (9, 65, 2)])
@pytest.mark.parametrize("bcname", list(BCS))
@pytest.mark.parametrize("kind,scheme", KINDS, ids=[f"{k}-{s}" for k, s in KINDS])
def test_operators_over_several_tiles(kind, scheme, bcname, shape, rng):
    """The operators against the NumPy references and the dot-product test on 3-D grids
    of several tiles of the Laplacian's row order (8 planes x 1 row) with a partial
    last one, and of several bands of the Diffusion kernels (32 rows)."""
    g = _grid(shape, BCS[bcname]())
    A, reference = _make(kind, g, rng, scheme)
    u = rng.standard_normal(g.shape)
    v = rng.standard_normal(g.shape)
    full = A.apply(u) + A.boundary_term()
    expect = reference(u)
    np.testing.assert_allclose(full, expect, rtol=1e-12, atol=1e-12 * np.abs(expect).max())
    lhs = np.vdot(v, A.apply(u))
    rhs = np.vdot(A.T.apply(v), u)
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), np.linalg.norm(u) * np.linalg.norm(v))
