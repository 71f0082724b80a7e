"""Regression tests from the audit of the linear/fit layer: ``check_gradient`` and
finite differences with respect to ``kappa`` of ODE problems, the validation of
``fit``'s options, regularisers and log file, zero right-hand sides of the Krylov
solvers and user preconditioners, LinearOperators and callbacks that raise or return
complex values."""
import warnings

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import jitsolve as js


def _heat(scale, level):
    g = js.Grid((6, 6), bc=js.Dirichlet(0.0))
    rng = np.random.default_rng(0)
    kappa = level * (1 + 0.3 * rng.random(g.shape))
    x, y = g.mesh()
    u0 = np.sin(np.pi * x) * np.sin(np.pi * y)
    t1 = 1e-3 / level
    prob = js.ODEProblem(scale * js.Diffusion(g, kappa), u0, (0.0, t1))
    loss = js.L2Loss(np.array([t1]), 0.5 * u0[None])
    return prob, loss, dict(dt=t1 / 20, adaptive=False)


@pytest.mark.parametrize("scale, level", [(0.5, 1.0), (1.0, 100.0)])
def test_check_gradient_kappa_ode_scaled_and_large(scale, level):
    prob, loss, kw = _heat(scale, level)
    rep = js.check_gradient(prob, js.RK4(), loss, wrt="kappa", verbose=False, **kw)
    assert rep["passed"] and abs(rep["order"] - 2) < 0.2, rep


def test_finite_difference_kappa_of_a_scaled_operator():
    prob, loss, kw = _heat(0.5, 1.0)
    _, adj = js.gradient(prob, js.RK4(), loss, wrt="kappa", **kw)
    _, fd = js.gradient(prob, js.RK4(), loss, wrt="kappa", sensealg=js.FiniteDifference(), **kw)
    np.testing.assert_allclose(fd["kappa"], adj["kappa"], rtol=1e-5, atol=1e-8 * np.abs(adj["kappa"]).max())


# ----------------------------------------------------------------- fit options and log
def _fit_problem():
    # u = A^-1 b; the loss wants u = 1, so the optimum is b = (2, 4, 5)
    return js.LinearProblem(np.diag([2.0, 4.0, 5.0]), np.ones(3)), js.L2Loss(None, np.ones(3))


def _fit(**kw):
    prob, loss = _fit_problem()
    return js.fit(prob, js.Direct(), loss, np.ones(3), wrt="b", progress=False, **kw)


def test_fit_unwritable_log_fails_before_any_solve():
    calls = []

    def reg(x):
        calls.append(1)
        return 0.0, np.zeros_like(x)
    with pytest.raises(js.errors.InvalidProblemError, match="^log: cannot write an HDF5 file"):
        _fit(log="/nonexistent/dir/fit.h5", regularizer=reg)
    assert calls == []


def test_fit_log_that_fails_at_the_end_keeps_the_result(tmp_path):
    import os
    path = tmp_path / "fit.h5"

    def spoil(x, loss):         # the log path becomes a directory during the fit
        if path.is_file():
            os.remove(path)
            os.mkdir(path)
    with pytest.warns(RuntimeWarning, match="could not write the log"):
        res = _fit(log=str(path), callback=spoil)
    np.testing.assert_allclose(res.p, [2.0, 4.0, 5.0], rtol=1e-5)
    assert res.success and path.is_dir()


@pytest.mark.parametrize("kw, match", [
    (dict(bounds=(1, 2, 3)), r"^bounds: expected a pair \(lo, hi\) or 3 pairs"),
    (dict(bounds=(np.ones(2), 5.0)), r"^bounds: expected \(lo, hi\) with numbers or arrays of p0's shape"),
    (dict(bounds=(10.0, 0.1)), r"^bounds: the lower bound exceeds the upper one at 3 entries"),
    (dict(bounds=(0.0, 5.0), method="BFGS"), r"^bounds: method 'BFGS' ignores bounds"),
    (dict(method="foo"), r"^method: expected one of \['L-BFGS-B', 'BFGS', 'CG', 'SLSQP', "
                         r"'least_squares'\], got 'foo'"),
    (dict(maxiter=0), r"^maxiter: expected an integer >= 1, got 0"),
    (dict(regularizer=3), r"^regularizer: expected js.Tikhonov, js.TotalVariation or a callable"),
    (dict(regularizer=lambda x: 1.0), r"^regularizer: must return \(value, gradient\)"),
    (dict(regularizer=js.Tikhonov(1.0, x_ref=np.ones(2))), r"^x_ref: expected the shape of x \(3,\)"),
], ids=["bounds-len", "bounds-shape", "bounds-order", "bounds-bfgs", "method", "maxiter",
        "regularizer", "regularizer-return", "x_ref"])
