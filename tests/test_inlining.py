"""``llvm_always_inline`` (kernels/cpu/inlining.py): a helper compiled once, put in line by
LLVM in its callers."""
import re

from numba import njit

from jitsolve.kernels.cpu.stepcontrol import pi_factor, reject_factor


@njit(cache=False)
def _controller(err, err_prev):
    return (pi_factor(err, err_prev, 0.14, 0.08, 0.9, 0.2, 10.0)
            + reject_factor(err, 0.14, 0.9, 0.2))


def _called(fn):
    ir = fn.inspect_llvm(fn.signatures[0])
    return {re.sub(r"B\d+v\d+.*", "", c) for c in re.findall(r'call [^@]*@"?([^"( ]+)', ir)}


def test_marked_helper_is_inlined_and_gives_the_same_bits():
    a = _controller(0.5, 0.3)
    assert a == pi_factor(0.5, 0.3, 0.14, 0.08, 0.9, 0.2, 10.0) + reject_factor(0.5, 0.14, 0.9, 0.2)
    calls = _called(_controller)
    assert not any(c.endswith("9pi_factor") for c in calls), calls
    # the control: the unmarked helper of the same kind (one fast power) stays a call, so
    # the attribute, not LLVM's own cost model, put pi_factor in line
    assert any(c.endswith("13reject_factor") for c in calls), calls


def _marked_helpers(path):
    """``{name: decorator keywords}`` of the functions in ``path`` that call
    ``llvm_always_inline()``."""
    import ast
    out = {}
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        marked = any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "llvm_always_inline"
                     for n in ast.walk(node))
        if marked:
            kws = {}
            for d in node.decorator_list:
                if isinstance(d, ast.Call):
                    kws.update({k.arg: getattr(k.value, "value", None) for k in d.keywords})
            out[node.name] = kws
    return out


def test_grid_row_helpers_are_compiled_once_with_the_parallel_loops_error_model():
    """The grid kernels' row helpers are LLVM-inlined (not Numba-inlined: their copies
    were retyped in every parallel loop at each cold compile, 2-3.5x the compile time).
    Each uses ``error_model="numpy"``, the model of Numba's parallel loop bodies: with
    Python's, every division carries a zero check, and the Diffusion loops stopped
    vectorising (2.4-3.1x the time, measured)."""
    import pathlib

    import jitsolve.kernels.cpu as cpu
    kdir = pathlib.Path(cpu.__file__).resolve().parent
    for name, least in (("stencil.py", 20), ("multigrid.py", 8)):
        helpers = _marked_helpers(kdir / name)
        assert len(helpers) >= least, (name, sorted(helpers))
        bad = {h: kw for h, kw in helpers.items()
               if kw.get("error_model") != "numpy" or kw.get("inline") is not None}
        assert not bad, (name, bad)


def test_stencil_row_helpers_are_in_line_in_their_callers():
    """A serial caller of the Diffusion row helper (the one the fused Krylov and stage
    kernels call; ``test_stencils``' single-row reference) has no call left to it or to
    the helpers it calls: LLVM put them in line, so the machine code is the loop's own as
    with Numba's inlining."""
    import numpy as np
    from test_stencils import _single_row_kernels

    _, diff_rows, _ = _single_row_kernels()
    u = np.random.default_rng(0).random((1, 6, 7))
    out = np.full_like(u, np.nan)
    diff_rows(u, u + 1.0, out, np.array([0.0, 1.0, 1.0]), np.zeros(3, np.bool_),
              -np.ones((3, 2)))
    calls = _called(diff_rows)
    left = [c for c in calls if any(h in c for h in ("diff_apply_row", "_diff_row",
                                                      "_diff_ends", "_neighbours"))]
    assert not left, left
    # the control: the rows were computed (a row left out would stay NaN)
    assert np.isfinite(out).all() and np.abs(out).max() > 0
