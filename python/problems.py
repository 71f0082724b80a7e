"""Problem definitions: what to solve, separate from how (the algorithm) and where (the backend).

Constructors validate everything up front (shapes, dtypes, NaN/Inf, spans) and compile
user functions, so that a bad input fails here with a message naming the argument,
not deep inside a solve.
"""

import numpy as np

from .errors import BackendUnavailableError, InvalidProblemError
from .functions import ODEFunction, compile_user_function
from .grid.operators import GridOperator
from .validate import (as_param_array, as_state_array, check_choice, check_positive_int,
                       check_tspan)

__all__ = ["AbstractProblem", "ODEProblem", "SDEProblem", "SplitODEProblem", "LinearProblem",
           "EnsembleProblem", "remake"]


def _reject_device_array(x, name):
    mod = type(x).__module__ or ""
    if mod.startswith("cupy"):
        raise BackendUnavailableError(
            f"{name}: CuPy arrays select the CUDA backend, which this build of jitsolve does not "
            f"have yet; pass a NumPy array (cupy.asnumpy) to use the CPU backend")


def _state(u0, name="u0"):
    _reject_device_array(u0, name)
    return as_state_array(u0, name, dtypes=(np.float64, np.complex128, np.float32, np.complex64))


class AbstractProblem:
    """Base class: a problem is a set of validated fields; ``remake`` copies with changes."""

    _fields = ()

    def _asdict(self):
        return {k: getattr(self, k) for k in self._fields}

    def __repr__(self):
        parts = []
        for k in self._fields:
            v = getattr(self, k)
            if isinstance(v, np.ndarray):
                v = f"array(shape={v.shape}, dtype={v.dtype})"
            parts.append(f"{k}={v}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _check_grid_state(op, u0):
    """Raise unless ``u0`` has the shape of ``op``'s grid, or is that grid flattened.

    A state of the right size but another shape (a transposed 2-D field, say) would be
    read in the grid's C order and returned in its own shape: silently scrambled.
    """
    if u0.size != op.grid.size:
        raise InvalidProblemError(
            f"u0: the operator's grid has {op.grid.size} cells {op.grid.shape}, u0 has "
            f"shape {u0.shape}")
    if u0.shape not in (tuple(op.grid.shape), (op.grid.size,)):
        raise InvalidProblemError(
            f"u0: expected the operator's grid shape {tuple(op.grid.shape)} or "
            f"({op.grid.size},), got {u0.shape} (same size, another layout)")


def _as_rhs(f, name, u0):
    """A right-hand side: an ODEFunction, a grid operator, or a plain/jitted function."""
    if isinstance(f, GridOperator):
        _check_grid_state(f, u0)
        return f
    if isinstance(f, ODEFunction):
        F = f
        if F.jac_sparsity is not None and F.jac_sparsity.shape != (u0.size, u0.size):
            # (the explicit adjoints used a wrong-sized pattern as given: wrong gradients,
            # segmentation faults)
            raise InvalidProblemError(
                f"{name}: jac_sparsity of shape {F.jac_sparsity.shape}, but the state has "
                f"{u0.size} entries")
    elif callable(f):
        F = ODEFunction(f)
    else:
        raise InvalidProblemError(
            f"{name}: expected a function f(du, u, p, t), a js.ODEFunction or a grid operator, "
            f"got {type(f).__name__}")
    if np.iscomplexobj(u0):
        F.compiled("f", complex_state=True)   # fail now, naming the function
    else:
        F.cfunc("f")                          # the form compiled loops take; fails naming f
    return F


class ODEProblem(AbstractProblem):
    """``du/dt = f(u, p, t)``, ``u(t0) = u0``, on ``tspan = (t0, t1)``.

    Parameters
    ----------
    f : callable, ODEFunction or grid operator
        ``f(du, u, p, t)`` in place; a grid operator ``A`` means ``du/dt = A u + b``
        with ``b = A.boundary_term()``.
    u0 : array
        Initial state (any shape; user functions see it flattened).  With a grid
        operator: the grid's shape, or the grid flattened.
    tspan : (t0, t1)
        ``t1 < t0`` integrates backwards.
    p : array, optional
        Parameters (a float64 vector).
    callback : js.ContinuousCallback, js.DiscreteCallback or a list of them, optional
        Events of the problem itself (DifferentialEquations.jl's ``ODEProblem(...;
        callback=cb)``): every ``solve``, ``gradient``, ``fit`` and ``check_gradient`` of
        it uses them, together with a ``callback=`` given to the call.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> sol = js.solve(prob, js.Tsit5(), rtol=1e-8, atol=1e-10)
    >>> sol.retcode, round(float(sol.u[-1, 0]), 6)          # exp(-2)
    (<ReturnCode.Success: 'Success'>, 0.135335)

    References
    ----------
    Rackauckas, Nie, *DifferentialEquations.jl - a performant and feature-rich ecosystem
    for solving differential equations in Julia*, J. Open Res. Softw. 5 (2017) (the
    problem/algorithm/solve interface).
    """

    _fields = ("f", "u0", "tspan", "p", "callback")

    def __init__(self, f, u0, tspan, p=None, *, callback=None):
        self.u0 = _state(u0)
        self.tspan = check_tspan(tspan)
        self.p = as_param_array(p)
        self.f = _as_rhs(f, "f", self.u0)
        self.callback = _check_problem_callback(callback)


class SplitODEProblem(AbstractProblem):
    """``du/dt = L u + f(u, p, t)``: a linear part ``L`` and a nonlinear part ``f``.

    ``L`` is a grid operator, a square matrix (ndarray or scipy.sparse) or a 1-D array
    (a diagonal, e.g. a spectral symbol).  For exponential and IMEX integrators
    (``js.KenCarp4`` treats ``L`` implicitly); explicit methods integrate ``L u + f``.

    Parameters
    ----------
    L : grid operator, square matrix or 1-D array
    f : callable or ODEFunction
        The nonlinear part ``f(du, u, p, t)``.
    u0, tspan, p, callback
        As for :class:`ODEProblem`.

    References
    ----------
    Kennedy, Carpenter, *Additive Runge-Kutta schemes for convection-diffusion-reaction
    equations*, Appl. Numer. Math. 44 (2003); Hochbruck, Ostermann, *Exponential
    integrators*, Acta Numerica 19 (2010).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def zero(du, u, p, t):
    ...     du[0] = 0.0
    >>> prob = js.SplitODEProblem(np.array([-2.0]), zero, np.array([1.0]), (0.0, 1.0))
    >>> sol = js.solve(prob, js.KenCarp4(), rtol=1e-8, atol=1e-10)
    >>> sol.retcode, round(float(sol.u[-1, 0]), 6)          # exp(-2)
    (<ReturnCode.Success: 'Success'>, 0.135335)
    """

    _fields = ("L", "f", "u0", "tspan", "p", "callback")

    def __init__(self, L, f, u0, tspan, p=None, *, callback=None):
        self.u0 = _state(u0)
        self.tspan = check_tspan(tspan)
        self.p = as_param_array(p)
        self.L = _as_linear_part(L, self.u0.size)
        if isinstance(self.L, GridOperator):
            _check_grid_state(self.L, self.u0)
        self.f = _as_rhs(f, "f", self.u0)
        self.callback = _check_problem_callback(callback)


def callback_list(cb):
    """``cb`` (None, a callback or a list or tuple of them) as a list."""
    if cb is None:
        return []
    return list(cb) if isinstance(cb, (list, tuple)) else [cb]


def _check_problem_callback(callback):
    """An ODE problem's ``callback``: None, a ``js.ContinuousCallback`` /
    ``js.DiscreteCallback`` or a list of them (kept as given; a list as a tuple)."""
    if callback is None:
        return None
    from .ode import ContinuousCallback, DiscreteCallback
    cbs = callback_list(callback)
    for cb in cbs:
        if not isinstance(cb, (ContinuousCallback, DiscreteCallback)):
            raise InvalidProblemError(
                f"callback: expected a js.ContinuousCallback, a js.DiscreteCallback or a list "
                f"of them, got {type(cb).__name__}")
    return tuple(cbs) if isinstance(callback, (list, tuple)) else callback


def with_problem_callback(prob, kw):
    """``kw`` with the ODE problem's own ``callback`` (an ensemble's: its problem's; not
    with ``prob_func``, whose problems each bring theirs) joined to a ``callback`` in
    ``kw``, each callback object once (a call that passes the problem's callback on, as
    finite differences do, does not double it)."""
    if isinstance(prob, EnsembleProblem) and prob.prob_func is not None:
        return kw          # each trajectory's problem (prob_func's) brings its own
    base = prob.prob if isinstance(prob, EnsembleProblem) else prob
    own = getattr(base, "callback", None) if isinstance(base, (ODEProblem, SplitODEProblem)) else None
    if own is None:
        return kw
    given = kw.get("callback")
    merged = []
    for cb in callback_list(own) + callback_list(given):
        if not any(cb is m for m in merged):
            merged.append(cb)
    kw = dict(kw)
    kw["callback"] = merged[0] if len(merged) == 1 else merged
    return kw


_COMPLEX_L = ("L: complex linear parts are not supported (the states are real); write a "
              "complex diagonal (a spectral symbol) as a real 2n x 2n block system")


def _as_linear_part(L, n):
    import scipy.sparse as sp
    if isinstance(L, GridOperator):
        if L.grid.size != n:
            raise InvalidProblemError(f"L: operator on {L.grid.size} cells, u0 has {n} entries")
        return L
    if sp.issparse(L):
        if L.shape != (n, n):
            raise InvalidProblemError(f"L: expected shape ({n}, {n}), got {L.shape}")
        if L.dtype.kind == "c":
            raise InvalidProblemError(_COMPLEX_L)
        if not np.isfinite(L.data).all():
            raise InvalidProblemError("L: contains NaN or Inf")
        return sp.csr_matrix(L)
    from scipy.sparse.linalg import LinearOperator
    if isinstance(L, LinearOperator):
        raise InvalidProblemError(
            "L: a scipy LinearOperator is not accepted (the stiff, exponential and adjoint "
            "methods need L's entries or its stencil); pass the grid operator itself, a "
            "scipy.sparse matrix (A.to_csr()) or a dense array")
    a = as_state_array(L, "L")
    if a.dtype.kind == "c":
        raise InvalidProblemError(_COMPLEX_L)
    if a.ndim == 1:
        if a.size != n:
            raise InvalidProblemError(f"L: a diagonal needs {n} entries, got {a.size}")
        return a
    if a.shape != (n, n):
        raise InvalidProblemError(f"L: expected a ({n}, {n}) matrix or a length-{n} diagonal, got {a.shape}")
    return a


_SDE_NOISE = ("diagonal", "scalar", "general")
_SDE_INTERP = ("ito", "stratonovich")


class SDEProblem(AbstractProblem):
    """``du = f(u, p, t) dt + g(u, p, t) dW``.

    Parameters
    ----------
    f, g : callable
        Drift ``f(du, u, p, t)`` and diffusion ``g(gu, u, p, t)``.  For
        ``noise="general"`` ``g`` writes an ``n x nbrownian`` matrix.  ``f`` may be a
        ``js.ODEFunction`` with its own derivatives (``vjp``, ``jac``, ``paramjac``: the
        SDE adjoints use them first) and ``jac_sparsity``; so may ``g`` for diagonal or
        scalar noise (``g`` a vector): its ``vjp``/``jac``/``paramjac`` (the same
        signatures as ``f``'s) come first in the adjoints, else its ``jac_sparsity``
        colours their complex steps of ``g`` (dense without it, up to
        :data:`jitsolve.adjoint.vjp.DENSE_VJP_MAX` unknowns).
    noise : {"diagonal", "scalar", "general"}
    nbrownian : int, optional
        Number of Brownian motions (required for general noise; ``n`` for diagonal,
        1 for scalar).
    interpretation : {"ito", "stratonovich"}
    ggprime : callable, optional
        The Milstein term ``ggprime(out, u, p, t)`` (the name of DifferentialEquations.jl's
        ``SDEFunction``): for diagonal noise ``out_i = g_i dg_i/du_i``, for scalar noise
        ``out = (dg/du) g``.  Used by ``js.Milstein`` instead of complex-step
        differentiation of ``g``, and needed by its discrete adjoint (which
        differentiates it by complex step, so it must also compile for complex128
        states and parameters).  Not for general noise.

    References
    ----------
    P. E. Kloeden, E. Platen, *Numerical Solution of Stochastic Differential Equations*,
    Springer (1992), sec. 10.3 (the Milstein scheme and its ``g g'`` term).

    Examples
    --------
    Geometric Brownian motion, whose exact solution on the same Brownian path is
    ``exp((mu - sigma^2 / 2) t + sigma W)``:

    >>> import numpy as np, jitsolve as js
    >>> def drift(du, u, p, t):
    ...     du[0] = p[0] * u[0]
    >>> def noise(gu, u, p, t):
    ...     gu[0] = p[1] * u[0]
    >>> p = np.array([0.5, 0.2])                            # mu, sigma
    >>> prob = js.SDEProblem(drift, noise, np.array([1.0]), (0.0, 1.0), p=p)
    >>> sol = js.solve(prob, js.EM(), dt=1 / 64, seed=1, save_noise=True)
    >>> sol.retcode, sol.u.shape, sol.W.shape
    (<ReturnCode.Success: 'Success'>, (65, 1), (65, 1))
    >>> exact = np.exp(0.48 * 1.0 + 0.2 * sol.W[-1, 0])
    >>> bool(abs(sol.u[-1, 0] - exact) < 0.02)
    True
    """

    _fields = ("f", "g", "u0", "tspan", "p", "noise", "nbrownian", "interpretation",
               "ggprime")

    def __init__(self, f, g, u0, tspan, p=None, *, noise="diagonal", nbrownian=None,
                 interpretation="ito", ggprime=None):
        self.u0 = _state(u0)
        if np.iscomplexobj(self.u0):
            raise InvalidProblemError("u0: SDEs are real; got a complex initial state")
        self.tspan = check_tspan(tspan)
        self.p = as_param_array(p)
        self.noise = check_choice(noise, "noise", _SDE_NOISE)
        self.interpretation = check_choice(interpretation, "interpretation", _SDE_INTERP)
        n = self.u0.size
        if self.noise == "general":
            if nbrownian is None:
                raise InvalidProblemError("nbrownian: required for noise='general'")
            self.nbrownian = check_positive_int(nbrownian, "nbrownian")
        else:
            expected = n if self.noise == "diagonal" else 1
            if nbrownian is not None and check_positive_int(nbrownian, "nbrownian") != expected:
                raise InvalidProblemError(
                    f"nbrownian: {self.noise} noise has {expected} Brownian motion(s), got {nbrownian}")
            self.nbrownian = expected
        self.f = _as_rhs(f, "f", self.u0)
        self.g_sparsity = None
        self.g_function = None      # g's ODEFunction when it brings its own derivatives
        if isinstance(g, ODEFunction):
            given = [k for k in ("jac", "vjp", "paramjac") if getattr(g, k) is not None]
            if given:
                if self.noise == "general":
                    raise InvalidProblemError(
                        f"g: its own {given[0]} is for diagonal or scalar noise (g a vector); "
                        f"with noise='general' the SDE adjoints differentiate the matrix g by "
                        f"complex step")
                self.g_function = g
            if g.jac_sparsity is not None:
                if self.noise == "general":
                    raise InvalidProblemError("g: a jac_sparsity of g is for diagonal or scalar "
                                              "noise (g a vector), the problem has noise='general'")
                if g.jac_sparsity.shape != (n, n):
                    raise InvalidProblemError(f"g: jac_sparsity of shape {g.jac_sparsity.shape}, "
                                              f"but the state has {n} entries")
                self.g_sparsity = g.jac_sparsity
            g = g.f
        if not callable(g) or isinstance(g, GridOperator):
            raise InvalidProblemError(f"g: expected a function g(gu, u, p, t), got {type(g).__name__}")
        sig = ("void(float64[:, ::1], float64[::1], float64[::1], float64)" if self.noise == "general"
               else "void(float64[::1], float64[::1], float64[::1], float64)")
        self._g_raw = g   # the raw function, for the first-class (cfunc) form
        self.g = compile_user_function(g, "g", sig)
        if ggprime is not None:
            if self.noise == "general":
                raise InvalidProblemError(
                    "ggprime: the Milstein term is for diagonal or scalar noise, the problem has "
                    "noise='general'")
            if not callable(ggprime) or isinstance(ggprime, (GridOperator, ODEFunction)):
                raise InvalidProblemError(
                    f"ggprime: expected a function ggprime(out, u, p, t), got "
                    f"{type(ggprime).__name__}")
            compile_user_function(ggprime, "ggprime",
                                  "void(float64[::1], float64[::1], float64[::1], float64)")
        self.ggprime = ggprime


class LinearProblem(AbstractProblem):
    """``A x = b``.

    Parameters
    ----------
    A : ndarray, scipy.sparse matrix, scipy LinearOperator or grid operator
    b : array
        Right-hand side, 1-D of length ``n`` (or of the grid's shape for a grid operator).
        Its precision is the solve's: a float32 ``b`` is solved in float32 arithmetic
        (complex when ``A`` is), even with a float64 matrix, where SciPy takes
        ``result_type(A, b)``; pass a float64 ``b`` for float64 work.
    x0 : array, optional
        Initial guess, same shape as ``b`` (default zeros).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((64, 64))
    >>> prob = js.LinearProblem(-js.Laplacian(g), np.ones(g.shape))
    >>> sol = js.solve(prob, js.CG(js.Multigrid()))
    >>> sol.retcode, sol.u.shape
    (<ReturnCode.Success: 'Success'>, (64, 64))
    """

    _fields = ("A", "b", "x0")

    def __init__(self, A, b, *, x0=None):
        _reject_device_array(b, "b")
        self.b = as_state_array(b, "b")
        self.A = self._check_operator(A, self.b)
        if x0 is not None:
            _reject_device_array(x0, "x0")
            x0 = as_state_array(x0, "x0")
            if x0.shape != self.b.shape:
                raise InvalidProblemError(f"x0: expected the shape of b {self.b.shape}, got {x0.shape}")
        self.x0 = x0

    @property
    def n(self):
        return self.b.size

    @staticmethod
    def _check_operator(A, b):
        import scipy.sparse as sp
        from scipy.sparse.linalg import LinearOperator
        n = b.size
        if isinstance(A, GridOperator):
            if b.shape not in (A.grid.shape, (A.grid.size,)):
                raise InvalidProblemError(
                    f"b: expected the grid's shape {A.grid.shape} or ({A.grid.size},), got {b.shape}")
            return A
        if b.ndim != 1:
            raise InvalidProblemError(f"b: expected a 1-D array for a matrix operator, got shape {b.shape}")
        if sp.issparse(A):
            if A.shape != (n, n):
                raise InvalidProblemError(f"A: expected shape ({n}, {n}) to match b, got {A.shape}")
            if A.dtype.kind not in "fc":
                A = A.astype(np.float64)
            if not np.isfinite(A.data).all():
                raise InvalidProblemError("A: contains NaN or Inf")
            return A
        if isinstance(A, LinearOperator):
            if A.shape != (n, n):
                raise InvalidProblemError(f"A: expected shape ({n}, {n}) to match b, got {A.shape}")
            return A
        _reject_device_array(A, "A")
        if not hasattr(A, "__array__") and not isinstance(A, (list, tuple)):
            raise InvalidProblemError(
                f"A: expected an ndarray, scipy.sparse matrix, LinearOperator or grid operator, "
                f"got {type(A).__name__}")
        a = as_state_array(A, "A")
        if a.shape != (n, n):
            raise InvalidProblemError(f"A: expected shape ({n}, {n}) to match b, got {a.shape}")
        return a


class EnsembleProblem(AbstractProblem):
    """Many solves of one problem: ``u0s`` (N, ...) and/or ``ps`` (N, np), or ``prob_func``
    (not both).

    ``u0s`` and ``ps`` are the compiled fast path (one trajectory per thread);
    ``prob_func(prob, i) -> problem`` is the general, slower one (one ``solve`` each).
    Solve with ``js.solve(eprob, alg, trajectories=N, ...)``.

    Saved times: an ODE ensemble saves at ``saveat`` and, without it, at ``tspan``'s two
    ends only (SciML's ``save_everystep=false``), not every step as a single solve: its
    trajectories take different adaptive steps and ``EnsembleSolution.u`` is one
    ``(N, nt, ...)`` array on common times.  ``esol[i](t)`` interpolates linearly between
    saved times, so pass ``saveat`` for values inside the span.  SDE ensembles save at
    ``saveat``, else on a fixed step's grid (every step), else (adaptive steps) at
    ``tspan``'s two ends only.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([1.0]))
    >>> eprob = js.EnsembleProblem(prob, ps=np.array([[1.0], [2.0], [3.0]]))
    >>> esol = js.solve(eprob, js.Tsit5(), trajectories=3, rtol=1e-8, atol=1e-10)
    >>> esol.retcode, esol.u.shape, np.round(esol.u[:, -1, 0], 4)    # exp(-p)
    (<ReturnCode.Success: 'Success'>, (3, 2, 1), array([0.3679, 0.1353, 0.0498]))
    """

    _fields = ("prob", "u0s", "ps", "prob_func")

    def __init__(self, prob, *, u0s=None, ps=None, prob_func=None):
        if not isinstance(prob, AbstractProblem) or isinstance(prob, EnsembleProblem):
            raise InvalidProblemError(f"prob: expected a problem, got {type(prob).__name__}")
        self.prob = prob
        N = None
        if u0s is not None:
            if not hasattr(prob, "u0"):
                raise InvalidProblemError(f"u0s: {type(prob).__name__} has no u0")
            # either float width, held in the problem's dtype (as ps in float64)
            u0s = as_state_array(u0s, "u0s", dtypes=(np.float64, np.float32)).astype(
                prob.u0.dtype, copy=False)
            if u0s.shape[1:] != prob.u0.shape:
                raise InvalidProblemError(
                    f"u0s: expected shape (N, {', '.join(map(str, prob.u0.shape))}), got {u0s.shape}")
            N = u0s.shape[0]
        if ps is not None:
            if not hasattr(prob, "p"):
                raise InvalidProblemError(f"ps: {type(prob).__name__} has no p")
            ps = as_state_array(ps, "ps", dtypes=(np.float64, np.float32))
            if ps.ndim == 1 and prob.p.size == 1:
                ps = ps[:, None]
            if ps.ndim != 2 or ps.shape[1] != prob.p.size:
                raise InvalidProblemError(f"ps: expected shape (N, {prob.p.size}), got {ps.shape}")
            ps = np.ascontiguousarray(ps, dtype=np.float64)
            if N is not None and ps.shape[0] != N:
                raise InvalidProblemError(f"ps: has {ps.shape[0]} rows but u0s has {N}")
            N = ps.shape[0]
        if prob_func is not None and not callable(prob_func):
            raise InvalidProblemError("prob_func: expected a function (prob, i) -> problem")
        if prob_func is not None and (u0s is not None or ps is not None):
            raise InvalidProblemError(
                "prob_func: give prob_func or u0s/ps, not both (prob_func builds each "
                "trajectory's problem and would ignore the rows); in prob_func, "
                "remake(prob, u0=u0s[i], p=ps[i]) uses them")
        self.u0s, self.ps, self.prob_func = u0s, ps, prob_func
        self.ntrajectories = N


def kappa_of(prob):
    """``(kappa, with_kappa)``: the ``kappa`` of the js.Diffusion in ``prob``'s grid
    operator (``A`` of a LinearProblem, ``f`` of an ODEProblem, ``L`` of a
    SplitODEProblem; scaled or summed as ``gradient(wrt="kappa")`` allows) and
    ``with_kappa(k)``, the problem remade with ``kappa = k``.  Raises
    InvalidProblemError when there is no such field.
    """
    from .grid.stencils import kappa_field
    field = {LinearProblem: "A", SplitODEProblem: "L", ODEProblem: "f"}.get(type(prob))
    found = kappa_field(getattr(prob, field)) if field is not None else None
    if found is None:
        raise InvalidProblemError(
            f"wrt: 'kappa' needs a problem whose grid operator has one js.Diffusion (possibly "
            f"scaled, or summed with operators without a coefficient field); got "
            f"{type(prob).__name__}" + (f" with {field} = {getattr(prob, field)!r}" if field else ""))
    kappa, rebuild = found
    return kappa, lambda k: remake(prob, **{field: rebuild(k)})


def remake(prob, /, **changes):
    """A copy of ``prob`` with some fields replaced, validated like a new problem.

    DifferentialEquations.jl's ``remake(prob; u0=..., p=..., tspan=...)``: the result is
    built by the problem's own constructor, so it is checked exactly as a new problem
    (shapes, dtypes, NaN/Inf, spans, a grid operator's shape, an SDE's noise) and
    derived attributes follow the new fields (an SDE's ``nbrownian`` for diagonal or
    scalar noise, an ``EnsembleProblem``'s trajectory count).  Arrays are copied:
    changing the copy's ``u0``, ``p``, ``b``, ``u0s``... in place leaves ``prob`` as it
    was (an ensemble's base problem is remade too); functions and operators are shared.

    Parameters
    ----------
    prob : ODEProblem, SplitODEProblem, SDEProblem, LinearProblem or EnsembleProblem
    **changes
        New values of the problem's fields (``type(prob)._fields``); an unknown name
        raises :class:`~jitsolve.errors.InvalidProblemError` naming it.

    Returns
    -------
    AbstractProblem
        A new problem of the same type; ``remake(prob)`` is an independent copy.

    Raises
    ------
    InvalidProblemError
        As the constructor would, the message starting with the argument's name; where a
        changed field does not fit one kept from ``prob`` (a ``u0`` of another size than
        ``f``'s ``jac_sparsity``), the message says which fields ``remake`` changed.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> prob = js.LinearProblem(np.eye(2), np.ones(2))
    >>> js.remake(prob, b=np.array([1.0, 2.0])).b
    array([1., 2.])
    """
    if not isinstance(prob, AbstractProblem):
        raise InvalidProblemError(f"prob: expected a problem, got {type(prob).__name__}")
    unknown = set(changes) - set(prob._fields)
    if unknown:
        raise InvalidProblemError(
            f"{sorted(unknown)[0]}: {type(prob).__name__} has no such field (fields: "
            f"{', '.join(prob._fields)})")
    try:
        return _remake(prob, changes)
    except InvalidProblemError as exc:
        noted = _in_remake(exc, prob, changes)
        if noted is exc:
            raise
        raise noted from exc


def _in_remake(exc, prob, changes):
    """``exc`` with a note of what ``remake`` changed, when the field it names was kept
    from ``prob`` (so the fault is in how the changes fit it, not in that field)."""
    msg = str(exc)
    head = msg.split(":", 1)[0].split("[", 1)[0].split(".", 1)[0].strip()
    if not changes or head in changes or head not in prob._fields:
        return exc
    changed = ", ".join(sorted(changes))
    them = "it" if len(changes) == 1 else "them"
    return type(exc)(f"{msg} (remake changed {changed}; pass {head} with {them})")


def _remake(prob, changes):
    fields = prob._asdict()
    fields.update(changes)
    cls = type(prob)
    if cls is ODEProblem:
        return ODEProblem(fields["f"], fields["u0"], fields["tspan"], fields["p"],
                          callback=fields["callback"])
    if cls is SplitODEProblem:
        return SplitODEProblem(fields["L"], fields["f"], fields["u0"], fields["tspan"],
                               fields["p"], callback=fields["callback"])
    if cls is SDEProblem:
        # diagonal/scalar noise derive nbrownian from u0: keep it only when asked for
        # (or for general noise, where it is the problem's own); switching to general
        # noise needs it given
        nb = None
        kept_general = fields["noise"] == "general" and prob.noise == "general"
        if "nbrownian" in changes or kept_general:
            nb = fields["nbrownian"]
        g = fields["g"]
        if "g" not in changes:
            # the user's g as given, not the dispatcher compiled from it: the compiled
            # forms (cfuncs, batch forms, the complex twin) are cached by the function
            if prob.g_function is not None:
                g = prob.g_function
            elif prob.g_sparsity is not None:
                g = ODEFunction(prob._g_raw, jac_sparsity=prob.g_sparsity)
            else:
                g = prob._g_raw
        return SDEProblem(fields["f"], g, fields["u0"], fields["tspan"], fields["p"],
                          noise=fields["noise"], nbrownian=nb,
                          interpretation=fields["interpretation"],
                          ggprime=fields["ggprime"])
    if cls is LinearProblem:
        return LinearProblem(fields["A"], fields["b"], x0=fields["x0"])
    if cls is EnsembleProblem:
        base = fields["prob"]
        if "prob" not in changes:
            base = remake(base)      # an independent copy: its u0 and p are not shared
        return EnsembleProblem(base, u0s=fields["u0s"], ps=fields["ps"],
                               prob_func=fields["prob_func"])
    raise InvalidProblemError(                                            # pragma: no cover
        f"prob: remake does not know {cls.__name__}")
