"""VJP sources for compiled reverse sweeps: the tuple ``vj`` of
:mod:`jitsolve.kernels.cpu.erk_adjoint`.

In order of preference (the adjoint issue's list): the user's own derivatives from
``ODEFunction`` (``vjp``, else ``jac`` and ``paramjac``: :func:`user_derivatives`), the
grid operators' own transpose and ``param_vjp`` kernels for linear parts, then exact
complex-step products with the user's ``f`` (complex state and parameters),
column-coloured when a sparsity pattern is given so that a banded or diagonal Jacobian
costs a few evaluations instead of ``n``.

References
----------
Squire, Trapp, *Using complex variables to estimate derivatives of real functions*,
SIAM Rev. 40 (1998); Curtis, Powell, Reid, *On the estimation of sparse Jacobian
matrices*, IMA J. Appl. Math. 13 (1974) (column colouring).
"""
import numpy as np

__all__ = ["colour_columns", "make_vjp_source", "is_diagonal_pattern", "user_derivatives",
           "covers_products",
           "COMPLEX_STEP", "USER_JAC_MAX", "DENSE_VJP_MAX"]

#: complex-step size: no subtractive cancellation, so it can be tiny
COMPLEX_STEP = 1e-30

#: the user's dense ``jac`` serves as a VJP source up to this many unknowns, and only
#: without a ``jac_sparsity`` (whose coloured complex steps cost a few evaluations of
#: ``f`` instead of an ``n x n`` product)
USER_JAC_MAX = 1024

#: the largest system whose VJPs may take the dense complex step (``n`` evaluations of
#: ``f`` per product, an ``n x n`` pattern); above it ``f`` needs a ``jac_sparsity`` or
#: its own ``vjp``
DENSE_VJP_MAX = 4096

#: bits of the user slot's ``mode`` (:mod:`jitsolve.kernels.cpu.erk_adjoint`)
USER_VJP, USER_JAC, USER_PARAMJAC = 1, 2, 4


def colour_columns(pattern):
    """Greedy colouring of the columns of a sparse pattern so that no two columns of one
    colour share a row (Curtis-Powell-Reid).  Returns ``(colour, ncolour)``."""
    import scipy.sparse as sp
    R = sp.csr_matrix(pattern)
    n = R.shape[1]
    if n and R.shape[0] and np.diff(R.indptr).max() <= 1:
        # at most one entry per row (a diagonal, a reaction term): one colour, no loop
        return np.zeros(n, dtype=np.int64), 1
    if n and R.nnz == R.shape[0] * n:
        # dense: every column its own colour (what the greedy loop below gives, in
        # O(n^3) Python steps: ~200 s at n = 1024)
        return np.arange(n, dtype=np.int64), n
    P = sp.csc_matrix(pattern)
    colour = -np.ones(n, dtype=np.int64)
    for k in range(n):
        rows = P.indices[P.indptr[k]:P.indptr[k + 1]]
        used = set()
        for r in rows:
            for j in R.indices[R.indptr[r]:R.indptr[r + 1]]:
                if colour[j] >= 0:
                    used.add(int(colour[j]))
        c = 0
        while c in used:
            c += 1
        colour[k] = c
    return colour, int(colour.max()) + 1 if n else 0


def is_diagonal_pattern(pattern, n):
    """True when the sparsity pattern ``pattern`` (or None: dense) of an ``n x n``
    Jacobian is exactly the diagonal."""
    import scipy.sparse as sp
    if pattern is None:
        return n == 1
    P = sp.csr_matrix(pattern)
    if P.shape != (n, n) or P.nnz != n:
        return False
    P.sum_duplicates()
    return bool(P.nnz == n and np.array_equal(P.indptr, np.arange(n + 1))
                and np.array_equal(P.indices, np.arange(n)))


_COLOURINGS = {}


def _colouring(n, sparsity):
    """``(colour, ncol, indptr, indices)`` of the pattern (dense when None), memoised per
    (n, pattern object): building the CSR pattern and colouring it costs ~0.1 ms, as much
    as a short reverse sweep.  The arrays are only read by the kernels."""
    key = (n, id(sparsity))
    hit = _COLOURINGS.get(key)
    if hit is not None and hit[0] is sparsity:
        return hit[1]
    import scipy.sparse as sp
    pat = sp.csr_matrix(np.ones((n, n)) if sparsity is None else sparsity)
    pat.sort_indices()
    colour, ncol = colour_columns(pat)
    out = (colour, ncol, pat.indptr.astype(np.int64), pat.indices.astype(np.int64))
    if len(_COLOURINGS) > 64:
        _COLOURINGS.clear()
    _COLOURINGS[key] = (sparsity, out)
    return out


def usable_jac(fun, n):
    """Whether the user's ``jac`` gives the products of an ``n``-unknown system: given,
    no ``jac_sparsity`` declared (the coloured complex step is cheaper than an ``n x n``
    product), and ``n <=`` :data:`USER_JAC_MAX`."""
    return (getattr(fun, "jac", None) is not None and fun.jac_sparsity is None
            and n <= USER_JAC_MAX)