def test_fit_bad_options_are_clear_errors(kw, match):
    with pytest.raises(js.errors.InvalidProblemError, match=match):
        _fit(**kw)


def test_regularizer_bad_arguments():
    with pytest.raises(js.errors.InvalidProblemError, match="^alpha: expected a real number, got None"):
        js.Tikhonov(None)
    with pytest.raises(js.errors.InvalidProblemError, match=r"^eps: must be > 0, got 0.0"):
        js.TotalVariation(1.0, eps=0.0)


def test_fit_bounds_as_arrays_and_pairs():
    # optimum (2, 4, 5) clipped to the box
    res = _fit(bounds=(np.zeros(3), np.full(3, 3.0)))
    np.testing.assert_allclose(res.p, [2.0, 3.0, 3.0], rtol=1e-5)
    res = _fit(bounds=[(0.0, 3.0), (0.0, None), (None, 4.5)])
    np.testing.assert_allclose(res.p, [2.0, 4.0, 4.5], rtol=1e-4)


# ----------------------------------------------------------------- zero right-hand side
_SPD = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]])
_KRYLOV = {"CG": lambda: js.CG(), "CG-Jacobi": lambda: js.CG(js.Jacobi()),
           "CG-callable": lambda: js.CG(lambda r: r / np.diag(_SPD)),
           "BiCGSTAB": lambda: js.BiCGSTAB(), "GMRES": lambda: js.GMRES(),
           "GMRES-Jacobi": lambda: js.GMRES(precond=js.Jacobi()),
           "FlexibleCG": lambda: js.FlexibleCG()}


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
@pytest.mark.parametrize("name", list(_KRYLOV))
def test_zero_rhs_with_a_nonzero_x0_returns_zero_at_once(name, dtype):
    # the target rtol ||b|| is 0: without the special case the solve ran to maxiter
    prob = js.LinearProblem(_SPD, np.zeros(3, dtype=dtype), x0=np.array([1.0, -2.0, 3.0], dtype=dtype))
    sol = js.solve(prob, _KRYLOV[name](), maxiter=200)
    assert sol.retcode == js.ReturnCode.Success
    assert sol.iters == 0 and sol.resnorm == 0.0
    assert sol.u.dtype == dtype and sol.u.shape == (3,)
    np.testing.assert_array_equal(sol.u, np.zeros(3))
    np.testing.assert_array_equal(sol.history, [0.0])     # as with x0=None
    ref = js.solve(js.LinearProblem(_SPD, np.zeros(3, dtype=dtype)), _KRYLOV[name]())
    np.testing.assert_array_equal(sol.history, ref.history)


def test_zero_rhs_fused_grid_cg():
    g = js.Grid((8, 8))
    prob = js.LinearProblem(-js.Laplacian(g), np.zeros(g.shape), x0=np.ones(g.shape))
    sol = js.solve(prob, js.CG(), maxiter=500)
    assert sol.retcode == js.ReturnCode.Success and sol.iters == 0 and sol.resnorm == 0.0
    assert sol.u.shape == g.shape and not np.any(sol.u)


@pytest.mark.parametrize("target", [np.zeros(3), np.array([1.0, 2.0, -1.0])],
                         ids=["dJdu-zero", "dJdu-nonzero"])
