"""The API core: problems, validation errors naming the argument, solve's registry,
solutions and their HDF5 round trip."""
import numpy as np
import pytest
from numba import njit

import jitsolve as js
from jitsolve.errors import (BackendUnavailableError, CompileError, FileFormatError,
                             InvalidProblemError, JitsolveError, UnsupportedAlgorithmError)


@njit
def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


def decay(du, u, p, t):            # plain Python: compiled on the way in
    du[0] = -p[0] * u[0]


def sigma(gu, u, p, t):
    gu[0] = 0.1 * u[0]
    gu[1] = 0.1 * u[1]


P = np.array([1.5, 1.0, 3.0, 1.0])


def test_error_hierarchy():
    for cls in (InvalidProblemError, CompileError, BackendUnavailableError,
                UnsupportedAlgorithmError, FileFormatError):
        assert issubclass(cls, JitsolveError)
    assert issubclass(InvalidProblemError, ValueError)


def test_ode_problem_ok():
    prob = js.ODEProblem(lotka, [1.0, 1.0], (0, 10), P)
    assert prob.u0.dtype == np.float64 and prob.tspan == (0.0, 10.0)
    assert isinstance(prob.f, js.ODEFunction)
    du = np.zeros(2)
    prob.f(du, prob.u0, prob.p, 0.0)
    np.testing.assert_allclose(du, [0.5, -2.0])
    prob2 = js.ODEProblem(decay, np.array([2.0]), (1.0, 0.0), [3.0])    # backwards span
    prob2.f(du[:1], prob2.u0, prob2.p, 0.0)
    assert du[0] == -6.0


@pytest.mark.parametrize("kwargs,name", [
    (dict(u0=[1.0, np.nan]), "u0"),
    (dict(u0=[1.0, np.inf]), "u0"),
    (dict(u0=np.array([True, False])), "u0"),
    (dict(u0=["a", "b"]), "u0"),
    (dict(u0=np.zeros(0)), "u0"),
    (dict(tspan=(0.0, 0.0)), "tspan"),
    (dict(tspan=(0.0, np.nan)), "tspan[1]"),
    (dict(tspan=(0.0,)), "tspan"),
    (dict(tspan=5.0), "tspan"),
    (dict(p=np.ones((2, 2))), "p"),
    (dict(p=[1.0, np.nan, 0, 0]), "p"),
])
def test_ode_problem_bad_input(kwargs, name):
    args = dict(f=lotka, u0=[1.0, 1.0], tspan=(0.0, 1.0), p=P)
    args.update(kwargs)
    with pytest.raises(InvalidProblemError) as err:
        js.ODEProblem(args["f"], args["u0"], args["tspan"], args["p"])
    assert str(err.value).startswith(name + ":"), str(err.value)


def test_compile_error_names_function():
    def broken(du, u, p, t):
        du[0] = undefined_name * u[0]   # noqa: F821
    with pytest.raises(CompileError, match="broken"):
        js.ODEProblem(broken, [1.0], (0, 1))

    def uses_python_object(du, u, p, t):
        du[0] = {"a": object()}["a"]
    with pytest.raises(CompileError, match="uses_python_object"):
        js.ODEProblem(uses_python_object, [1.0], (0, 1))


def test_wrong_arity_and_not_callable():
    with pytest.raises(InvalidProblemError, match="^f:.*expected 4"):
        js.ODEProblem(lambda du, u: None, [1.0], (0, 1))
    with pytest.raises(InvalidProblemError, match="^f:"):
        js.ODEProblem(42, [1.0], (0, 1))


def test_ode_function_options():
    with pytest.raises(InvalidProblemError, match="^jac:"):
        js.ODEFunction(lotka, jac=3)
    with pytest.raises(InvalidProblemError, match="^jac_sparsity:"):
        js.ODEFunction(lotka, jac_sparsity=np.ones((2, 3)))
    F = js.ODEFunction(lotka, jac_sparsity=np.eye(2))
    assert F.jac_sparsity.nnz == 2
    assert "jac_sparsity" in repr(F)


