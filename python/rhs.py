"""How a problem's right-hand side crosses into compiled loops.

Every ODE loop takes ``du/dt = f(u, p, t) + lin(u, plin, t)`` with ``f`` and ``lin``
first-class functions of one fixed signature (DESIGN.md, "The user-function boundary").
This module turns a problem's ``f`` (a user function, an ``ODEFunction`` or a grid
operator) and a ``SplitODEProblem``'s linear part (a grid operator, a matrix or a
diagonal) into such ``(cfunc, parameter vector)`` pairs.
"""
import numpy as np

from .errors import UnsupportedAlgorithmError
from .functions import ODEFunction, probe_derivatives, probe_user_function
from .grid.operators import GridOperator, ScaledOperator
from .problems import SplitODEProblem

__all__ = ["RHS", "problem_rhs", "probed_parameters", "pack_grid_operator", "linear_part"]


class RHS:
    """A right-hand side ready for a compiled loop.

    Attributes
    ----------
    f, p : cfunc and its parameter vector (the nonlinear part; ``zero_f`` when none)
    lin, plin : cfunc and packed data of the linear part, or ``None``
    fun : the ``ODEFunction`` behind ``f`` (None for a pure grid operator)
    op : the grid operator / matrix behind the linear part (None when none)
    """

    def __init__(self, f, p, lin=None, plin=None, fun=None, op=None):
        self.f, self.p, self.lin, self.plin, self.fun, self.op = f, p, lin, plin, fun, op


def pack_grid_operator(op, scale=1.0, with_boundary=True, name="f"):
    """``plin`` for the cfuncs of :func:`jitsolve.kernels.cpu.rhs_grid.grid_cfuncs`: header,
    coefficients, boundary term (see that module); ``name`` is the problem's argument that
    holds ``op`` (for the error message)."""
    from .kernels.cpu import rhs_grid as K
    from .grid.stencils import Advection, Diffusion, Laplacian
    while isinstance(op, ScaledOperator):
        scale *= op.c
        op = op.op
    if isinstance(op, Laplacian):
        kind, coef = K.GRID_LAPLACIAN, []
    elif isinstance(op, Diffusion):
        kind, coef = K.GRID_DIFFUSION, [op.kappa.ravel()]
    elif isinstance(op, Advection):
        kind = K.GRID_ADVECTION
        coef = [np.ascontiguousarray(v, dtype=np.float64).ravel() for v in op._v3]
    else:
        raise UnsupportedAlgorithmError(
            f"{name}: {type(op).__name__} (a sum of operators) is not supported as a "
            f"compiled right-hand side yet (js.ETDRK4 takes it); use a single Laplacian/"
            f"Diffusion/Advection, possibly scaled, or a SplitODEProblem with L = "
            f"{name}.to_csr() and {name}.boundary_term() added in f (to_csr() alone drops "
            f"nonzero boundary values)")
    n0, n1, n2 = (1,) * (3 - op.grid.ndim) + op.grid.shape
    b = op.boundary_term().ravel() if with_boundary else np.zeros(0)
    hasb = bool(with_boundary and np.any(b))
    head = [kind, n0, n1, n2, *op._c, *op._per, *op._sgn.ravel(), scale, float(hasb),
            float(getattr(op, "_central", False))]
    parts = [np.asarray(head, dtype=np.float64)] + coef + ([b] if hasb else [])
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float64)


def linear_part(L, name="L"):
    """``(cfunc, plin)`` for a linear part: grid operator, dense/sparse matrix or diagonal
    (``name``: the problem's argument that holds it, for error messages)."""
    import scipy.sparse as sp
    from .kernels.cpu import rhs as K
    if isinstance(L, GridOperator):
        from .kernels.cpu import rhs_grid as KG
        plin = pack_grid_operator(L, name=name)
        return KG.grid_cfuncs(plin)[0], plin
    if sp.issparse(L):
        A = sp.csr_matrix(L)
        A.sort_indices()
        plin = np.concatenate([[A.shape[0], A.nnz], A.indptr, A.indices, A.data]).astype(np.float64)
        return K.csr_apply, plin
    L = np.asarray(L, dtype=np.float64)
    if L.ndim == 1:
        return K.diag_apply, np.ascontiguousarray(L)
    return K.dense_apply, np.concatenate([[L.shape[0]], L.ravel()]).astype(np.float64)


def probed_parameters(prob):
    """``prob.p`` as a contiguous float64 array (empty when None), once a user function
    ``f`` and its derivatives have been probed for indexing ``p`` (or the state) out of
    bounds (:func:`jitsolve.functions.probe_user_function`, ``probe_derivatives``)."""
    p = prob.p if prob.p is not None else np.zeros(0)
    p = np.ascontiguousarray(p, dtype=np.float64)
    if isinstance(prob.f, ODEFunction):
        probe_user_function(prob.f.f, "f", prob.u0, p, prob.tspan[0], out_shape=(prob.u0.size,))
        probe_derivatives(prob.f, prob.u0, p, prob.tspan[0])
    return p


def problem_rhs(prob):
    """The :class:`RHS` of an ``ODEProblem`` or ``SplitODEProblem``; a user function is
    probed once (:func:`probed_parameters`)."""
    from .kernels.cpu.rhs import zero_f
    p = probed_parameters(prob)
    if isinstance(prob, SplitODEProblem):
        lin, plin = linear_part(prob.L)
        if isinstance(prob.f, GridOperator):
            lin2, plin2 = linear_part(prob.f, "f")
            raise UnsupportedAlgorithmError("f: a SplitODEProblem's f must be a function")
        return RHS(prob.f.cfunc("f"), p, lin, plin, fun=prob.f, op=prob.L)
    if isinstance(prob.f, GridOperator):
        lin, plin = linear_part(prob.f, "f")
        return RHS(zero_f, p, lin, plin, fun=None, op=prob.f)
    assert isinstance(prob.f, ODEFunction)
    return RHS(prob.f.cfunc("f"), p, fun=prob.f)
