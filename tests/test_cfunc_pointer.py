"""User functions reach the compiled loops as plain C function pointers
(:mod:`jitsolve.kernels.cpu.cfuncptr`), not as Numba first-class function values."""
import numpy as np
import pytest
from numba import cfunc, njit, typeof, types
from numba.core.ccallback import CFunc
from numba.core.dispatcher import Dispatcher

import jitsolve as js
from jitsolve.kernels.cpu.cfuncptr import CFuncPointer, PointerCFunc, as_pointer

from ode_models import lotka

SIG = types.void(types.float64[::1], types.float64[::1], types.float64[::1], types.float64)


def _affine(du, u, p, t):
    for i in range(u.size):
        du[i] = p[0] * u[i] + t


@njit(cache=False)
def _sum_of_calls(f, u, p, n):
    du = np.empty_like(u)
    acc = 0.0
    for k in range(n):
        f(du, u, p, 0.5 * k)
        for i in range(du.size):
            acc += du[i]
    return acc


def test_as_pointer_marks_a_cfunc_and_types_it_by_its_signature():
    a = as_pointer(cfunc(SIG)(_affine))
    b = as_pointer(cfunc(SIG)(lambda du, u, p, t: None))
    assert type(a) is PointerCFunc and isinstance(a, CFunc)
    ta, tb = typeof(a), typeof(b)
    assert isinstance(ta, CFuncPointer) and ta.sig == SIG
    assert ta is tb                                     # one type per signature
    assert as_pointer(3.0) == 3.0                       # anything else passes through


def test_a_pointer_is_called_like_the_first_class_function():
    u = np.arange(4.0)
    p = np.array([1.5])
    plain = cfunc(SIG)(_affine)
    ptr = as_pointer(cfunc(SIG)(_affine))
    expect = sum(float(np.sum(1.5 * u + 0.5 * k)) for k in range(7))
    assert _sum_of_calls(ptr, u, p, 7) == pytest.approx(expect, rel=1e-15)
    assert _sum_of_calls(plain, u, p, 7) == _sum_of_calls(ptr, u, p, 7)
    # two signatures of the kernel: the pointer type does not reuse the first-class one
    assert len(_sum_of_calls.signatures) == 2


def test_the_problem_functions_are_pointers():
    f = js.ODEFunction(lotka)
    for kind in ("f", "f_complex"):
        assert type(f.cfunc(kind)) is PointerCFunc, kind
    from jitsolve.kernels.cpu import rhs, rhs_grid, stiffjac
    assert type(rhs.zero_f) is PointerCFunc and type(rhs.zero_f_complex) is PointerCFunc
    assert type(stiffjac.no_jac) is PointerCFunc and type(stiffjac.no_fc) is PointerCFunc
    g = js.Grid((8, 8))
    from jitsolve.rhs import pack_grid_operator
    apply, transpose = rhs_grid.grid_cfuncs(pack_grid_operator(js.Laplacian(g)))
    assert type(apply) is PointerCFunc and type(transpose) is PointerCFunc


def _first_class_signatures():
    """``module:function signature`` of every compiled kernel signature holding a Numba
    first-class function type."""
    import importlib
    import pkgutil

    import jitsolve.kernels.cpu as cpu
    bad = []
    for info in pkgutil.iter_modules(cpu.__path__):
        mod = importlib.import_module(f"{cpu.__name__}.{info.name}")
        for name, obj in vars(mod).items():
            if isinstance(obj, Dispatcher):
                for sig in obj.signatures:
                    if any(isinstance(t, types.FunctionType) or "FunctionType" in str(t)
                           for t in sig):
                        bad.append(f"{info.name}:{name}")
    return bad


def test_no_loop_is_compiled_for_first_class_functions():
    """Explicit, stiff, SDE solves and gradients compile their loops for pointers only (a
    first-class function value reaching a loop would bring back its per-call unboxing
    and the disk-cache hazard of tests/test_kernel_cache.py)."""
    prob = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 1.0), p=np.array([1.5, 1.0, 3.0, 1.0]))
    js.solve(prob, js.Tsit5())
    js.solve(prob, js.Rodas5P())
    js.solve(prob, js.KenCarp4())
    t = np.linspace(0.1, 1.0, 5)
    loss = js.L2Loss(t, np.ones((5, 2)))
    js.gradient(prob, js.Tsit5(), loss, wrt="p", sensealg=js.DiscreteAdjoint())
    js.gradient(prob, js.Rodas5P(), loss, wrt="p")

    def drift(du, u, p, t):
        du[0] = -u[0]

    def noise(gu, u, p, t):
        gu[0] = 0.1

    sde = js.SDEProblem(drift, noise, np.array([1.0]), (0.0, 1.0))
    js.solve(sde, js.EM(), dt=0.01, seed=1)
    g = js.Grid((16, 16))
    heat = js.ODEProblem(js.Laplacian(g), np.ones(g.shape), (0.0, 1e-3))
    js.solve(heat, js.RK4(), dt=1e-5)
    assert _first_class_signatures() == []