def test_ode_problem_with_grid_operator():
    g = js.Grid((8, 8))
    prob = js.ODEProblem(js.Laplacian(g), np.ones(g.shape), (0, 0.1))
    assert prob.f.grid is g
    with pytest.raises(InvalidProblemError, match="^u0:"):
        js.ODEProblem(js.Laplacian(g), np.ones(10), (0, 0.1))


def test_split_problem():
    g = js.Grid((16,), bc=js.Periodic())
    prob = js.SplitODEProblem(js.Laplacian(g), decay, np.ones(16), (0, 1), [1.0])
    assert prob.L.grid.size == 16
    prob = js.SplitODEProblem(-np.ones(16), decay, np.ones(16), (0, 1), [1.0])
    assert prob.L.shape == (16,)
    with pytest.raises(InvalidProblemError, match="^L:"):
        js.SplitODEProblem(np.ones((3, 3)), decay, np.ones(16), (0, 1), [1.0])


def test_sde_problem():
    prob = js.SDEProblem(lotka, sigma, [1.0, 1.0], (0, 1), P)
    assert prob.nbrownian == 2 and prob.noise == "diagonal" and prob.interpretation == "ito"
    with pytest.raises(InvalidProblemError, match="^noise:"):
        js.SDEProblem(lotka, sigma, [1.0, 1.0], (0, 1), P, noise="colored")
    with pytest.raises(InvalidProblemError, match="^interpretation:"):
        js.SDEProblem(lotka, sigma, [1.0, 1.0], (0, 1), P, interpretation="ito2")
    with pytest.raises(InvalidProblemError, match="^nbrownian:"):
        js.SDEProblem(lotka, sigma, [1.0, 1.0], (0, 1), P, noise="general")
    with pytest.raises(InvalidProblemError, match="^nbrownian:"):
        js.SDEProblem(lotka, sigma, [1.0, 1.0], (0, 1), P, noise="scalar", nbrownian=2)

    def gmat(G, u, p, t):
        G[0, 0] = 1.0
        G[1, 2] = u[0]
    prob = js.SDEProblem(lotka, gmat, [1.0, 1.0], (0, 1), P, noise="general", nbrownian=3)
    G = np.zeros((2, 3))
    prob.g(G, prob.u0, prob.p, 0.0)
    assert G[1, 2] == 1.0


def test_linear_problem():
    import scipy.sparse as sp
    from scipy.sparse.linalg import aslinearoperator
    A = np.array([[4.0, 1.0], [1.0, 3.0]])
    for op in (A, sp.csr_matrix(A), aslinearoperator(A)):
        prob = js.LinearProblem(op, [1.0, 2.0])
        assert prob.n == 2
    g = js.Grid((4, 4))
    js.LinearProblem(-js.Laplacian(g), np.ones(g.shape))
    js.LinearProblem(-js.Laplacian(g), np.ones(16), x0=np.zeros(16))
    prob32 = js.LinearProblem(A.astype(np.float32), np.ones(2, np.float32))
    assert prob32.b.dtype == np.float32
    probc = js.LinearProblem(A + 1j, np.ones(2, complex))
    assert probc.b.dtype == np.complex128


@pytest.mark.parametrize("A,b,x0,name", [
    (np.eye(3), np.ones(2), None, "A"),
    (np.ones((2, 3)), np.ones(2), None, "A"),
    (np.eye(2), [1.0, np.nan], None, "b"),
    (np.array([[1.0, np.inf], [0, 1]]), np.ones(2), None, "A"),
    (np.eye(2), np.ones(2), np.ones(3), "x0"),
    ("matrix", np.ones(2), None, "A"),
    (np.eye(2), np.ones((2, 1)), None, "b"),
])
def test_linear_problem_bad(A, b, x0, name):
    with pytest.raises(InvalidProblemError) as err:
        js.LinearProblem(A, b, x0=x0)
    assert str(err.value).startswith(name + ":"), str(err.value)