def user_derivatives(fun, n, np_grad):
    """Which of an ``ODEFunction``'s own derivatives a VJP source uses: ``(mode, vjp,
    jac, paramjac)`` (cfuncs or None; ``mode`` 0 when none, or ``fun`` is None).

    The user's ``vjp`` gives both products; else ``jac`` gives ``J^T v`` (when ``n <=``
    :data:`USER_JAC_MAX` and no ``jac_sparsity`` is declared) and ``paramjac`` gives
    ``J_p^T v`` (when parameters are differentiated)."""
    if fun is None:
        return 0, None, None, None
    if getattr(fun, "vjp", None) is not None:
        return USER_VJP, fun.cfunc("vjp"), None, None
    mode, jac, pjac = 0, None, None
    if usable_jac(fun, n):
        mode, jac = mode | USER_JAC, fun.cfunc("jac")
    if getattr(fun, "paramjac", None) is not None and np_grad > 0:
        mode, pjac = mode | USER_PARAMJAC, fun.cfunc("paramjac")
    return mode, None, jac, pjac


def covers_products(user, np_grad):
    """Whether the user's derivatives (:func:`user_derivatives`) give every product an
    adjoint asks for: ``J^T v`` (``vjp`` or ``jac``) and, when parameters are
    differentiated, ``J_p^T v`` (``vjp`` or ``paramjac``).  Then no complex step of
    ``f`` is taken, and ``f`` need not compile for complex numbers."""
    if user is None or not user[0]:
        return False
    mode = user[0]
    return bool(mode & USER_VJP or (mode & USER_JAC and (np_grad == 0 or mode & USER_PARAMJAC)))


def make_vjp_source(fc, p, has_f, n, *, sparsity=None, np_grad=0, linT=None, plin=None,
                    kappa_grad=False, bweight=None, user=None, argname="f"):
    """Build the ``vj`` tuple.  ``fc``: complex twin cfunc of ``f`` (or the zero
    placeholder when ``has_f`` is False); ``sparsity``: pattern of ``df/du`` or None
    (dense); ``np_grad``: how many parameters to differentiate; ``linT, plin``: the
    transpose cfunc of the linear part and its packed data; ``user``: the result of
    :func:`user_derivatives` (the user slots are added when its mode is not 0);
    ``argname``: the function's name in messages."""
    from ..kernels.cpu.rhs import zero_f, zero_kvjp
    user_u = user is not None and user[0] & (USER_VJP | USER_JAC)
    if has_f and not user_u and sparsity is None and n > DENSE_VJP_MAX:
        from ..errors import InvalidProblemError
        hint = ("pass ODEFunction(f, jac_sparsity=...) (a diagonal reaction: "
                "scipy.sparse.identity(n)) or ODEFunction(f, vjp=...)" if argname == "f" else
                f"the SDE adjoint differentiates {argname} densely, up to {DENSE_VJP_MAX} "
                f"unknowns, unless {argname} is given as js.ODEFunction({argname}, "
                "jac_sparsity=...)")
        raise InvalidProblemError(
            f"{argname}: its adjoint needs J^T v for {n} unknowns without a declared "
            f"sparsity or vjp: the dense complex step would take {n} evaluations of "
            f"{argname} per product and an {n} x {n} pattern; {hint}")
    if has_f and not user_u:
        colour, ncol, ptr, idx = _colouring(n, sparsity)
    else:
        colour, ncol = np.zeros(n, np.int64), 0
        ptr, idx = np.zeros(n + 1, np.int64), np.zeros(0, np.int64)
    pc = np.zeros(max(p.size, 0), dtype=np.complex128)
    haslin = linT is not None
    vj = (fc, pc, bool(has_f), colour, ptr, idx, int(ncol), int(np_grad), COMPLEX_STEP,
          linT if haslin else zero_f,
          np.ascontiguousarray(plin if plin is not None else np.zeros(0), dtype=np.float64),
          haslin, bool(kappa_grad),
          np.ascontiguousarray(bweight if bweight is not None else np.zeros(n), dtype=np.float64),
          _kappa_vjp() if kappa_grad else zero_kvjp)
    if has_f and user is not None and user[0]:
        vj += _user_slots(user, n, p.size)
    return vj


def _user_slots(user, n, npar):
    """``vj[15:22]``: ``(mode, vjp, jac, paramjac, pbuf, Jbuf, Jpbuf)`` with placeholders
    for the functions not given and work arrays sized for the ones given."""
    from ..kernels.cpu.rhs import zero_jac, zero_vjp
    mode, vjp, jac, pjac = user
    return (int(mode), vjp if vjp is not None else zero_vjp,
            jac if jac is not None else zero_jac, pjac if pjac is not None else zero_jac,
            np.zeros(npar), np.zeros((n, n) if jac is not None else (0, 0)),
            np.zeros((n, npar) if pjac is not None else (0, 0)))


def _kappa_vjp():
    from ..kernels.cpu.rhs_grid import grid_kappa_vjp_cfunc
    return grid_kappa_vjp_cfunc()
