"""``js.gradient``: gradients of a loss of a solve with respect to its inputs.

Dispatch is on the problem type (``register_gradient``), so the ODE/SDE adjoint work
adds its own implementation beside the one for ``LinearProblem`` here.

For a ``LinearProblem`` ``A u = b`` the gradient comes from the implicit function
theorem: one forward solve, one adjoint solve ``A^T lam = dJ/du`` with the same
algorithm and preconditioner (reused when ``A`` is symmetric), then

* ``"b"``: ``dJ/db = lam``;
* ``"kappa"`` (or the operator's ``param_name``): ``dJ/dkappa = -(d(A u)/dkappa)^T lam``
  through the grid operator's exact ``param_vjp`` (scaling and sums handled by the
  operator itself, so ``A = -js.Diffusion(g, kappa)`` just works);
* ``"A"`` (dense array or sparse matrix): ``-lam u^T`` (on the sparsity pattern).

With inhomogeneous boundary data, ``param_vjp`` differentiates the affine operator
``A(k) u + A.boundary_term()``: the gradient is that of the equation
``A(k) u = f - A.boundary_term()``, the way such problems are posed.
"""
import time

import numpy as np

from .errors import InvalidProblemError, JitsolveError, SolveFailedError, UnsupportedAlgorithmError
from .log import get_logger
from .losses import EnsembleLoss, Loss, observe_at_saveat
from .problems import EnsembleProblem, LinearProblem
from .user_exceptions import WatchUserExceptions

__all__ = ["gradient", "register_gradient", "SolveFailedError"]

_GRADIENTS = {}
_log = get_logger("gradient")

def register_gradient(problem_type):
    """Decorator: ``impl(prob, alg, loss, wrt, sensealg, **solve_kw) -> (value, grads)``."""
    def deco(fn):
        _GRADIENTS[problem_type] = fn
        return fn
    return deco


def gradient(prob, alg, loss, wrt=None, sensealg=None, **solve_kw):
    """Value of ``loss`` at the solution of ``prob`` and its gradients.

    Parameters
    ----------
    prob : problem
    alg : algorithm used for the forward (and adjoint) solves
    loss : js.Loss or js.L2Loss
    wrt : str or tuple of str
        What to differentiate with respect to; for a ``LinearProblem`` ``"b"``,
        the grid operator's coefficient (``"kappa"`` for ``Diffusion``) or ``"A"``.
    sensealg : sensitivity algorithm, optional
        For linear problems only None (the implicit adjoint) is used.
    **solve_kw
        Passed to ``js.solve`` (``rtol``, ``atol``, ``maxiter``, ...).

    Returns
    -------
    value : float
    grads : dict name -> array
        For an ``EnsembleProblem``: one row per trajectory (``grads["p"]`` of shape
        ``(N, np)``, ``grads["u0"]`` ``(N, *u0.shape)``), the value summed over them; an
        ``L2Loss`` holds one set of data for all trajectories or one per trajectory,
        ``(N, m, *u0.shape)``.

    Raises
    ------
    UnsupportedAlgorithmError
        No gradient implementation for this problem type yet.
    SolveFailedError
        The forward or adjoint solve did not succeed.
    UserFunctionError
        A user function raised an exception inside a compiled loop.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((16, 16))
    >>> prob = js.LinearProblem(-js.Diffusion(g, 1.0), np.ones(g.shape))
    >>> loss = js.L2Loss(None, np.zeros(g.shape))
    >>> val, grads = js.gradient(prob, js.CG(js.Multigrid()), loss, wrt=("b", "kappa"))
    >>> grads["kappa"].shape, grads["b"].shape
    ((16, 16), (16, 16))
    >>> A = np.array([[2.0, 0.0], [0.0, 4.0]])          # J = 0.5 |A^-1 b|^2
    >>> val, grads = js.gradient(js.LinearProblem(A, np.ones(2)), js.Direct(),
    ...                          js.L2Loss(None, np.zeros(2)), wrt="b")
    >>> val, grads["b"]                                  # A^-T A^-1 b
    (0.15625, array([0.25  , 0.0625]))

    References
    ----------
    Giles, Pierce, *An introduction to the adjoint approach to design*, Flow Turbul.
    Combust. 65 (2000); Griewank, Walther, *Evaluating Derivatives* (2008).

    Cost
    ----
    Per call on a ``LinearProblem``: one forward solve, one adjoint solve with ``A^T``
    (the same algorithm; a symmetric grid operator reuses the preconditioner's setup)
    and, per coefficient, one ``param_vjp`` pass (``"A"`` as a matrix: an outer
    product, ``nnz`` entries for a sparse one).  On an ODE problem: one forward solve
    plus the cost of ``sensealg`` (see :class:`DiscreteAdjoint` and the others).
    """
    impl = None
    for P in type(prob).__mro__:
        impl = _GRADIENTS.get(P)
        if impl is not None:
            break
    if impl is None:
        raise UnsupportedAlgorithmError(
            f"prob: gradient() does not support {type(prob).__name__} in this build yet "
            f"(supported: {', '.join(sorted(p.__name__ for p in _GRADIENTS))})")
    if not isinstance(loss, Loss):
        raise InvalidProblemError(f"loss: expected a js.Loss or js.L2Loss, got {type(loss).__name__}")
    if isinstance(loss, EnsembleLoss) and not isinstance(prob, EnsembleProblem):
        raise InvalidProblemError(
            f"loss: a js.{type(loss).__name__} is a function of an ensemble's trajectories; "
            f"give an EnsembleProblem (with trajectories=N), not a {type(prob).__name__}")
    _check_sensealg(sensealg)
    from .problems import with_problem_callback
    from .solve import option_defaults
    solve_kw = with_problem_callback(prob, solve_kw)
    option_defaults(prob, solve_kw)             # a typo (rtoll=...) is an error, not ignored
    loss, solve_kw = observe_at_saveat(prob, loss, solve_kw)
    t0 = time.perf_counter()
    with WatchUserExceptions("gradient"):
        out = impl(prob, alg, loss, wrt, sensealg, **solve_kw)
    _log.debug("gradient %s/%s wrt %s (sensealg %s): %.4f s", type(prob).__name__,
               type(alg).__name__, wrt, type(sensealg).__name__ if sensealg is not None
               else "default", time.perf_counter() - t0)
    return out


