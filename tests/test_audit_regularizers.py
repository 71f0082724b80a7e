"""Audit of the regularizers (js.Tikhonov, js.TotalVariation and their use in js.fit)
and of js.check_gradient's Taylor test: values and gradients against independent NumPy
references and central differences, Tikhonov fits against the normal equations, TV
with a grid's (anisotropic, periodic) spacing, no NaN or overflow for extreme eps, and
check_gradient's verdicts on right and wrong gradients (ODE, SDE on a fixed seed,
linear wrt b and kappa, ensemble, a loss with a large constant part)."""
import numpy as np
import pytest
import scipy.optimize as so

import jitsolve as js
from jitsolve.errors import InvalidProblemError


def tv_reference(x, alpha, eps, h=None, periodic=None):
    """alpha * V * sum_cells sqrt(eps^2 + sum_k ((x[i + e_k] - x[i]) / h_k)^2), the last
    difference 0 (or wrapping on a periodic axis)."""
    h = (1.0,) * x.ndim if h is None else h
    periodic = periodic or (False,) * x.ndim
    sq = np.full(x.shape, eps ** 2)
    for ax in range(x.ndim):
        d = np.zeros_like(x)
        n = x.shape[ax]
        for i in range(n):
            j = (i + 1) % n if periodic[ax] else min(i + 1, n - 1)
            d[(slice(None),) * ax + (i,)] = (x[(slice(None),) * ax + (j,)]
                                            - x[(slice(None),) * ax + (i,)]) / h[ax]
        sq += d * d
    vol = float(np.prod(h))
    return alpha * vol * float(np.sqrt(sq).sum())


def central(fun, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (fun(xp) - fun(xm)) / (2 * h)
    return g


@pytest.mark.parametrize("shape", [(7,), (5, 4), (3, 4, 5)])
def test_total_variation_value_and_gradient_against_numpy(shape):
    x = np.random.default_rng(1).standard_normal(shape)
    for eps in (1e-3, 0.3):
        v, g = js.TotalVariation(0.7, eps=eps)(x)
        assert v == pytest.approx(tv_reference(x, 0.7, eps), rel=1e-14)
        np.testing.assert_allclose(g, central(lambda y: tv_reference(y, 0.7, eps), x),
                                   rtol=0, atol=1e-7)


def test_total_variation_with_a_grid_spacing_anisotropic_and_periodic():
    x = np.random.default_rng(2).standard_normal((5, 4))
    h = (0.25, 2.0 / 3.0)
    for spacing, periodic in [(h, None), (0.4, None)]:
        v, g = js.TotalVariation(1.3, eps=0.05, spacing=spacing)(x)
        hh = spacing if isinstance(spacing, tuple) else (spacing, spacing)
        ref = lambda y: tv_reference(y, 1.3, 0.05, hh)  # noqa: E731
        assert v == pytest.approx(ref(x), rel=1e-14)
        np.testing.assert_allclose(g, central(ref, x), rtol=0, atol=1e-7)
    grid = js.Grid((5, 4), extent=((0, 1.25), (0, 8.0 / 3.0)),
                   bc=[js.Periodic(), js.Neumann()])
    assert grid.spacing == pytest.approx(h, rel=1e-15)
    tv = js.TotalVariation(1.3, eps=0.05, spacing=grid)
    ref = lambda y: tv_reference(y, 1.3, 0.05, grid.spacing, (True, False))  # noqa: E731
    v, g = tv(x)
    assert v == pytest.approx(ref(x), rel=1e-14)
    np.testing.assert_allclose(g, central(ref, x), rtol=0, atol=1e-7)
    vf, gf = tv(x.ravel())                         # flattened: the grid's shape is used
    assert vf == v and gf.shape == (20,) and np.array_equal(gf, g.ravel())
    # resolution independent: a linear ramp of slope 2 on [0, 2] has TV ~ 2 * 2 on any grid
    for n in (8, 64):
        gr = js.Grid((n,), extent=((0, 2),))
        val, _ = js.TotalVariation(1.0, eps=1e-9, spacing=gr)(2.0 * (np.arange(n) + 0.5) * 2 / n)
        assert val == pytest.approx(4.0 * (n - 1) / n, rel=1e-9)
    with pytest.raises(InvalidProblemError, match=r"^spacing: the grid has shape \(5, 4\)"):
        tv(np.zeros((4, 4)))
    with pytest.raises(InvalidProblemError, match=r"^spacing: 2 step\(s\) given, but x has 3"):
        js.TotalVariation(1.0, spacing=(1.0, 2.0))(np.zeros((2, 2, 2)))
    for bad in (0.0, -1.0, np.nan, "a", [1.0, -2.0], [[1.0]], []):
        with pytest.raises(InvalidProblemError, match="^spacing: "):
            js.TotalVariation(1.0, spacing=bad)


def test_total_variation_flat_fields_and_extreme_eps_stay_finite():
    # a flat field: value alpha * eps * size, gradient exactly 0 (no 0/0)
    for shape in [(5,), (3, 3), (2, 2, 2)]:
        v, g = js.TotalVariation(2.0, eps=1e-3)(np.ones(shape))
        assert v == pytest.approx(2e-3 * np.prod(shape), rel=1e-14)
        assert np.array_equal(g, np.zeros(shape))
    # eps^2 underflowed to 0 (NaN gradient) and overflowed (OverflowError) before
    v, g = js.TotalVariation(1.0, eps=1e-300)(np.ones(4))
    assert v == pytest.approx(4e-300, rel=1e-12) and np.array_equal(g, np.zeros(4))
    v, g = js.TotalVariation(1.0, eps=1e-170)(np.array([0.0, 1e-170, 0.0, 0.0]))
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [-2 ** -0.5, 2 ** 0.5, -2 ** -0.5, 0.0], rtol=1e-12)
    v, g = js.TotalVariation(1.0, eps=1e200)(np.array([0.0, 1.0, 0.0, 0.0]))
    assert v == pytest.approx(4e200, rel=1e-12)
    np.testing.assert_allclose(g, [-1e-200, 2e-200, -1e-200, 0.0], rtol=1e-12)
    v, g = js.TotalVariation(1.0)(np.array([0.0, 1e200, 0.0, 0.0]))
    assert v == pytest.approx(2e200, rel=1e-12)
    np.testing.assert_allclose(g, [-1.0, 2.0, -1.0, 0.0], rtol=1e-12)


