"""Numba disk cache of the compiled loops (issue 4's compile budget).

Numba 0.68 stores a cached function broken when it was compiled while one of its callees
taking first-class function values was itself loaded from the cache: the next process
that loads it calls through a NULL pointer (SIGSEGV).  Seen with the stiff loop compiled
after the explicit loop had cached the shared step-control and dense-output helpers.  The
rule that avoids it: helpers called only from compiled code are ``cache=False`` (they are
compiled together with each caller, and a cached caller never needs them again); only
entry points called from Python are ``cache=True``, plain-array helpers that take no
functions (:data:`PLAIN_CACHED_CALLEES`: a loop compiled in a later process loads them
instead of compiling them again, e.g. the step-control helpers the explicit loop cached
for the stiff loop), and helpers that take functions only as C function pointers
(:data:`POINTER_CACHED_CALLEES`; :mod:`jitsolve.kernels.cpu.cfuncptr`: no first-class
function values reach the loops, tests/test_cfunc_pointer.py): the step kernels, the
starting step and the Jacobian, shared by the stiff families and the explicit loop, and
the adjoints' advance and reverse sweeps, shared by store-all and checkpointed gradients.
"""
import ast
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import jitsolve

PKG = pathlib.Path(jitsolve.__file__).resolve().parent


def _kernel_dir():
    import jitsolve.kernels.cpu as cpu
    return pathlib.Path(cpu.__file__).resolve().parent


# modules whose kernels take user functions as first-class values (the loops and their
# helpers); stencil/BLAS/multigrid kernels take none
LOOP_MODULES = ("erk.py", "erk_adjoint.py", "erk_large.py", "erk_large_stencil.py",
                "erk_tangent.py", "esdirk.py",
                "esdirk_adjoint.py", "rhs.py", "rhs_grid.py", "rosenbrock.py",
                "rosenbrock_adjoint.py", "sde.py", "sde_adjoint.py", "stepcontrol.py",
                "stiff.py", "stiffjac.py", "continuous_adjoint.py", "philox.py",
                "sde_lockstep.py", "erk_lockstep.py", "fastpow.py", "stiff_adjoint_system.py",
                "stiff_ensemble_adjoint.py", "sde_ensemble_adjoint.py", "etdrk4.py",
                "etdrk4_adjoint.py")


def _njit_cache(dec):
    """``True``/``False`` for an ``@njit(..., cache=...)`` decorator, else None."""
    if not (isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "njit"):
        return None
    for kw in dec.keywords:
        if kw.arg == "cache":
            return bool(kw.value.value)
    return False


def _python_references():
    """Names referenced from Python code: the package outside kernels/, and plain
    (non-njit) functions or module-level code inside kernels/ (cfuncs included)."""
    refs = set()
    kdir = _kernel_dir()
    for path in kdir.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef)):
                continue
            if isinstance(node, ast.FunctionDef) and any(
                    _njit_cache(d) is not None for d in node.decorator_list):
                continue
            for n in ast.walk(node):
                if isinstance(n, ast.Name):
                    refs.add(n.id)
                elif isinstance(n, ast.Attribute):
                    refs.add(n.attr)
    root = kdir.parent.parent
    text = []
    for sub in (PKG, root / "solvers", root / "adjoint"):
        for path in sub.rglob("*.py"):
            if kdir not in path.parents:
                text.append(path.read_text())
    for path in pathlib.Path(__file__).parent.glob("*.py"):
        text.append(path.read_text())
    words = set(re.findall(r"\b\w+\b", "\n".join(text)))
    return refs | words


# cached kernels a cached function may call: plain-array kernels that take no functions
PLAIN_CACHED_CALLEES = {"_grow", "lu_factor", "lu_solve", "lu_solve_transpose", "em_tree",
                        "sra_tree", "count_fixed_steps", "philox4x32_10", "normal", "_normals",
                        "_csr_parts", "tree_sample", "levy_sample", "_grow_rows", "rms_norm",
                        "reject_factor", "pi_factor", "build_w", "jacobian_zero", "dense_eval",
                        "log2_fast", "exp2_fast", "ylog2_fast", "pow_fast"}

# cached kernels taking functions as C function pointers (never first-class values): the
# step, starting-step and Jacobian kernels, and the adjoints' advance/reverse sweeps that
# the checkpointed schedules and ensemble gradients call (a schedule compiled after a
# store-all gradient loads them)
POINTER_CACHED_CALLEES = {"initial_dt", "jacobian", "linear_matrix", "ros23_step", "rodas_step",
                          "sdirk_step", "reverse_steps", "erk_advance", "erk_advance_large",
                          "_prepare", "ros_advance", "ros_reverse", "sd_advance", "sd_reverse",
                          "_advance", "_reverse"}
CACHED_CALLEES = PLAIN_CACHED_CALLEES | POINTER_CACHED_CALLEES


def test_only_entry_points_are_disk_cached():
    kdir = _kernel_dir()
    refs = _python_references()
    offenders, entry = [], 0
    for name in LOOP_MODULES:
        path = kdir / name
        if not path.exists():
            continue
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            cache = [_njit_cache(d) for d in node.decorator_list if _njit_cache(d) is not None]
            if cache and cache[0]:
                if node.name in refs or node.name in CACHED_CALLEES:
                    entry += 1
                else:
                    offenders.append(f"{name}:{node.name}")
    assert not offenders, ("helpers called only from compiled code must be cache=False "
                           f"(see this module's docstring): {offenders}")
    assert entry >= 10          # the scan sees the real entry points (erk_solve, stiff_solve, ...)


