"""The user's own Numba options where jitsolve recompiles a function as a cfunc
(``functions.compile_cfunc``): ``parallel`` and ``fastmath`` are kept, the error model is
NumPy's (a cfunc cannot raise into the loop that calls it)."""
import re

import numpy as np
from numba import njit
from scipy.integrate import solve_ivp

import jitsolve as js
from jitsolve.functions import compile_cfunc


# separate functions, not one jitted twice: Numba's disk cache keys a cfunc on the Python
# function and signature, not on the options (compile_cfunc's docstring)
@njit(fastmath=True)
def decay_fast(du, u, p, t):
    acc = 0.0
    for i in range(u.size):
        acc += u[i]
    for i in range(u.size):
        du[i] = -p[0] * u[i] + 1e-3 * acc


@njit
def growth_plain(du, u, p, t):
    for i in range(u.size):
        du[i] = p[0] * u[i] + 1.0


def _fast_flags(cf):
    """The fast-math flags on the cfunc's floating-point additions (its LLVM IR: only
    inspectable when compiled in this process, not loaded from the disk cache)."""
    return set(re.findall(r"= fadd ((?:\w+ )*)double", cf.inspect_llvm()))


def test_fastmath_is_kept_in_the_cfunc():
    fast = compile_cfunc(decay_fast, "f", "f")
    plain = compile_cfunc(growth_plain, "f", "f")
    assert fast._compiler.targetoptions.get("fastmath") is True
    assert not plain._compiler.targetoptions.get("fastmath")
    assert fast._compiler.targetoptions["error_model"] == "numpy"
    if not fast._cache_hits and not plain._cache_hits:
        flags_fast, flags_plain = _fast_flags(fast), _fast_flags(plain)
        assert any("fast" in f or "reassoc" in f for f in flags_fast), flags_fast
        assert not any("fast" in f or "reassoc" in f for f in flags_plain), flags_plain


def test_fastmath_solve_matches_scipy():
    u0 = np.linspace(0.5, 1.5, 7)
    p = np.array([0.7])
    sol = js.solve(js.ODEProblem(js.ODEFunction(decay_fast), u0, (0.0, 1.0), p), js.Tsit5(),
                   rtol=1e-10, atol=1e-12)
    ref = solve_ivp(lambda t, u: -0.7 * u + 1e-3 * u.sum(), (0.0, 1.0), u0, method="DOP853",
                    rtol=1e-12, atol=1e-14)
    assert sol.retcode == js.ReturnCode.Success
    assert np.abs(sol.u[-1] - ref.y[:, -1]).max() < 1e-8
    assert np.abs(sol.u[-1] - u0 * np.exp(-0.7)).max() > 1e-6   # the coupling counts
