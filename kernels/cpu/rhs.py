"""Right-hand sides as compiled loops see them.

A right-hand side is the tuple ``rhs = (f, p, lin, plin, haslin, tmp)`` and means
``du/dt = f(u, p, t) + [lin(u, plin, t) if haslin]``: ``f`` and ``lin`` are C function
pointers (:mod:`.cfuncptr`) of the fixed signature ``void(float64[::1] du, float64[::1] u,
float64[::1] p, float64 t)`` (user cfuncs, or the library cfuncs below for grid
operators and matrices, whose coefficients travel packed in ``plin``), ``tmp`` a work
array.  Every integration loop is therefore compiled (and disk-cached) once, whatever
the user's function.

Packed linear parts (``plin``), all float64:

- grid operator: see :mod:`.rhs_grid` (loaded only when a grid problem is solved).
- diagonal, ``diag_apply``: ``plin = d``, ``lin(u) = d * u``.
- dense matrix, ``dense_apply``: ``plin = [n, A.ravel()]``.
- CSR matrix, ``csr_apply``: ``plin = [n, nnz, indptr, indices, data]``.
"""
import numpy as np
from numba import cfunc, njit, types

from .borrow import borrow
from .cfuncptr import as_pointer

__all__ = ["eval_rhs", "borrow_rhs", "zero_f", "zero_f_complex", "zero_kvjp", "KVJP_SIG",
           "zero_vjp", "zero_jac", "VJP_SIG", "JAC_SIG", "diag_apply", "dense_apply", "dense_apply_transpose",
           "csr_apply", "csr_apply_transpose", "RHS_SIG"]

RHS_SIG = types.void(types.float64[::1], types.float64[::1], types.float64[::1], types.float64)
#: ``kvjp(out, u, lam, p)``: the coefficient-field VJP of a packed grid operator
KVJP_SIG = types.void(types.float64[::1], types.float64[::1], types.float64[::1],
                      types.float64[::1])
#: the user's ``vjp(out_u, out_p, lam, u, p, t)`` (``ODEFunction(vjp=...)``)
VJP_SIG = types.void(types.float64[::1], types.float64[::1], types.float64[::1],
                     types.float64[::1], types.float64[::1], types.float64)
#: the user's ``jac(J, u, p, t)`` and ``paramjac(Jp, u, p, t)``
JAC_SIG = types.void(types.float64[:, ::1], types.float64[::1], types.float64[::1],
                     types.float64)


@njit(inline="always", cache=False)
def eval_rhs(f, p, lin, plin, haslin, tmp, du, u, t):
    """``du = f(u, p, t) (+ lin(u, plin, t))``: the members of a right-hand-side tuple.

    Loops unpack the tuple once, outside the loop, and call this inlined: a first-class
    function fetched from a tuple inside a loop costs ~30 ns per call (measured).
    """
    f(du, u, p, t)
    if haslin:
        lin(tmp, u, plin, t)
        for i in range(du.size):
            du[i] += tmp[i]


@njit(inline="always", cache=False)
def borrow_rhs(rhs):
    """``rhs`` with its arrays borrowed (:mod:`.borrow`): for the top of a loop kernel,
    whose caller owns the tuple for the call."""
    f, p, lin, plin, haslin, tmp = rhs
    return (f, borrow(p), lin, borrow(plin), haslin, borrow(tmp))


def _zero_f(du, u, p, t):
    """``du = 0``: the nonlinear part of a purely linear problem."""
    for i in range(du.size):
        du[i] = 0.0


def _diag_apply(du, u, p, t):
    """``du = d * u`` with ``p = d``."""
    for i in range(du.size):
        du[i] = p[i] * u[i]


def _dense_apply(du, u, p, t):
    """``du = A u`` with ``p = [n, A.ravel()]``."""
    n = int(p[0])
    for i in range(n):
        acc = 0.0
        row = 1 + i * n
        for j in range(n):
            acc += p[row + j] * u[j]
        du[i] = acc


def _dense_apply_transpose(du, u, p, t):
    """``du = A^T u`` with ``p = [n, A.ravel()]``."""
    n = int(p[0])
    for j in range(n):
        du[j] = 0.0
    for i in range(n):
        row = 1 + i * n
        ui = u[i]
        for j in range(n):
            du[j] += p[row + j] * ui


@njit(cache=True)
def _csr_parts(p):
    n = int(p[0])
    nnz = int(p[1])
    ip = p[2:3 + n]
    ix = p[3 + n:3 + n + nnz]
    data = p[3 + n + nnz:3 + n + 2 * nnz]
    return n, ip, ix, data


def _csr_apply(du, u, p, t):
    """``du = A u`` with ``p = [n, nnz, indptr, indices, data]``."""
    n, ip, ix, data = _csr_parts(p)
    for i in range(n):
        acc = 0.0
        for k in range(int(ip[i]), int(ip[i + 1])):
            acc += data[k] * u[int(ix[k])]
        du[i] = acc


def _csr_apply_transpose(du, u, p, t):
    """``du = A^T u`` with ``p = [n, nnz, indptr, indices, data]``."""
    n, ip, ix, data = _csr_parts(p)
    for j in range(n):
        du[j] = 0.0
    for i in range(n):
        ui = u[i]
        for k in range(int(ip[i]), int(ip[i + 1])):
            du[int(ix[k])] += data[k] * ui


RHS_COMPLEX_SIG = types.void(types.complex128[::1], types.complex128[::1], types.complex128[::1],
                             types.float64)


def _zero_f_complex(du, u, p, t):
    """Complex twin of :func:`zero_f` (a placeholder where no user ``f`` exists)."""
    for i in range(du.size):
        du[i] = 0.0


def _zero_kvjp(out, u, lam, p):
    """``out = 0``: the coefficient-field VJP placeholder when no gradient wrt kappa is asked."""
    for i in range(out.size):
        out[i] = 0.0


def _zero_vjp(out_u, out_p, lam, u, p, t):
    """``out_u = out_p = 0``: the placeholder of a VJP source without the user's ``vjp``."""
    for i in range(out_u.size):
        out_u[i] = 0.0
    for i in range(out_p.size):
        out_p[i] = 0.0


def _zero_jac(J, u, p, t):
    """``J = 0``: the placeholder of a VJP source without the user's ``jac``/``paramjac``."""
    for i in range(J.shape[0]):
        for j in range(J.shape[1]):
            J[i, j] = 0.0


# Built on first use: a ``@cfunc`` decorator compiles (or loads from the disk cache, ~15 ms
# each) at import, and most solves need only ``zero_f``.
_LAZY = {
    "zero_f": ("RHS_SIG", _zero_f),
    "diag_apply": ("RHS_SIG", _diag_apply),
    "dense_apply": ("RHS_SIG", _dense_apply),
    "dense_apply_transpose": ("RHS_SIG", _dense_apply_transpose),
    "csr_apply": ("RHS_SIG", _csr_apply),
    "csr_apply_transpose": ("RHS_SIG", _csr_apply_transpose),
    "zero_f_complex": ("RHS_COMPLEX_SIG", _zero_f_complex),
    "zero_kvjp": ("KVJP_SIG", _zero_kvjp),
    "zero_vjp": ("VJP_SIG", _zero_vjp),
    "zero_jac": ("JAC_SIG", _zero_jac),
}


def __getattr__(name):
    """The cfunc ``name`` (:data:`__all__`), compiled or loaded from the cache on first use."""
    spec = _LAZY.get(name)
    if spec is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cf = as_pointer(cfunc(globals()[spec[0]], cache=True)(spec[1]))
    globals()[name] = cf
    return cf