def test_cached_functions_call_no_cached_loop_kernels():
    """A cached function calling a cached kernel that took first-class functions is the
    pattern that crashed; a cached caller calls only the kernels listed above (pointer
    arguments), the others through their uncached ``*_inner`` twins."""
    kdir = _kernel_dir()
    cached, bodies = {}, {}
    for path in kdir.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                flags = [_njit_cache(d) for d in node.decorator_list
                         if _njit_cache(d) is not None]
                if flags:
                    if flags[0]:
                        cached[node.name] = path.name
                        bodies[(path.name, node.name)] = {
                            n.func.id for n in ast.walk(node)
                            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    bad = []
    for (mod, fn), calls in bodies.items():
        for c in calls:
            if c != fn and c in cached and cached[c] in LOOP_MODULES \
                    and c not in CACHED_CALLEES:
                bad.append(f"{mod}:{fn} -> {c}")
    assert not bad, bad
    from jitsolve.kernels.cpu import erk, erk_adjoint
    assert erk.erk_solve_inner.py_func is erk.erk_solve.py_func
    assert erk.erk_solve_inner._cache.__class__.__name__ == "NullCache"
    assert erk_adjoint.reverse_steps._cache.__class__.__name__ != "NullCache"


def test_stiff_loop_is_disk_cached():
    from jitsolve.kernels.cpu.stiff import stiff_solve
    from jitsolve.kernels.cpu.erk import erk_solve
    assert stiff_solve._cache.__class__.__name__ != "NullCache"
    assert erk_solve._cache.__class__.__name__ != "NullCache"


CHILD = r"""
import json, sys, time
import numpy as np
import jitsolve as js
def lorenz(du, u, p, t):
    du[0] = 10.0 * (u[1] - u[0]); du[1] = u[0] * (28.0 - u[2]) - u[1]; du[2] = u[0] * u[1] - 8.0 / 3.0 * u[2]
prob = js.ODEProblem(lorenz, np.array([1.0, 0.0, 0.0]), (0.0, 1.0))
t0 = time.perf_counter()
sol = js.solve(prob, getattr(js, sys.argv[1])(), rtol=1e-8, atol=1e-8)
print(json.dumps(dict(s=time.perf_counter() - t0, u=list(sol.u[-1]), rc=str(sol.retcode))))
"""


def test_explicit_then_stiff_loop_reloads_from_a_fresh_cache(tmp_path):
    """The sequence that crashed: explicit loop cached first, then the stiff loop compiled
    (its helpers partly from the cache), then loaded in a new process.  Rosenbrock23's
    loop is compiled with the step-size and Jacobian helpers Rodas5P's process cached
    (functions as C function pointers), then loaded again."""
    script = tmp_path / "child.py"          # a file, so the user function's cfunc caches too
    script.write_text(CHILD)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    out = []
    for method in ("Tsit5", "Rodas5P", "Rosenbrock23", "Rodas5P", "Rosenbrock23"):
        r = subprocess.run([sys.executable, str(script), method], capture_output=True,
                           text=True, env=env, timeout=900)
        assert r.returncode == 0, f"{method}: exit {r.returncode}\n{r.stderr[-2000:]}"
        out.append(json.loads(r.stdout.strip().splitlines()[-1]))
    for first, again in ((1, 3), (2, 4)):
        assert out[first]["u"] == out[again]["u"] and out[again]["rc"] == "ReturnCode.Success"
        assert out[again]["s"] < out[first]["s"] / 5          # loaded, not compiled again
        assert abs(out[0]["u"][0] - out[first]["u"][0]) < 1e-4 * abs(out[0]["u"][0])


GRAD_CHILD = r"""
import json, sys
import numpy as np
import jitsolve as js
def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]
prob = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 5.0), p=np.array([1.5, 1.0, 3.0, 1.0]))
loss = js.L2Loss(np.linspace(0.5, 5.0, 10), np.ones((10, 2)))
ck = sys.argv[1]
sa = js.DiscreteAdjoint() if ck == "all" else js.DiscreteAdjoint(checkpoints=int(ck))
val, g = js.gradient(prob, js.Tsit5(), loss, wrt="p", sensealg=sa, rtol=1e-7, atol=1e-7)
print(json.dumps(dict(val=val, g=list(g["p"]))))
"""


def test_checkpointed_gradient_loads_the_cached_reverse_sweep(tmp_path):
    """A store-all gradient caches the reverse sweep; a checkpointed gradient compiled in
    the next process loads it into its schedule, and a third process loads that schedule:
    the bug scenario of this module's docstring with the adjoint's kernels."""
    script = tmp_path / "grad.py"
    script.write_text(GRAD_CHILD)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    out = []
    for ck in ("all", "4", "4"):
        r = subprocess.run([sys.executable, str(script), ck], capture_output=True, text=True,
                           env=env, timeout=900)
        assert r.returncode == 0, f"checkpoints={ck}: exit {r.returncode}\n{r.stderr[-2000:]}"
        out.append(json.loads(r.stdout.strip().splitlines()[-1]))
    assert out[1] == out[2]
    assert out[0]["val"] == out[1]["val"]
    assert np.allclose(out[0]["g"], out[1]["g"], rtol=1e-12, atol=0.0)