def test_large_arrays_copied_and_checked_in_one_pass(rng):
    """Right-hand sides of at least ``FUSED_COPY`` float64 entries take the fused copy and
    check: every NaN or Inf still refused with its count, huge finite entries (squares
    that overflow) accepted, the problem's copy independent of the caller's array."""
    from jitsolve.validate import FUSED_COPY
    g = js.Grid((400, 400))
    assert g.size >= FUSED_COPY
    A = -js.Laplacian(g)
    b = rng.standard_normal(g.shape)
    prob = js.LinearProblem(A, b)
    np.testing.assert_array_equal(prob.b, b)
    b[0, 0] = 7.0
    assert prob.b[0, 0] != 7.0
    for bad, where in ((np.nan, (0, 0)), (np.inf, (399, 399)), (-np.inf, (200, 7))):
        c = b.copy()
        c[where] = bad
        c[5, 5] = np.nan
        with pytest.raises(InvalidProblemError, match=r"^b: contains NaN or Inf \(2 of 160000"):
            js.LinearProblem(A, c)
    big = np.full(g.shape, 1e200)
    np.testing.assert_array_equal(js.LinearProblem(A, big).b, big)


def test_linear_problem_grid_shape_mismatch():
    g = js.Grid((4, 4))
    with pytest.raises(InvalidProblemError, match="^b:"):
        js.LinearProblem(js.Laplacian(g), np.ones((4, 5)))


def test_ensemble_problem():
    prob = js.ODEProblem(lotka, [1.0, 1.0], (0, 1), P)
    e = js.EnsembleProblem(prob, u0s=np.ones((5, 2)), ps=np.tile(P, (5, 1)))
    assert e.ntrajectories == 5
    with pytest.raises(InvalidProblemError, match="^u0s:"):
        js.EnsembleProblem(prob, u0s=np.ones((5, 3)))
    with pytest.raises(InvalidProblemError, match="^ps:"):
        js.EnsembleProblem(prob, u0s=np.ones((5, 2)), ps=np.ones((4, 4)))
    with pytest.raises(InvalidProblemError, match="^prob:"):
        js.EnsembleProblem("not a problem")


def test_remake():
    prob = js.ODEProblem(lotka, [1.0, 1.0], (0, 1), P)
    p2 = js.remake(prob, u0=[2.0, 3.0], tspan=(0, 5))
    assert p2.u0.tolist() == [2.0, 3.0] and p2.tspan == (0.0, 5.0) and p2.f is prob.f
    assert prob.u0.tolist() == [1.0, 1.0]
    with pytest.raises(InvalidProblemError, match="^u0:"):
        js.remake(prob, u0=[np.nan, 1.0])
    with pytest.raises(InvalidProblemError, match="^bogus:"):
        js.remake(prob, bogus=1)
    lp = js.remake(js.LinearProblem(np.eye(2), np.ones(2)), b=[3.0, 4.0])
    assert lp.b.tolist() == [3.0, 4.0]
    sp = js.remake(js.SDEProblem(lotka, sigma, [1.0, 1.0], (0, 1), P), tspan=(0, 2))
    assert sp.tspan == (0.0, 2.0)

    def decay_all(du, u, p, t):
        for i in range(u.size):
            du[i] = -u[i]
    sde = js.SDEProblem(decay_all, sigma, [1.0, 1.0], (0, 1))
    bigger = js.remake(sde, u0=[1.0, 2.0, 3.0])          # diagonal noise follows u0
    assert bigger.nbrownian == 3


# ------------------------------------------------------------------- solve & registry
class Toy(js.LinearAlgorithm):
    """A test algorithm: Jacobi-free direct solve through NumPy."""


class ToyChild(Toy):
    pass


@js.register(js.LinearProblem, Toy)
def _toy(prob, alg, rtol, atol, maxiter, callback, backend, progress):
    A = prob.A if isinstance(prob.A, np.ndarray) else prob.A.toarray()
    x = np.linalg.solve(A, prob.b)
    return js.LinearSolution(x, js.ReturnCode.Success, iters=1,
                             resnorm=np.linalg.norm(prob.b - A @ x), alg=repr(alg))