def _check_sensealg(sensealg):
    """Refuse a ``sensealg`` that is not a sensitivity algorithm instance (the class
    itself, as ``sensealg=js.InterpolatingAdjoint``, said "not implemented")."""
    from .algorithms import SensitivityAlgorithm
    if sensealg is None or isinstance(sensealg, SensitivityAlgorithm):
        return
    if isinstance(sensealg, type) and issubclass(sensealg, SensitivityAlgorithm):
        raise InvalidProblemError(f"sensealg: pass an instance, js.{sensealg.__name__}(), "
                                  f"not the class")
    raise InvalidProblemError(f"sensealg: expected a sensitivity algorithm such as "
                              f"js.DiscreteAdjoint(), got {type(sensealg).__name__}")


def _check_solution(sol, what):
    if not sol.successful:
        raise SolveFailedError(
            f"gradient: the {what} solve ended with {sol.retcode} after {sol.iters} iterations "
            f"(true residual {sol.resnorm:.3e}); loosen rtol, raise maxiter or change the algorithm")


@register_gradient(LinearProblem)
def _linear_gradient(prob, alg, loss, wrt, sensealg, **solve_kw):
    import scipy.sparse as sp
    from scipy.sparse.linalg import LinearOperator

    from .adjoint.linear import implicit_gradient
    from .grid.operators import GridOperator
    from .linear import _user_error, constants_in_null_spaces, transpose_operator
    from .solve import solve

    if sensealg is not None:
        raise UnsupportedAlgorithmError(
            f"sensealg: a LinearProblem is differentiated by its implicit adjoint; pass "
            f"sensealg=None, got {type(sensealg).__name__}")
    if wrt is None:
        wrt = ("b",)
    if isinstance(wrt, str):
        wrt = (wrt,)
    A = prob.A
    if np.iscomplexobj(prob.b) or np.dtype(getattr(A, "dtype", np.float64)).kind == "c":
        raise InvalidProblemError("prob: gradient() supports real linear problems only")
    pname = A.param_name if isinstance(A, GridOperator) else None
    vjps = {}
    for name in wrt:
        if name == "b":
            vjps["b"] = lambda u, lam: lam
        elif name == "A" and not isinstance(A, GridOperator):
            if sp.issparse(A):
                C = sp.coo_matrix(A)

                def gA(u, lam, C=C):
                    u, lam = u.ravel(), lam.ravel()
                    return sp.csr_matrix((-lam[C.row] * u[C.col], (C.row, C.col)), shape=C.shape)
                vjps["A"] = gA
            elif isinstance(A, np.ndarray):
                vjps["A"] = lambda u, lam: -np.outer(lam.ravel(), u.ravel())
            else:
                raise InvalidProblemError("wrt: 'A' needs an explicit matrix, not a LinearOperator")
        elif pname is not None and name == pname and pname != "mixed":
            vjps[name] = lambda u, lam: -A.param_vjp(u, lam)
        else:
            allowed = ["b"] + (["A"] if not isinstance(A, GridOperator) else []) + \
                ([pname] if pname not in (None, "mixed") else [])
            raise InvalidProblemError(f"wrt: cannot differentiate with respect to {name!r} "
                                      f"for this problem (choose from {allowed})")
    AT = transpose_operator(A)
    if isinstance(A, LinearOperator):
        try:        # fail before the forward solve, not in the adjoint one
            AT.matvec(np.zeros(A.shape[0], dtype=np.result_type(A.dtype, prob.b.dtype)))
        except NotImplementedError:
            raise InvalidProblemError(
                "A: gradient() solves with A^T, and this LinearOperator has no rmatvec; "
                "give it one (LinearOperator(..., rmatvec=...)) or pass a matrix") from None
        except JitsolveError:
            raise
        except Exception as exc:
            raise _user_error("A: the LinearOperator's rmatvec", exc) from exc

    def forward():
        sol = solve(prob, alg, **solve_kw)
        _check_solution(sol, "forward")
        return sol.u

    singular = constants_in_null_spaces(A)

    def adjoint(g):
        g = np.asarray(g, dtype=np.float64).reshape(prob.b.shape)
        if singular:
            # A^T lam = g is consistent only for g orthogonal to the constants; lam is
            # then defined up to a constant, which no coefficient's gradient sees
            # (1^T dA/dkappa = 0): the mean-zero lam is A^+ g, the gradient of the
            # solution CG returns (the minimum-norm one from a zero guess)
            g = g - g.mean()
        if not np.any(g):
            return np.zeros_like(g)
        sol = solve(LinearProblem(AT, g), alg, **solve_kw)
        _check_solution(sol, "adjoint")
        return sol.u - sol.u.mean() if singular else sol.u

    val, grads, _u, _lam = implicit_gradient(forward, adjoint, loss.value, loss.grad, vjps)
    out = {}
    for name in wrt:
        gr = grads[name]
        if name == "b":
            gr = np.asarray(gr).reshape(prob.b.shape)
        out[name] = gr
    return val, out