def test_regularizers_refuse_bad_input_naming_it():
    for cls in (js.Tikhonov, js.TotalVariation):
        for bad, msg in [(-1.0, "must be >= 0"), (np.nan, "must be finite"),
                         (np.inf, "must be finite"), (np.ones(2), "expected a real number"),
                         (True, "expected a real number"), ("1", "expected a real number")]:
            with pytest.raises(InvalidProblemError, match=f"^alpha: {msg}"):
                cls(bad)
        for x in (np.array([1.0 + 1.0j]), np.array([True]), "abc"):
            with pytest.raises(InvalidProblemError, match="^x: expected a real array"):
                cls(1.0)(x)
        v, g = cls(0.0)(np.array([2.0, -1.0]))
        assert v == 0.0 and not np.any(g)
    for eps in (0.0, -1.0, np.nan):
        with pytest.raises(InvalidProblemError, match="^eps: "):
            js.TotalVariation(1.0, eps=eps)
    with pytest.raises(InvalidProblemError, match="^x_ref: contains NaN"):
        js.Tikhonov(1.0, x_ref=np.array([np.nan, 1.0]))
    assert repr(js.Tikhonov(0.5)) == "Tikhonov(0.5)"
    assert repr(js.TotalVariation(2.0, eps=0.1)) == "TotalVariation(2.0, eps=0.1)"


def test_tikhonov_value_and_gradient_with_a_reference():
    rng = np.random.default_rng(3)
    x, xr = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    v, g = js.Tikhonov(0.3, x_ref=xr)(x)
    assert v == pytest.approx(0.15 * np.sum((x - xr) ** 2), rel=1e-14)
    np.testing.assert_allclose(g, 0.3 * (x - xr), rtol=1e-15)
    v, g = js.Tikhonov(0.3, x_ref=2.0)(x)
    assert v == pytest.approx(0.15 * np.sum((x - 2.0) ** 2), rel=1e-14)