def test_solve_dispatch_and_validation():
    prob = js.LinearProblem(np.array([[2.0, 0], [0, 4.0]]), np.array([2.0, 4.0]))
    sol = js.solve(prob, ToyChild(), rtol=1e-10)     # dispatch walks the algorithm's MRO
    np.testing.assert_allclose(sol.u, [1.0, 1.0])
    assert sol.successful and sol.retcode is js.ReturnCode.Success
    assert ("LinearProblem", "Toy") in js.solve_registry()
    with pytest.raises(InvalidProblemError, match="^rtol:"):
        js.solve(prob, Toy(), rtol=-1)
    with pytest.raises(InvalidProblemError, match="^rtol, atol:"):
        js.solve(prob, Toy(), rtol=0, atol=0)
    with pytest.raises(InvalidProblemError, match="^maxiter:"):
        js.solve(prob, Toy(), maxiter=0)
    with pytest.raises(InvalidProblemError, match="^reltol:"):
        js.solve(prob, Toy(), reltol=1e-3)
    with pytest.raises(InvalidProblemError, match="^alg:.*instance"):
        js.solve(prob, Toy)
    with pytest.raises(InvalidProblemError, match="^backend:"):
        js.solve(prob, Toy(), backend="tpu")
    with pytest.raises(BackendUnavailableError, match="^backend:"):
        js.solve(prob, Toy(), backend="cuda")
    with pytest.raises(InvalidProblemError, match="^prob:"):
        js.solve("prob", Toy())


def test_solve_unregistered_pair():
    class Nothing(js.ODEAlgorithm):
        pass
    prob = js.ODEProblem(lotka, [1.0, 1.0], (0, 1), P)
    with pytest.raises(UnsupportedAlgorithmError, match="ODEProblem with Nothing"):
        js.solve(prob, Nothing())


@pytest.mark.parametrize("opt,value,name", [
    ("dt", -0.1, "dt"), ("dt", np.nan, "dt"), ("rtol", np.inf, "rtol"), ("atol", -1e-3, "atol"),
    ("atol", np.ones(3), "atol"), ("maxiters", 1.5, "maxiters"), ("saveat", -1.0, "saveat"),
    ("saveat", [0.5, 0.2], "saveat"), ("saveat", [0.0, 2.0], "saveat"), ("tstops", [np.nan], "tstops"),
    ("seed", -3, "seed"), ("adaptive", "yes", "adaptive"), ("dtmin", 0.0, "dtmin"),
    ("rtol", 1e-17, "rtol"),
])
def test_de_option_validation(opt, value, name):
    class Nothing(js.ODEAlgorithm):
        pass
    prob = js.ODEProblem(lotka, [1.0, 1.0], (0, 1), P)
    with pytest.raises(InvalidProblemError) as err:
        js.solve(prob, Nothing(), **{opt: value})
    assert str(err.value).startswith(name), str(err.value)


def test_backwards_saveat_is_accepted_in_direction():
    class Nothing(js.ODEAlgorithm):
        pass
    prob = js.ODEProblem(lotka, [1.0, 1.0], (1, 0), P)
    with pytest.raises(UnsupportedAlgorithmError):   # options valid; only the algorithm is missing
        js.solve(prob, Nothing(), saveat=[1.0, 0.5, 0.0], atol=np.array([1e-6, 1e-7]))


def test_cupy_arrays_are_refused_clearly():
    class FakeCupy(np.ndarray):
        pass
    FakeCupy.__module__ = "cupy._core.core"
    x = np.ones(2).view(FakeCupy)
    with pytest.raises(BackendUnavailableError, match="^b:.*CUDA"):
        js.LinearProblem(np.eye(2), x)


# ------------------------------------------------------------------- solutions & HDF5
def _ode_solution():
    t = np.linspace(0, 1, 5)
    u = np.stack([np.exp(-t), 2 * np.exp(-t)], axis=1)
    stats = js.SolverStats(nf=30, njac=1, nsolve=2, naccept=4, nreject=1)
    return js.ODESolution(t, u, js.ReturnCode.MaxIters, stats, events=[(0.5, u[2])], alg="Tsit5()")