@pytest.mark.parametrize("name", ["CG", "GMRES", "FlexibleCG"])
def test_gradient_of_a_zero_rhs(name, target):
    # u = 0, J = 1/2 |u - t|^2 (sum), dJ/du = -t, lam = A^-T dJ/du, dJ/db = lam
    prob = js.LinearProblem(_SPD, np.zeros(3), x0=np.ones(3))
    loss = js.L2Loss(None, target)
    val, grads = js.gradient(prob, _KRYLOV[name](), loss, wrt=("b", "A"), rtol=1e-12)
    _, ref = js.gradient(js.LinearProblem(_SPD, np.zeros(3)), js.Direct(), loss, wrt=("b", "A"))
    lam = np.linalg.solve(_SPD.T, loss.grad(np.zeros(3)))
    np.testing.assert_allclose(grads["b"], lam, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads["b"], ref["b"], rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(grads["A"], np.zeros((3, 3)))     # -lam u^T with u = 0
    assert val == pytest.approx(float(loss.value(np.zeros(3))))


# ----------------------------------------------------------------- user preconditioners
def _raising(r):
    raise ValueError("boom")


@pytest.mark.parametrize("alg", ["CG", "FlexibleCG", "BiCGSTAB", "GMRES"])
@pytest.mark.parametrize("kind", ["callable", "LinearOperator"])
def test_raising_preconditioner_is_a_user_function_error(alg, kind):
    if kind == "callable":
        pc, what = _raising, "the callable"
    else:
        pc, what = spla.LinearOperator((3, 3), matvec=_raising, dtype=np.float64), "its matvec"
    algo = js.GMRES(precond=pc) if alg == "GMRES" else getattr(js, alg)(pc)
    with pytest.raises(js.errors.UserFunctionError,
                       match=f"^precond: {what} raised ValueError: boom") as info:
        js.solve(js.LinearProblem(_SPD, np.ones(3)), algo)
    assert isinstance(info.value.__cause__, ValueError) and str(info.value.__cause__) == "boom"


def test_preconditioner_raising_a_jitsolve_error_is_not_wrapped():
    def pc(r):
        raise js.errors.InvalidProblemError("inner: bad")
    with pytest.raises(js.errors.InvalidProblemError, match="^inner: bad$"):
        js.solve(js.LinearProblem(_SPD, np.ones(3)), js.CG(pc))


@pytest.mark.parametrize("alg", ["CG", "FlexibleCG", "BiCGSTAB", "GMRES"])
def test_complex_preconditioner_output_in_a_real_solve_is_refused(alg):
    pc = lambda r: r * (1.0 + 0.5j)    # noqa: E731
    algo = js.GMRES(precond=pc) if alg == "GMRES" else getattr(js, alg)(pc)
    with pytest.raises(js.errors.InvalidProblemError,
                       match=r"^precond: the callable returned complex values \(max \|imag\| 5.000e-01\) "
                             r"in a real solve"):
        js.solve(js.LinearProblem(_SPD, np.array([1.0, 0.0, 0.0])), algo)
    op = spla.LinearOperator((3, 3), matvec=pc, dtype=np.complex128)
    with pytest.raises(js.errors.InvalidProblemError, match="^precond: its matvec returned complex values"):
        js.solve(js.LinearProblem(_SPD, np.ones(3)), js.CG(op))


def test_complex_preconditioner_output_with_zero_imaginary_part_is_accepted():
    d = np.diag(_SPD)
    b = np.array([1.0, 2.0, 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no ComplexWarning from a silent cast
        sol = js.solve(js.LinearProblem(_SPD, b), js.CG(lambda r: (r / d).astype(np.complex128)),
                       rtol=1e-12)
    ref = js.solve(js.LinearProblem(_SPD, b), js.CG(lambda r: r / d), rtol=1e-12)
    assert sol.retcode == js.ReturnCode.Success and sol.u.dtype == np.float64
    np.testing.assert_array_equal(sol.u, ref.u)
    np.testing.assert_allclose(_SPD @ sol.u, b, rtol=1e-11)


# ----------------------------------------------------------------- user LinearOperator A
_ALGS = {"CG": lambda: js.CG(), "FlexibleCG": lambda: js.FlexibleCG(),
         "BiCGSTAB": lambda: js.BiCGSTAB(), "GMRES": lambda: js.GMRES()}


@pytest.mark.parametrize("x0", [None, np.ones(3)], ids=["x0-none", "x0"])
@pytest.mark.parametrize("alg", list(_ALGS))
def test_raising_linear_operator_is_a_user_function_error(alg, x0):
    A = spla.LinearOperator((3, 3), matvec=_raising, dtype=np.float64)
    prob = js.LinearProblem(A, np.ones(3), x0=x0)
    with pytest.raises(js.errors.UserFunctionError,
                       match=r"^A: the LinearOperator's matvec raised ValueError: boom \(the exception "
                             r"is chained\)$") as info:
        js.solve(prob, _ALGS[alg]())
    assert isinstance(info.value.__cause__, ValueError) and str(info.value.__cause__) == "boom"


def test_linear_operator_raising_a_jitsolve_error_is_not_wrapped():
    def mv(x):
        raise js.errors.InvalidProblemError("inner: bad")
    A = spla.LinearOperator((3, 3), matvec=mv, dtype=np.float64)
    with pytest.raises(js.errors.InvalidProblemError, match="^inner: bad$"):
        js.solve(js.LinearProblem(A, np.ones(3)), js.CG())


@pytest.mark.parametrize("alg", list(_ALGS))
def test_complex_linear_operator_output_in_a_real_solve_is_refused(alg):
    # the first matvec is A e1 = (4, 1, 0) times (1 + 0.5j): max |imag| 2
    A = spla.LinearOperator((3, 3), matvec=lambda x: (_SPD @ x) * (1.0 + 0.5j), dtype=np.float64)
    with pytest.raises(js.errors.InvalidProblemError,
                       match=r"^A: the LinearOperator's matvec returned complex values \(max \|imag\| "
                             r"2.000e\+00\) in a real solve"):
        js.solve(js.LinearProblem(A, np.array([1.0, 0.0, 0.0])), _ALGS[alg]())


@pytest.mark.parametrize("alg", list(_ALGS))
def test_complex_linear_operator_output_with_zero_imaginary_part_is_accepted(alg):
    b = np.array([1.0, 2.0, 3.0])
    A = spla.LinearOperator((3, 3), matvec=lambda x: (_SPD @ x).astype(np.complex128), dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no ComplexWarning from a silent cast
        sol = js.solve(js.LinearProblem(A, b), _ALGS[alg](), rtol=1e-12)
    ref = js.solve(js.LinearProblem(_SPD, b), _ALGS[alg](), rtol=1e-12)
    assert sol.retcode == js.ReturnCode.Success and sol.u.dtype == np.float64
    np.testing.assert_array_equal(sol.u, ref.u)
    np.testing.assert_allclose(_SPD @ sol.u, b, rtol=1e-11)


@pytest.mark.parametrize("alg", ["CG", "GMRES"])
@pytest.mark.parametrize("when", ["always", "in-the-adjoint-solve"])
def test_raising_rmatvec_in_gradient_is_a_user_function_error(alg, when):
    # "always": the up-front rmatvec probe of gradient(); otherwise the adjoint solve
    def rmv(x):
        if when == "always" or np.any(x):
            raise ValueError("boom")
        return _SPD.T @ x
    A = spla.LinearOperator((3, 3), matvec=lambda x: _SPD @ x, rmatvec=rmv, dtype=np.float64)
    loss = js.L2Loss(None, np.zeros(3))
    with pytest.raises(js.errors.UserFunctionError,
                       match=r"^A: the LinearOperator's rmatvec raised ValueError: boom") as info:
        js.gradient(js.LinearProblem(A, np.ones(3)), _ALGS[alg](), loss, wrt="b")
    assert isinstance(info.value.__cause__, ValueError) and str(info.value.__cause__) == "boom"


# ----------------------------------------------------------------- user callback
@pytest.mark.parametrize("alg", list(_ALGS) + ["CG-grid"])
def test_raising_callback_is_a_user_function_error(alg):
    seen = []

    def cb(it, x, resnorm):
        seen.append(it)
        if it == 2:
            raise ValueError("boom")
    if alg == "CG-grid":        # the fused stencil CG loop
        g = js.Grid((8, 8))
        prob, algo = js.LinearProblem(-js.Laplacian(g), np.ones(g.shape)), js.CG()
    else:
        prob, algo = js.LinearProblem(_SPD, np.array([1.0, 2.0, 3.0])), _ALGS[alg]()
    with pytest.raises(js.errors.UserFunctionError,
                       match=r"^callback: the callback raised ValueError: boom at iteration 2 "
                             r"\(the exception is chained\)$") as info:
        js.solve(prob, algo, rtol=1e-14, callback=cb)
    assert isinstance(info.value.__cause__, ValueError) and str(info.value.__cause__) == "boom"
    assert seen == [1, 2]


@pytest.mark.parametrize("alg", list(_ALGS))
def test_callback_returning_true_still_terminates(alg):
    seen = []
    sol = js.solve(js.LinearProblem(_SPD, np.array([1.0, 2.0, 3.0])), _ALGS[alg](), rtol=1e-14,
                   callback=lambda it, x, r: seen.append(it) or it >= 1)
    assert sol.retcode == js.ReturnCode.Terminated and sol.iters == 1 and seen == [1]