def test_tikhonov_fit_matches_the_normal_equations():
    rng = np.random.default_rng(4)
    n = 5
    B = rng.standard_normal((n, n))
    A = B @ B.T + n * np.eye(n)
    d = rng.standard_normal(n)
    M = np.linalg.inv(A)                     # u = M b
    prob = js.LinearProblem(A, np.ones(n))
    for alpha, ref in [(0.05, None), (0.05, rng.standard_normal(n)), (2.0, 3.0)]:
        res = js.fit(prob, js.Direct(), js.L2Loss(None, d), np.ones(n), wrt="b",
                     regularizer=js.Tikhonov(alpha, x_ref=ref), progress=False, maxiter=500,
                     options={"ftol": 1e-15, "gtol": 1e-12})
        r = np.broadcast_to(0.0 if ref is None else ref, (n,))
        b = np.linalg.solve(M.T @ M + alpha * np.eye(n), M.T @ d + alpha * r)
        J = 0.5 * np.sum((M @ b - d) ** 2) + 0.5 * alpha * np.sum((b - r) ** 2)
        assert res.success
        np.testing.assert_allclose(res.p, b, rtol=0, atol=1e-7 * np.abs(b).max())
        assert res.loss == pytest.approx(J, rel=1e-12)


def lin3(du, u, p, t):
    du[0] = -1.0 * u[0] + 0.5 * u[1]
    du[1] = 0.2 * u[0] - 0.7 * u[1] + 0.3 * u[2]
    du[2] = 0.1 * u[1] - 0.4 * u[2]


def test_tikhonov_fit_of_a_linear_ode_matches_the_normal_equations():
    """u(t_i) = G u0 (RK4, fixed steps: linear in u0), so min 0.5 |G u0 - d|^2 +
    0.5 alpha |u0 - r|^2 solves (G^T G + alpha I) u0 = G^T d + alpha r."""
    T = np.array([0.5, 1.0, 2.0])
    kw = dict(dt=0.125, adaptive=False)
    G = np.column_stack([js.solve(js.ODEProblem(lin3, e, (0.0, 2.0)), js.RK4(), saveat=T,
                                  **kw).u.ravel() for e in np.eye(3)])
    data = np.random.default_rng(5).standard_normal((3, 3))
    prob = js.ODEProblem(lin3, np.ones(3), (0.0, 2.0))
    ref, alpha = np.array([0.5, -1.0, 2.0]), 0.1
    u0 = np.linalg.solve(G.T @ G + alpha * np.eye(3), G.T @ data.ravel() + alpha * ref)
    for method, tol in (("least_squares", 1e-12), ("BFGS", 1e-7)):
        res = js.fit(prob, js.RK4(), js.L2Loss(T, data), np.zeros(3), wrt="u0",
                     method=method, regularizer=js.Tikhonov(alpha, x_ref=ref),
                     progress=False, maxiter=300, **kw)
        assert res.success
        np.testing.assert_allclose(res.p, u0, rtol=0, atol=tol)
    # joint fit: one regularizer per block, the same optimum for u0 with p held
    # (a p that does not enter f) -- the regularizer of p pulls it to its x_ref exactly
    res = js.fit(js.ODEProblem(lin3, np.ones(3), (0.0, 2.0), np.array([0.0])), js.RK4(),
                 js.L2Loss(T, data), (np.array([1.0]), np.zeros(3)), wrt=("p", "u0"),
                 regularizer=(js.Tikhonov(1.0, x_ref=np.array([0.25])),
                              js.Tikhonov(alpha, x_ref=ref)),
                 method="least_squares", progress=False, **kw)
    np.testing.assert_allclose(res.p[0], [0.25], atol=1e-12)
    np.testing.assert_allclose(res.p[1], u0, atol=1e-12)


def test_fit_checks_the_regularizer_shapes_before_solving():
    prob = js.ODEProblem(lin3, np.ones(3), (0.0, 1.0))
    loss = js.L2Loss(np.array([1.0]), np.zeros((1, 3)))
    for method in ("L-BFGS-B", "least_squares"):     # least_squares: a numpy ValueError
        with pytest.raises(InvalidProblemError, match=r"^x_ref: expected the shape of x \(3,\)"):
            js.fit(prob, js.RK4(), loss, np.ones(3), wrt="u0", method=method, dt=0.1,
                   regularizer=js.Tikhonov(1.0, x_ref=np.ones(2)), progress=False)
    with pytest.raises(InvalidProblemError, match=r"^spacing: the grid has shape \(4,\)"):
        js.fit(prob, js.RK4(), loss, np.ones(3), wrt="u0", dt=0.1, progress=False,
               regularizer=js.TotalVariation(1.0, spacing=js.Grid((4,))))