def test_ode_solution_interpolation_and_flags():
    sol = _ode_solution()
    assert not sol.successful and sol.retcode is js.ReturnCode.MaxIters
    np.testing.assert_allclose(sol(0.25), sol.u[1])
    np.testing.assert_allclose(sol(np.array([0.0, 1.0])), sol.u[[0, -1]])
    with pytest.raises(InvalidProblemError, match="^t:"):
        sol(1.5)
    assert not sol.dense


def test_hdf5_roundtrip_every_kind(tmp_path):
    sols = [
        _ode_solution(),
        js.SDESolution(np.arange(3.0), np.ones((3, 2)), js.ReturnCode.Success, W=np.ones((3, 2))),
        js.LinearSolution(np.arange(4.0), js.ReturnCode.Breakdown, iters=7, resnorm=1e-3,
                          history=[1.0, 0.1, 1e-3], alg="CG()"),
        js.EnsembleSolution(np.arange(3.0), np.zeros((2, 3, 4)),
                            [js.ReturnCode.Success, js.ReturnCode.Unstable], alg="Tsit5()"),
    ]
    for i, sol in enumerate(sols):
        path = tmp_path / f"s{i}.h5"
        sol.to_hdf5(path)
        back = js.load(path)
        assert type(back) is type(sol)
        assert back.retcode is sol.retcode
        for field in ("t", "u", "W", "history"):
            if hasattr(sol, field) and getattr(sol, field) is not None:
                np.testing.assert_array_equal(getattr(back, field), getattr(sol, field))
        for field in ("iters", "resnorm", "alg"):
            if hasattr(sol, field):
                assert getattr(back, field) == getattr(sol, field)
    back = js.load(tmp_path / "s0.h5")
    assert back.stats == sols[0].stats
    assert back.events[0][0] == 0.5 and np.array_equal(back.events[0][1], sols[0].events[0][1])
    assert js.load(tmp_path / "s3.h5").retcodes == sols[3].retcodes


def test_load_bad_files(tmp_path):
    import h5py
    with pytest.raises(FileNotFoundError):
        js.load(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"this is not hdf5 at all" * 10)
    with pytest.raises(FileFormatError, match="not an HDF5 file"):
        js.load(junk)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.ones(3)
    with pytest.raises(FileFormatError, match="not a jitsolve"):
        js.load(foreign)
    sol = _ode_solution()
    broken = tmp_path / "broken.h5"
    sol.to_hdf5(broken)
    with h5py.File(broken, "a") as f:
        del f["u"]
    with pytest.raises(FileFormatError, match="corrupt ODESolution"):
        js.load(broken)
    badrc = tmp_path / "badrc.h5"
    sol.to_hdf5(badrc)
    with h5py.File(badrc, "a") as f:
        f.attrs["retcode"] = "Exploded"
    with pytest.raises(FileFormatError, match="corrupt"):
        js.load(badrc)
    newer = tmp_path / "newer.h5"
    sol.to_hdf5(newer)
    with h5py.File(newer, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(FileFormatError, match="version"):
        js.load(newer)
    truncated = tmp_path / "truncated.h5"
    data = (tmp_path / "s.h5")
    sol.to_hdf5(data)
    raw = data.read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileFormatError):
        js.load(truncated)


def test_returncode():
    assert js.ReturnCode.Terminated.successful
    for name in ("MaxIters", "DtLessThanMin", "Unstable", "InitialFailure", "Breakdown",
                 "ConvergenceFailure", "Failure"):
        assert not getattr(js.ReturnCode, name).successful


def test_first_solve_does_not_import_scipy_linalg():
    """Numba's BLAS probe imports all of scipy.linalg (~0.45 s) unless jitsolve.kernels.cpu
    answers it first: a first solve of a plain ODE in a fresh process must not pay it."""
    import subprocess
    import sys
    code = ("import sys, numpy as np, jitsolve as js\n"
            "def f(du, u, p, t):\n    du[0] = -u[0]\n"
            "js.solve(js.ODEProblem(f, np.array([1.0]), (0.0, 1.0)), js.Tsit5())\n"
            "print('scipy.linalg' in sys.modules, 'numba' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