def test_total_variation_fit_matches_an_independent_minimisation():
    """Denoising: min 0.5 |b - d|^2 + TV(b) (A = I), against scipy on the NumPy TV."""
    rng = np.random.default_rng(6)
    n = 10
    d = np.repeat([0.0, 1.0], n // 2) + 0.1 * rng.standard_normal(n)
    tv = js.TotalVariation(0.3, eps=0.05, spacing=0.5)

    def obj(x):
        return 0.5 * np.sum((x - d) ** 2) + tv_reference(x, 0.3, 0.05, (0.5,))
    ref = so.minimize(obj, np.zeros(n), method="BFGS", options={"gtol": 1e-10})
    res = js.fit(js.LinearProblem(np.eye(n), np.zeros(n)), js.Direct(), js.L2Loss(None, d),
                 np.zeros(n), wrt="b", regularizer=tv, progress=False, maxiter=500,
                 options={"ftol": 1e-15, "gtol": 1e-11})
    assert res.success
    np.testing.assert_allclose(res.p, ref.x, atol=2e-6)
    assert res.loss == pytest.approx(obj(ref.x), rel=1e-9)


# ---------------------------------------------------------------- check_gradient

def two(du, u, p, t):
    du[0] = -p[0] * u[0] + p[1] * u[1]
    du[1] = p[1] * u[0] * u[1] - p[0] * u[1]


def nl_g(gu, u, p, t):
    gu[0] = p[2] * np.sin(u[0]) * u[1]
    gu[1] = p[2] * u[1] / (1.0 + u[0] * u[0])


T2 = np.array([0.5, 1.0])
D2 = np.ones((2, 2))


def scaled(f, data=D2, t=T2):
    """0.5 |u - data|^2 whose gradient is multiplied by f (f = 1: right)."""
    return js.Loss(lambda u: 0.5 * float(np.sum((u - data) ** 2)),
                   lambda u: f * (u - data), t_data=t)


def verdicts(*args, **kw):
    return [js.check_gradient(*args[:2], scaled(f), *args[2:], verbose=False, **kw)["passed"]
            for f in (1.0, 1.1, 0.0)]


def test_check_gradient_right_and_wrong_ode_and_sde():
    prob = js.ODEProblem(two, np.array([1.0, 0.5]), (0.0, 1.0), np.array([1.3, 0.4]))
    rep = js.check_gradient(prob, js.Tsit5(), scaled(1.0), wrt="u0", verbose=False,
                            rtol=1e-10, atol=1e-12)
    assert rep["passed"] and abs(rep["order"] - 2.0) < 0.05
    for wrt in ("p", "u0"):
        assert verdicts(prob, js.Tsit5(), wrt, rtol=1e-10, atol=1e-12) == [True, False, False]
    sde = js.SDEProblem(two, nl_g, np.array([1.0, 0.7]), (0.0, 1.0), np.array([1.1, 0.6, 0.3]))
    assert verdicts(sde, js.EM(), "p", dt=2.0 ** -6) == [True, False, False]
    # seed is the Brownian path's too: the report's J is that of js.gradient(seed=5)
    v5, _ = js.gradient(sde, js.EM(), scaled(1.0), wrt="p", dt=2.0 ** -6, seed=5)
    v0, _ = js.gradient(sde, js.EM(), scaled(1.0), wrt="p", dt=2.0 ** -6, seed=0)
    rep = js.check_gradient(sde, js.EM(), scaled(1.0), wrt="p", dt=2.0 ** -6, seed=5,
                            verbose=False)
    assert rep["value"] == v5 != v0 and rep["passed"]


def test_check_gradient_right_and_wrong_linear_and_ensemble():
    n = 6
    B = np.random.default_rng(0).standard_normal((n, n))
    lp = js.LinearProblem(B @ B.T + n * np.eye(n), np.ones(n))
    for f, ok in ((1.0, True), (1.1, False), (2.0, False)):
        loss = js.Loss(lambda u: 0.5 * float(u @ u), lambda u, f=f: f * u)
        rep = js.check_gradient(lp, js.Direct(), loss, wrt="b", verbose=False)
        assert rep["passed"] is ok, (f, rep)
        assert (abs(rep["order"] - 2.0) < 1e-3) if ok else rep["order"] < 1.2
    g = js.Grid(shape=(8,))
    kp = js.LinearProblem(-js.Diffusion(g, 1.0 + np.linspace(0, 1, 8)), np.ones(8))
    for f, ok in ((1.0, True), (1.1, False)):
        loss = js.Loss(lambda u: 0.5 * float(np.sum(u * u)), lambda u, f=f: f * u)
        assert js.check_gradient(kp, js.CG(), loss, wrt="kappa", verbose=False,
                                 rtol=1e-12)["passed"] is ok
    ens = js.EnsembleProblem(js.ODEProblem(two, np.array([1.0, 0.5]), (0.0, 1.0),
                                           np.array([1.3, 0.4])),
                             u0s=np.array([[1.0, 0.5], [0.8, 0.9]]))
    kw = dict(dt=0.05, adaptive=False)
    for wrt in ("p", "u0"):
        assert verdicts(ens, js.RK4(), wrt, **kw) == [True, False, False]


def test_check_gradient_on_a_loss_with_a_large_constant_part():
    """Every remainder below 1e-12 |J| (J ~ 1e12): a zero or scaled gradient passed."""
    prob = js.LinearProblem(np.eye(4), np.ones(4))
    out = {}
    for f in (1.0, 0.0, 2.0, 1.1):
        loss = js.Loss(lambda u: 1e12 + 0.5 * float(np.sum(u * u)), lambda u, f=f: f * u)
        out[f] = js.check_gradient(prob, js.Direct(), loss, wrt="b", verbose=False)
    assert out[1.0]["passed"]
    for f in (0.0, 2.0, 1.1):
        assert not out[f]["passed"] and "first order" in out[f]["hint"]
        assert np.all(out[f]["remainder"] < 1.0)       # all below the old 1e-12 |J| rule
    # a nearly quadratic loss whose remainder is all round-off: still passes
    far = js.L2Loss(None, np.full(4, 1e6))
    rep = js.check_gradient(prob, js.Direct(), far, wrt="b", verbose=False)
    assert rep["passed"] and rep["value"] > 1e12


def test_check_gradient_arguments_and_printing(capsys):
    prob = js.LinearProblem(np.diag([2.0, 3.0]), np.ones(2))
    loss = js.L2Loss(None, np.zeros(2))
    rep = js.check_gradient(prob, js.Direct(), loss, wrt="b", eps=[1e-3, 1e-1, 1e-2],
                            verbose=False)
    assert rep["eps"].tolist() == [1e-1, 1e-2, 1e-3]         # sorted, largest first
    np.testing.assert_allclose(rep["rates"], [2.0, 2.0], rtol=1e-6)
    assert set(rep) == {"eps", "remainder", "order", "rates", "passed", "value", "hint"}
    assert capsys.readouterr().out == ""
    js.check_gradient(prob, js.Direct(), loss, wrt="b")
    assert "PASSED" in capsys.readouterr().out
    for kw, msg in [(dict(eps="a"), "^eps: expected at least two"),
                    (dict(eps=[1e-2, "x"]), "^eps: expected at least two"),
                    (dict(eps=[1e-2, 1e-2]), "^eps: the step sizes must be distinct"),
                    (dict(eps=[1e-2]), "^eps: expected at least two"),
                    (dict(seed=-1), "^seed: expected a non-negative integer"),
                    (dict(seed=1.5), "^seed: expected a non-negative integer"),
                    (dict(seed=None), "^seed: expected a non-negative integer"),
                    (dict(verbose="yes"), "^verbose: expected True or False")]:
        with pytest.raises(InvalidProblemError, match=msg):
            js.check_gradient(prob, js.Direct(), loss, wrt="b", **{"verbose": False, **kw})
