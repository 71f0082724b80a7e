"""Sensitivity algorithms (``sensealg``) and gradients of ODE solves.

``js.gradient(ODEProblem, alg, loss, wrt=("p", "u0"), sensealg=js.DiscreteAdjoint())``
runs the forward solve saving at the loss's times as ``solve(saveat=t_data)`` does
(from the interpolant of Tsit5, DP5, Vern7; as stops for the others), then the compiled
discrete adjoint of the method; ``wrt`` may name ``"p"``, ``"u0"`` and, for
``ODEProblem(js.Diffusion(g, kappa), ...)``, ``"kappa"``.
"""
import contextvars

import numpy as np

from .algorithms import SensitivityAlgorithm
from .errors import InvalidProblemError, UnsupportedAlgorithmError
from .gradient import SolveFailedError, register_gradient
from .problems import EnsembleProblem, LinearProblem, ODEProblem, SDEProblem, SplitODEProblem
from .validate import check_positive_float, check_seed, check_trajectories
from .grid.operators import GridOperator
from .ode import ExplicitRK, _callback_tuple, _run_explicit, interpolates_saveat, ode_options
from .ode_stiff import StiffAlgorithm
from .rhs import problem_rhs
from .solve import _DE_DEFAULTS, _check_de_options, _check_trajectory, solve

__all__ = ["DiscreteAdjoint", "FiniteDifference", "InterpolatingAdjoint", "BacksolveAdjoint",
           "QuadratureAdjoint", "ForwardSensitivity", "HDF5Store", "check_gradient"]


class HDF5Store:
    """Keep checkpoints in an HDF5 file (``path``) instead of memory, for states that do
    not fit; pass as ``js.DiscreteAdjoint(checkpoints=C, store=js.HDF5Store(path))``.

    The file is created on the first snapshot, one dataset per stored state, and removed
    when the reverse sweep ends (also when it fails) unless ``keep=True``; the gradient is
    bit-for-bit that of the in-memory schedules.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file; its folder must exist.  A file already at ``path`` is
        overwritten, except a jitsolve solution (one written by ``sol.to_hdf5``), which
        is refused (:class:`~jitsolve.errors.InvalidProblemError` naming ``path``).
    keep : bool, default False
        Keep the file after the gradient (its datasets: the snapshots last held).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> loss = js.L2Loss(np.array([1.0]), np.zeros((1, 1)))     # 0.5 u(1)^2
    >>> store = js.HDF5Store(os.path.join(tempfile.mkdtemp(), "checkpoints.h5"))
    >>> sa = js.DiscreteAdjoint(checkpoints=2, store=store)
    >>> val, grads = js.gradient(prob, js.Tsit5(), loss, wrt="p", sensealg=sa,
    ...                          rtol=1e-8, atol=1e-10)
    >>> round(float(val), 8), np.round(grads["p"], 6)      # d/dp 0.5 exp(-2p) = -exp(-4)
    (0.00915782, array([-0.018316]))
    >>> os.path.exists(store.path)                          # removed after the gradient
    False

    Cost
    ----
    Per checkpoint taken: one HDF5 dataset written (``n`` x 8 bytes, plus h5py's
    per-dataset overhead); per restore: one dataset read.  The binomial schedule is
    then driven from Python, one compiled call per action (advance, reverse step,
    snapshot, restore), instead of one compiled call for the whole sweep.  Memory: the
    working states only; disk: at most ``checkpoints`` states (``u0`` included).
    """

    def __init__(self, path, keep=False):
        import os
        if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
            raise InvalidProblemError(f"path: expected a file path, got {type(path).__name__}")
        if not isinstance(keep, (bool, np.bool_)):
            raise InvalidProblemError(f"keep: expected True or False, got {keep!r}")
        self.path = os.fspath(path)
        if isinstance(self.path, bytes):
            raise InvalidProblemError("path: expected a str file path, got bytes")
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise InvalidProblemError(f"path: the folder {folder!r} of the checkpoint store "
                                      f"does not exist")
        self.keep = bool(keep)
        self._refuse_solution()
        self._f = None
        self._created = False

    def _refuse_solution(self):
        from .io import holds_solution
        if holds_solution(self.path):
            raise InvalidProblemError(f"path: {self.path!r} holds a jitsolve solution; "
                                      f"the checkpoint store would overwrite it (choose "
                                      f"another path)")

    def _file(self):
        if self._f is None:
            import os
            import h5py
            if os.path.isdir(self.path):
                raise InvalidProblemError(f"path: cannot create the checkpoint store "
                                          f"{self.path!r}: it is a folder")
            self._refuse_solution()
            try:
                self._f = h5py.File(self.path, "w")
            except OSError as exc:
                raise InvalidProblemError(f"path: cannot create the checkpoint store "
                                          f"{self.path!r}: {exc}") from exc
            self._created = True
        return self._f

    def put(self, i, u):
        f = self._file()
        if str(i) in f:
            del f[str(i)]
        f.create_dataset(str(i), data=u)

    def get(self, i):
        return self._file()[str(i)][...]

    def drop_above(self, i):
        f = self._file()
        for k in [k for k in f.keys() if int(k) > i]:
            del f[k]

    def close(self):
        """Close the file (the adjoint sweeps call this when they end) and remove it
        unless ``keep``."""
        if self._f is not None:
            self._f.close()
            self._f = None
        if self._created and not self.keep:
            import os
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                from .log import get_logger
                get_logger("sensitivity").warning("could not remove the checkpoint store "
                                                  "%s: %s", self.path, exc)
        self._created = False


class DiscreteAdjoint(SensitivityAlgorithm):
    """Exact reverse-mode derivative of the discrete scheme ``solve`` ran.

    Parameters
    ----------
    checkpoints : "all", int or "binomial"
        ``"all"`` keeps every state (fastest); an integer ``C >= 1`` keeps at most ``C``
        states (the initial one included) and recomputes with the binomial (Revolve)
        schedule (``"binomial"`` means ``C = 16``; ``C >= nsteps`` stores every state
        once).  The gradient is bit-for-bit the same either way.  Anything else (0, a
        negative or non-integer number, a bool) raises ``InvalidProblemError``.
    store : HDF5Store, optional
        Keep the checkpoints on disk.

    With adaptive steps the accepted step sizes are recorded and held fixed in the
    reverse pass: the gradient is that of the computed discrete solution for those steps,
    exactly the values ``js.solve(prob, alg, saveat=t_data)`` returns.  For Tsit5, DP5
    and Vern7 (small states) those are saved from the method's interpolant, so the
    forward takes its own steps and the loss times inside a step are differentiated
    through that step's dense output (FSAL and extra interpolation stages included);
    for Euler, RK4 and large states the steps land on the loss times.

    A ``js.DiscreteCallback`` passed to the solve (explicit methods, states of at most
    ``jitsolve.callback_gradient.AFFECT_JAC_MAX`` entries) is differentiated too: the
    adjoint is pulled back across each change of the state by the affect's Jacobians
    (complex step, so ``affect`` must also compile for complex ``u`` and ``p``), which
    steps end with a change held fixed like the step sizes.  Exact where those step
    ends do not move with the parameters (fixed steps, or the condition true at
    ``tstops`` only, as for doses at given times); at other adaptive step ends a
    ``UserWarning`` says that the solve's event moves and the gradient's does not.
    ``ContinuousCallback``: not differentiated (refused; ``js.FiniteDifference()``).

    References
    ----------
    Griewank, Walther, *Evaluating Derivatives* (2008), ch. 12; Sandu, *On the properties
    of Runge-Kutta discrete adjoints* (2006); Griewank, Walther, *Algorithm 799: Revolve*,
    ACM TOMS 26 (2000); Hairer, Nørsett, Wanner, *Solving ODEs I* (1993), II.6 (dense
    output).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> loss = js.L2Loss(np.array([1.0]), np.zeros((1, 1)))     # 0.5 u(1)^2
    >>> val, grads = js.gradient(prob, js.Tsit5(), loss, wrt="p",
    ...                          sensealg=js.DiscreteAdjoint(), rtol=1e-8, atol=1e-10)
    >>> round(float(val), 8), np.round(grads["p"], 6)      # d/dp 0.5 exp(-2p) = -exp(-4)
    (0.00915782, array([-0.018316]))

    Cost
    ----
    One forward solve, then per step reversed (explicit RK with ``s`` stages, ``s - 1``
    used for FSAL methods, all ``s`` plus any extra interpolation stages on a step that
    holds loss times inside it): the stage states are recomputed (``s`` evaluations of f;
    skipped for a purely linear right-hand side) and ``s`` VJPs.  A VJP by complex step
    is one complex evaluation of f per colour of the Jacobian (``n`` for a dense one,
    fewer with ``jac_sparsity``) plus one per parameter when differentiating ``p``; a
    linear part adds one transposed apply.  ``checkpoints="all"`` stores every state
    (``nsteps x n`` floats) and reverses in one compiled sweep; ``checkpoints=C`` keeps
    ``C`` states (``u0`` included) and recomputes each step at most ``t`` times, where
    ``t`` is the smallest with ``binom(C + t, C) >= nsteps``: in all
    ``t nsteps - binom(C + t, C + 1)`` recomputed steps, Griewank's minimum
    (:mod:`jitsolve.adjoint.checkpoint`).  Work arrays: ``3 s`` state vectors.
    On a large state at fixed steps the array of every state (``"all"``) is kept after
    the call, up to 512 MiB, in the work-vector pool that the linear solvers share
    (``jitsolve.solvers.workspace``; ``workspace.clear()`` frees it): the next gradient of
    the same size reuses it instead of paying its pages' first touch again (a quarter of
    a 256^2 x 1,000-step gradient).
    Stiff methods (Rosenbrock, ESDIRK) are reversed by their own discrete adjoint
    (:mod:`jitsolve.stiff_gradient`).  With a discrete callback: ``n`` (plus one per
    parameter) complex evaluations of ``affect`` per change of the state, and the steps
    recomputed once between changes for ``checkpoints="all"`` (the forward then keeps
    only the loss times).
    """

    def __init__(self, checkpoints="all", store=None):
        if checkpoints == "binomial":
            checkpoints = 16
        if checkpoints != "all" and not (isinstance(checkpoints, (int, np.integer))
                                         and not isinstance(checkpoints, bool) and checkpoints >= 1):
            raise InvalidProblemError(
                f"checkpoints: expected 'all', 'binomial' or an integer >= 1, got {checkpoints!r}")
        if store is not None and not isinstance(store, HDF5Store):
            raise InvalidProblemError("store: expected js.HDF5Store(path) or None")
        if store is not None and checkpoints == "all":
            raise InvalidProblemError("store: an HDF5 store needs an integer number of checkpoints")
        self.checkpoints = checkpoints
        self.store = store


class FiniteDifference(SensitivityAlgorithm):
    """Central differences of the whole solve (a reference; costs 2 solves per entry).

    The step for entry ``x_k`` is ``step`` or ``1e-6 max(1, |x_k|)``; each perturbed
    solve saves at the loss's times.  Accurate to about ``1e-8`` relative at best.

    References
    ----------
    Nocedal, Wright, *Numerical Optimization* (2006), sec. 8.1.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> loss = js.L2Loss(np.array([1.0]), np.zeros((1, 1)))     # 0.5 u(1)^2
    >>> val, grads = js.gradient(prob, js.Tsit5(), loss, wrt="p",
    ...                          sensealg=js.FiniteDifference(), rtol=1e-8, atol=1e-10)
    >>> round(float(val), 8), np.round(grads["p"], 6)      # d/dp 0.5 exp(-2p) = -exp(-4)
    (0.00915782, array([-0.018316]))

    Cost
    ----
    Two full forward solves per entry of every differentiated input (``p``, ``u0`` or
    ``kappa``), plus one for the value: ``2 N + 1`` solves for ``N`` entries, each with
    its own ``remake`` of the problem.  Memory: one solve's.
    """

    def __init__(self, step=None):
        if step is not None:
            step = check_positive_float(step, "step")
        self.step = step


class _ContinuousAdjoint(SensitivityAlgorithm):
    """Base of the continuous adjoints: the adjoint ODE solved backwards with the forward
    (adaptive) algorithm, at the solve's ``rtol``/``atol``; accurate to that tolerance,
    not exact for the discrete solution (use ``DiscreteAdjoint`` for that).

    Explicit methods (Tsit5, DP5, Vern7, ...) run a compiled adaptive RK loop on the
    adjoint system; the stiff methods (Rodas5P, Rosenbrock23, KenCarp4, Kvaerno5,
    ImplicitEuler) run their own stiff loop on it, with its exact Jacobian
    ``-(J + L)^T`` from complex steps of ``f`` (or the user's ``jac``/``paramjac``):
    the dense path, at most ``dense_max`` unknowns; KenCarp4's IMEX form solves the
    adjoint fully implicitly (:mod:`jitsolve.adjoint.continuous_stiff`)."""

    mode = 0

    def __init__(self, **options):
        # SciMLSensitivity's options (autojacvec, checkpointing, ...) have no meaning
        # here: the products and the forward solution's source are chosen by the engine
        if options:
            name = sorted(options)[0]
            raise InvalidProblemError(
                f"{name}: {type(self).__name__}() takes no options (J^T v comes from the "
                f"user's vjp/jac or the complex step, the forward solution from its dense "
                f"output or checkpoints as the class says; for checkpointed memory use "
                f"js.DiscreteAdjoint(checkpoints=C))")


class InterpolatingAdjoint(_ContinuousAdjoint):
    """Continuous adjoint with the forward solution taken from its dense output (memory:
    every step's stages).

    References
    ----------
    Cao, Li, Petzold, Serban, SIAM J. Sci. Comput. 24 (2003); SciMLSensitivity.jl.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> loss = js.L2Loss(np.array([1.0]), np.zeros((1, 1)))     # 0.5 u(1)^2
    >>> val, grads = js.gradient(prob, js.Tsit5(), loss, wrt="p",
    ...                          sensealg=js.InterpolatingAdjoint(), rtol=1e-8, atol=1e-10)
    >>> round(float(val), 8), np.round(grads["p"], 6)      # d/dp 0.5 exp(-2p) = -exp(-4)
    (0.00915782, array([-0.018316]))

    Cost
    ----
    One forward solve keeping its dense output (every step's state and interpolation
    stages: about ``(s + 1) n`` floats per step), then per step of the adaptive
    backward solve of the ``n + np`` adjoint system: ``s`` stages (no FSAL), each an
    evaluation of the forward interpolant and one VJP (``ncolour + np`` complex
    evaluations of f, see :class:`DiscreteAdjoint`).  Rejected steps cost the same.
    With a stiff method, each evaluation of the adjoint right-hand side forms ``J`` and
    ``J_p`` (``n + np`` complex evaluations of f) and each step one dense LU of the
    ``n + np`` system.
    """

    mode = 0


class BacksolveAdjoint(_ContinuousAdjoint):
    """Continuous adjoint that re-integrates the state backwards with the adjoint (O(1)
    memory).  **Unstable on stiff or dissipative problems**: the backward state equation
    amplifies errors exponentially (e.g. the heat equation); prefer the interpolating or
    discrete adjoints there.

    References
    ----------
    Chen, Rubanova, Bettencourt, Duvenaud, *Neural ordinary differential equations* (2018).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> loss = js.L2Loss(np.array([1.0]), np.zeros((1, 1)))     # 0.5 u(1)^2
    >>> val, grads = js.gradient(prob, js.Tsit5(), loss, wrt="p",
    ...                          sensealg=js.BacksolveAdjoint(), rtol=1e-8, atol=1e-10)
    >>> round(float(val), 8), np.round(grads["p"], 6)      # d/dp 0.5 exp(-2p) = -exp(-4)
    (0.00915782, array([-0.018316]))

    Cost
    ----
    One forward solve (no dense output kept), then per step of the adaptive backward
    solve of the ``2 n + np`` augmented system (state, adjoint, parameter adjoint):
    ``s`` stages, each one evaluation of f and one VJP (``ncolour + np`` complex
    evaluations).  Memory: O(1) in the number of steps (the augmented state and ``s``
    stage vectors).
    """

    mode = 1


class QuadratureAdjoint(_ContinuousAdjoint):
    """Interpolating adjoint whose parameter integral ``mu = int J_p^T lam dt`` is a
    quadrature at the stage points, left out of the step-size control (kept in it with
    the ESDIRK methods: see Cost).

    References
    ----------
    Kim, Ji, Deng, Ma, Rackauckas, *Stiff neural ordinary differential equations* (2021).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> loss = js.L2Loss(np.array([1.0]), np.zeros((1, 1)))     # 0.5 u(1)^2
    >>> val, grads = js.gradient(prob, js.Tsit5(), loss, wrt="p",
    ...                          sensealg=js.QuadratureAdjoint(), rtol=1e-8, atol=1e-10)
    >>> round(float(val), 8), np.round(grads["p"], 6)      # d/dp 0.5 exp(-2p) = -exp(-4)
    (0.00915782, array([-0.018316]))

    Cost
    ----
    As :class:`InterpolatingAdjoint` per step (``s`` interpolant evaluations and ``s``
    VJPs, dense output of the forward solve kept), but the error norm covers only the
    ``n`` adjoint entries, so many parameters do not shrink the backward steps.  Not
    with the ESDIRK methods (KenCarp4, Kvaerno5, ImplicitEuler): their stage values are
    second order on a stiff adjoint, and ``mu`` left out of the control was 40-700x
    less accurate than the tolerance; it is controlled there, as by
    :class:`InterpolatingAdjoint` (the backward steps stop at the forward steps' ends
    anyway: as many steps, measured).
    """

    mode = 2


class ForwardSensitivity(SensitivityAlgorithm):
    """Forward (tangent-linear) sensitivities of the discrete solution, one direction per
    parameter (and per ``u0`` entry when differentiating ``u0``): cost grows with the
    number of inputs, so it suits few parameters.  Exact for the computed solution with
    the recorded steps, like :class:`DiscreteAdjoint` (they agree to rounding).

    References
    ----------
    Hairer, Nørsett, Wanner, *Solving ODEs I* (1993), I.14; Griewank, Walther,
    *Evaluating Derivatives* (2008), ch. 3.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> loss = js.L2Loss(np.array([1.0]), np.zeros((1, 1)))     # 0.5 u(1)^2
    >>> val, grads = js.gradient(prob, js.Tsit5(), loss, wrt="p",
    ...                          sensealg=js.ForwardSensitivity(), rtol=1e-8, atol=1e-10)
    >>> round(float(val), 8), np.round(grads["p"], 6)      # d/dp 0.5 exp(-2p) = -exp(-4)
    (0.00915782, array([-0.018316]))

    Cost
    ----
    One forward solve recording the steps, then per step the stages are recomputed
    (``s`` evaluations of f) and, per direction (``np`` for ``p``, ``n`` for ``u0``),
    one complex evaluation of f per stage (``J dY + J_p dp`` by complex step).  With the
    user's ``ODEFunction(f, jac=...)`` (and ``paramjac`` when differentiating ``p``; no
    ``jac_sparsity``, ``n <= 1024``) the explicit methods instead evaluate ``J`` and
    ``J_p`` once per stage and take every direction's product from them (no complex
    evaluation: ``f`` need not compile for complex numbers; the tangents are then exact
    to the user's derivatives).
    Memory: ``s`` stage tangents per direction and the tangents at the loss's times
    (``m x ndir x n`` floats).

    With a stiff method (Rodas5P, Rosenbrock23, KenCarp4, Kvaerno5, ImplicitEuler) the
    tangents are solved with the state by the same method as one system
    ``S_k' = (J + L) S_k + J_p dp_k`` under one error control: accurate to the
    tolerance, not exact for the plain solve's steps (``DiscreteAdjoint`` is).  Each
    right-hand side evaluation forms ``J``, ``J_p`` (``n + np`` complex evaluations of f),
    each Jacobian also their ``u``-derivatives by central differences (``2 n`` times
    that); one dense LU of size ``n (1 + ndir)`` per step, which must not exceed the
    algorithm's ``dense_max`` (use an adjoint for many inputs).
    """


# ------------------------------------------------------------------------- ODE gradients
def _wrt_tuple(wrt):
    if wrt is None:
        return ("p",)
    return (wrt,) if isinstance(wrt, str) else tuple(wrt)


def _loss_times(prob, loss):
    if loss.t_data is None:
        raise InvalidProblemError("loss: an ODE loss needs observation times: L2Loss(t_data, ...), "
                                  "js.Loss(value, grad, t_data=...) or saveat=...")
    t0, t1 = prob.tspan
    lo, hi = min(t0, t1), max(t0, t1)
    t = np.ascontiguousarray(loss.t_data, dtype=np.float64)
    if t.ndim != 1:
        raise InvalidProblemError("t_data: expected a 1-D array of finite times")
    if t.size == 0:
        return t
    # one reduction per check (this runs on every gradient): NaN fails both comparisons
    if not (t.min() >= lo and t.max() <= hi):
        if not np.isfinite(t).all():
            raise InvalidProblemError("t_data: expected a 1-D array of finite times")
        raise InvalidProblemError(f"t_data: observation times must lie in tspan [{lo}, {hi}]")
    if t.size > 1:
        d = t[1:] - t[:-1]
        if not (d.min() > 0 if t1 >= t0 else d.max() < 0):
            raise InvalidProblemError("t_data: times must be strictly increasing along tspan")
    return t


def _vjp_for(prob, rhs, wrt):
    from .adjoint.vjp import covers_products, make_vjp_source, user_derivatives
    from .kernels.cpu.rhs import zero_f_complex
    n = prob.u0.size
    has_f = rhs.fun is not None
    np_grad = rhs.p.size if "p" in wrt else 0
    if np_grad and not has_f:
        raise InvalidProblemError("wrt: this problem has no parameters p (a pure grid operator)")
    user = user_derivatives(rhs.fun, n, np_grad) if has_f else None
    # the complex twin only where a product is left to the complex step: with the user's
    # own derivatives covering them, f need not compile for complex numbers
    fc = (rhs.fun.cfunc("f_complex") if has_f and not covers_products(user, np_grad)
          else zero_f_complex)
    linT, plin, kappa, bw = None, None, False, None
    if rhs.lin is not None:
        import scipy.sparse as sp
        from .kernels.cpu import rhs as KR
        op = rhs.op
        if isinstance(op, GridOperator):
            from .kernels.cpu import rhs_grid as KG
            linT, plin = KG.grid_cfuncs(rhs.plin)[1], rhs.plin
            if "kappa" in wrt:
                if getattr(op, "param_name", None) != "kappa":
                    raise InvalidProblemError("wrt: 'kappa' needs a Diffusion operator")
                kappa = True
                bw = np.asarray(op.param_vjp(np.zeros(op.grid.shape), np.ones(op.grid.shape))).ravel()
        elif sp.issparse(op):
            linT, plin = KR.csr_apply_transpose, rhs.plin
        elif np.ndim(op) == 1:
            linT, plin = KR.diag_apply, rhs.plin
        else:
            linT, plin = KR.dense_apply_transpose, rhs.plin
    if "kappa" in wrt and not kappa:
        raise InvalidProblemError("wrt: 'kappa' needs a problem whose operator is a js.Diffusion")
    sparsity = rhs.fun.jac_sparsity if has_f else None
    return make_vjp_source(fc, rhs.p, has_f, n, sparsity=sparsity, np_grad=np_grad, linT=linT,
                           plin=plin, kappa_grad=kappa, bweight=bw, user=user), np_grad


def _stops_and(prob, tstops, inner):
    """The user's ``tstops`` and the loss times ``inner`` (in the direction of
    integration), in the direction of integration, each once."""
    if tstops is None:
        return inner
    both = np.union1d(np.asarray(tstops, dtype=np.float64), inner)
    return both[::-1].copy() if prob.tspan[1] < prob.tspan[0] else both


def _gradient_options(prob, loss, solve_kw):
    """``(t_data, o)``: the loss's observation times and ``solve``'s options (defaults
    filled in, checked, CPU) for a gradient's forward solve, the times after ``t0`` added
    to ``tstops`` so that the steps land on them."""
    t_data = _loss_times(prob, loss)
    o = dict(_DE_DEFAULTS, **solve_kw)
    if o.get("saveat") is not None:
        raise InvalidProblemError("saveat: gradient() saves at the loss's times; do not pass saveat")
    inner = t_data[t_data != prob.tspan[0]]
    o["tstops"] = _stops_and(prob, o.get("tstops"), inner)
    _check_de_options(prob, o)
    o["backend"] = "cpu"
    return t_data, o


def _loss_and_final_times(t_data, t1):
    """The times a continuous adjoint's forward solve saves: the loss's and ``t1`` (the
    backward solve starts there), nothing per step."""
    return t_data if t_data.size and t_data[-1] == t1 else np.append(t_data, t1)


def _forward_for_gradient(prob, alg, o, rhs, pooled=False):
    """The forward solve of a discrete gradient (raises unless it succeeded); ``pooled``:
    a large state's buffer of every state from the work-vector pool (``raw["pool"]``)."""
    raw = _run_explicit(prob, alg, o, rhs, dense=False, pooled=pooled)
    if raw["retcode"] != "Success":
        raise SolveFailedError(f"gradient: the forward solve ended with ReturnCode.{raw['retcode']} "
                               f"at t = {raw['t_end']:.6g}")
    return raw


def _kernel_rhs(rhs, n):
    """The kernels' right-hand-side tuple ``(f, p, lin, plin, haslin, tmp)``."""
    from .kernels.cpu.rhs import zero_f
    return (rhs.f, rhs.p, rhs.lin if rhs.lin is not None else zero_f,
            rhs.plin if rhs.plin is not None else np.zeros(0), rhs.lin is not None, np.empty(n))


def _grads_out(prob, wrt, lam, pbar, kbar):
    out = {}
    for name in wrt:
        if name == "u0":
            out["u0"] = lam.reshape(prob.u0.shape)
        elif name == "p":
            out["p"] = pbar
        elif name == "kappa":
            # the coefficient's own shape, the grid's (u0 may be the grid flattened)
            op = prob.L if isinstance(prob, SplitODEProblem) else prob.f
            out["kappa"] = kbar.reshape(op.grid.shape)
    return out


def dense_save_map(t_data, steps_t, steps_h, t0, t_end):
    """Where each loss time lies in the accepted steps of a solve that saved at
    ``t_data`` from the interpolant: ``(save_after, dsave, g_initial_row)``.

    ``save_after[i] = j`` when ``t_data[j]`` is the end of step ``i``; the others (not
    ``t0``) lie strictly inside a step ``i`` and go to ``dsave = (dptr, dtheta, drow)``
    (CSR over steps, ``theta = (t_j - t_i) / h_i`` computed as the forward loop does);
    ``g_initial_row`` the row at ``t0`` or None.
    """
    N = steps_t.size
    tdir = 1.0 if (N == 0 or steps_h[0] >= 0) else -1.0
    # the forward loop's own saving replayed (compiled: a NumPy form cost ~35 us, a tenth
    # of a small system's gradient)
    from .kernels.cpu.erk_adjoint import save_map_entry
    from .kernels.cpu.fastcall import call
    m = t_data.size
    save_after = -np.ones(N, dtype=np.int64)
    dptr = np.zeros(N + 1, dtype=np.int64)
    dtheta = np.empty(m)
    drow = np.empty(m, dtype=np.int64)
    nd, g0 = call(save_map_entry, t_data, steps_t, steps_h, N, float(t0), float(t_end), tdir,
                  save_after, dptr, dtheta, drow)
    if nd + int(np.count_nonzero(save_after >= 0)) + (g0 >= 0) == m:
        return save_after, (dptr, dtheta[:nd], drow[:nd]), (int(g0) if g0 >= 0 else None)
    # a time the steps do not cover (beyond the solve's end): name the first one
    seen = np.zeros(m, dtype=bool)
    seen[drow[:nd]] = True
    seen[save_after[save_after >= 0]] = True
    if g0 >= 0:
        seen[g0] = True
    raise KeyError(float(t_data[np.argmin(seen)]))


def _discrete_adjoint_dense(prob, alg, loss, wrt, sensealg, o, t_data):
    """:func:`_ode_discrete_adjoint` where the loss times are saved from the method's
    interpolant (:func:`jitsolve.ode.interpolates_saveat`): the forward is exactly
    ``solve(prob, alg, saveat=t_data, **solve_kw)`` (same steps, same saved values bit
    for bit); the reverse sweep (or, for ``ForwardSensitivity``, the tangents)
    differentiates each save through its step's interpolant."""
    from .adjoint.discrete import erk_adjoint
    from .adjoint.vjp import is_diagonal_pattern
    from .solvers.ode.explicit import tableau_arrays
    _check_de_options(prob, o)
    o["saveat"] = t_data       # validated by _loss_times
    o["backend"] = "cpu"
    rhs = problem_rhs(prob)
    raw = _forward_for_gradient(prob, alg, o, rhs)
    st, sh = raw["steps_t"], raw["steps_h"]
    n = prob.u0.size
    save_after, dsave, g_initial_row = dense_save_map(t_data, st, sh, prob.tspan[0],
                                                      raw["t_end"])
    u_saved = raw["u"].reshape((t_data.size,) + prob.u0.shape)
    val = loss.value(u_saved)
    g = np.ascontiguousarray(loss.grad(u_saved).reshape(t_data.size, n), dtype=np.float64)
    if isinstance(sensealg, ForwardSensitivity):
        return _forward_sensitivity(prob, alg, rhs, _kernel_rhs(rhs, n), wrt, st, sh, save_after,
                                    g, g_initial_row, val, dsave, o.get("callback"), raw, o)
    vj, np_grad = _vjp_for(prob, rhs, wrt)
    diag = rhs.fun is not None and is_diagonal_pattern(rhs.fun.jac_sparsity, n)
    lam, pbar, kbar, nre = erk_adjoint(
        _kernel_rhs(rhs, n), vj, tableau_arrays(alg.tableau), st, sh,
        u0=prob.u0.ravel().astype(np.float64), gsave=g, save_after=save_after,
        g_initial=None if g_initial_row is None else g[g_initial_row],
        checkpoints=sensealg.checkpoints, store=sensealg.store, np_grad=np_grad, diag=diag,
        dsave=dsave, jumps=_jumps(o.get("callback"), raw, rhs, np_grad, n, alg, o,
                                  prob.tspan[1]))
    return val, _grads_out(prob, wrt, lam, pbar, kbar), dict(naccept=st.size, nrecompute=nre)


def _jumps(callback, raw, rhs, np_grad, n, alg, o, t1):
    """The discrete callback's jumps of the forward pass ``raw`` (None without a
    callback); with adaptive steps, ``tstops`` and ``t1`` are the step ends that do not
    move with the parameters."""
    if callback is None:
        return None
    from .callback_gradient import discrete_jumps
    fixed = None
    if getattr(alg, "adaptive", False) and o["adaptive"]:
        stops = o.get("tstops")
        fixed = np.append(np.asarray(stops if stops is not None else [], dtype=np.float64), t1)
    return discrete_jumps(callback, raw, rhs.p, np_grad, n, fixed)


def loss_on_landed_steps(prob, loss, t_data, t_after, raw, all_states):
    """The loss on a forward pass whose steps land on the loss's times (they are tstops):
    ``(value, dL/du rows (m, n), save_after, the row at t0 or None)``.

    ``t_after[i]`` is the time after step ``i`` (monotone in the direction of
    integration); ``save_after[i] = j`` when ``t_data[j]`` ends step ``i``.  With
    ``all_states`` ``raw["u"]`` holds ``u0`` and every step's end, else the states at the
    times ``raw["t"]``.  A time no step ends on raises ``KeyError(t)``."""
    t0 = prob.tspan[0]
    n = prob.u0.size
    save_after = -np.ones(t_after.size, dtype=np.int64)
    saved = np.empty((t_data.size, n))
    g_initial_row = None
    # exact lookups by bisection
    rev = t_after.size > 1 and t_after[-1] < t_after[0]
    at = np.searchsorted(-t_after if rev else t_after, -t_data if rev else t_data)
    if not all_states:
        tsav = raw["t"]
        ksav = np.searchsorted(-tsav if rev else tsav, -t_data if rev else t_data)
    for j, t in enumerate(t_data):
        if t == t0:
            g_initial_row = j
            saved[j] = prob.u0.ravel()
            continue
        i = int(at[j])
        if i >= t_after.size or t_after[i] != t:
            raise KeyError(float(t))
        save_after[i] = j
        if all_states:
            saved[j] = raw["u"][i + 1]
        else:
            k = int(ksav[j])
            if k >= tsav.size or tsav[k] != t:
                raise KeyError(float(t))
            saved[j] = raw["u"][k]
    u_saved = saved.reshape((t_data.size,) + prob.u0.shape)
    val = loss.value(u_saved)
    g = np.ascontiguousarray(loss.grad(u_saved).reshape(t_data.size, n), dtype=np.float64)
    return val, g, save_after, g_initial_row


def loss_on_loop_steps(prob, loss, t_data, raw, all_states):
    """:func:`loss_on_landed_steps` on a compiled loop's pass (explicit or stiff): the
    state after step ``i`` is at time ``steps_t[i + 1]`` (exactly), the last at ``t1``."""
    st = raw["steps_t"]
    t_after = np.append(st[1:], prob.tspan[1]) if st.size else st
    return loss_on_landed_steps(prob, loss, t_data, t_after, raw, all_states)


def _ode_discrete_adjoint(prob, alg, loss, wrt, sensealg, solve_kw):
    """Value, gradients and ``{naccept, nrecompute}`` of an explicit RK solve's loss by
    the discrete adjoint (or the forward sensitivities).

    The gradient is the exact derivative of the discrete solution that
    ``solve(prob, alg, saveat=t_data, **solve_kw)`` returns, with its accepted step
    sequence held fixed (the controller is not differentiated).  Where ``solve`` saves
    from the interpolant (:func:`jitsolve.ode.interpolates_saveat`: Tsit5, DP5, Vern7 on
    small states) the forward takes its own steps and the saves inside steps are
    differentiated through the interpolant (Hairer, Nørsett, Wanner I, II.6); elsewhere
    (Euler, RK4, large states) the steps land on the loss times.
    """
    from .adjoint.discrete import erk_adjoint
    from .solvers.ode.explicit import tableau_arrays
    if not isinstance(alg, ExplicitRK):
        raise UnsupportedAlgorithmError(
            f"alg: the discrete adjoint covers the explicit Runge-Kutta, Rosenbrock, (E)SDIRK "
            f"and ETDRK4 methods in this build; {type(alg).__name__} is not supported yet")
    callback = solve_kw.get("callback")
    if callback is not None:
        from .callback_gradient import check_affect
        check_affect(callback, prob.u0, prob.tspan[0], prob.p)
    t_data = _loss_times(prob, loss)
    o = dict(_DE_DEFAULTS, **solve_kw)
    if o.get("saveat") is not None:
        raise InvalidProblemError("saveat: gradient() saves at the loss's times; do not pass saveat")
    t0 = prob.tspan[0]
    inner = t_data[t_data != t0]
    forward_mode = isinstance(sensealg, ForwardSensitivity)
    if forward_mode and "kappa" in wrt:
        raise UnsupportedAlgorithmError("wrt: ForwardSensitivity differentiates 'p' and 'u0' "
                                        "(a coefficient field has too many entries: use DiscreteAdjoint)")
    # differentiate the saving solve(saveat=t_data) does: from the interpolant inside steps
    # where the method has one (no extra steps), else steps landing on the loss times
    if interpolates_saveat(alg, prob.u0.size):
        return _discrete_adjoint_dense(prob, alg, loss, wrt, sensealg, o, t_data)
    o["tstops"] = _stops_and(prob, o.get("tstops"), inner)
    # (with a callback the states are recomputed segment by segment between its jumps)
    all_states = (not forward_mode) and sensealg.checkpoints == "all" and callback is None
    o["saveat"] = None if all_states else inner
    _check_de_options(prob, o)
    o["backend"] = "cpu"
    rhs = problem_rhs(prob)
    raw = _forward_for_gradient(prob, alg, o, rhs, pooled=all_states)
    # the buffer of every state (large states) goes back to the pool once reversed
    pool = raw.pop("pool", None)
    st, sh = raw["steps_t"], raw["steps_h"]
    n = prob.u0.size
    states = raw["u"] if all_states else None
    val, g, save_after, g_initial_row = loss_on_loop_steps(prob, loss, t_data, raw, all_states)
    krhs = _kernel_rhs(rhs, n)
    if forward_mode:
        return _forward_sensitivity(prob, alg, rhs, krhs, wrt, st, sh, save_after, g,
                                    g_initial_row, val, None, callback, raw, o)
    from .adjoint.vjp import is_diagonal_pattern
    vj, np_grad = _vjp_for(prob, rhs, wrt)
    diag = rhs.fun is not None and is_diagonal_pattern(rhs.fun.jac_sparsity, n)
    lam, pbar, kbar, nre = erk_adjoint(
        krhs, vj, tableau_arrays(alg.tableau), st, sh,
        states=np.ascontiguousarray(states) if all_states else None,
        u0=prob.u0.ravel().astype(np.float64), gsave=g, save_after=save_after,
        g_initial=None if g_initial_row is None else g[g_initial_row],
        checkpoints=sensealg.checkpoints, store=sensealg.store, np_grad=np_grad, diag=diag,
        jumps=_jumps(callback, raw, rhs, np_grad, n, alg, o, prob.tspan[1]))
    if pool is not None:
        # nothing refers to the states any more (give() checks: a view still held
        # somewhere keeps the buffer out of the pool)
        from .solvers import workspace
        del raw, states
        workspace.give(pool)
    out = _grads_out(prob, wrt, lam, pbar, kbar)
    out_info = dict(naccept=st.size, nrecompute=nre)
    return val, out, out_info


def _forward_sensitivity(prob, alg, rhs, krhs, wrt, st, sh, save_after, g, g_initial_row, val,
                         dsave=None, callback=None, raw=None, o=None):
    """Forward sensitivities of the recorded steps; with a discrete ``callback``, the
    tangents pushed across each of its jumps in ``raw`` by the affect's Jacobians."""
    from .adjoint.vjp import COMPLEX_STEP
    from .kernels.cpu.erk_adjoint import NO_DENSE_SAVES
    from .kernels.cpu.erk_tangent import erk_tangent
    from .kernels.cpu.fastcall import call
    from .kernels.cpu.rhs import zero_f_complex
    from .solvers.ode.explicit import tableau_arrays
    n, npar = prob.u0.size, rhs.p.size
    has_f = rhs.fun is not None
    if "p" in wrt and not has_f:
        raise InvalidProblemError("wrt: this problem has no parameters p")
    du0, dp, names = tangent_directions(wrt, n, npar, npar)
    m = g.shape[0]
    S = np.zeros((m, du0.shape[0], n))
    uj = _user_jacobians(rhs.fun, n, npar, "p" in wrt) if has_f else None
    fc = rhs.fun.cfunc("f_complex") if has_f and uj is None else zero_f_complex
    tab = tableau_arrays(alg.tableau)
    u0 = prob.u0.ravel().astype(np.float64)
    jumps = _jumps(callback, raw, rhs, npar if "p" in wrt else 0, n, alg, o, prob.tspan[1])
    if not jumps:
        call(erk_tangent, krhs, fc, has_f, tab, u0, st, sh, save_after,
             NO_DENSE_SAVES if dsave is None else dsave, du0, dp, S, COMPLEX_STEP, uj)
    else:
        from .adjoint.discrete import jump_segments, segment_dsave
        # segment by segment, the tangent at each segment's end into a spare row m
        S = np.zeros((m + 1, du0.shape[0], n))
        T = du0
        starts = [u0] + [j.after for j in jumps]
        for s, (a, b) in enumerate(jump_segments(jumps, st.size)):
            if b > a:
                sa = save_after[a:b].copy()
                end = int(sa[-1]) if sa[-1] >= 0 else m
                sa[-1] = end
                seg = segment_dsave(dsave, a, b)
                call(erk_tangent, krhs, fc, has_f, tab, starts[s], np.ascontiguousarray(st[a:b]),
                     np.ascontiguousarray(sh[a:b]), sa, NO_DENSE_SAVES if seg is None else seg,
                     np.ascontiguousarray(T), dp, S, COMPLEX_STEP, uj)
                T = S[end].copy()
            if s < len(jumps):
                T = jumps[s].jvp(T, dp)
        S = S[:m]
    if g_initial_row is not None:
        S[g_initial_row] = du0
    return val, tangent_gradient(prob, g, S, names), {}


def _user_jacobians(fun, n, npar, want_p):
    """The explicit tangents' ``uj`` tuple from the user's ``jac`` (and ``paramjac`` when
    ``p`` is differentiated): ``(jac, pjac, haspj, Jbuf, Jpbuf)``, or None (complex step)
    when they do not give every product, a ``jac_sparsity`` is declared (the coloured
    complex step is cheaper than an ``n x n`` product) or ``n > USER_JAC_MAX``
    (:func:`jitsolve.adjoint.vjp.usable_jac`, the adjoints' rule)."""
    from .adjoint.vjp import usable_jac
    if not usable_jac(fun, n):
        return None
    if want_p and npar and fun.paramjac is None:
        return None
    jac = fun.cfunc("jac")
    haspj = bool(want_p and npar)
    pjac = fun.cfunc("paramjac") if haspj else jac      # same signature: a placeholder
    return (jac, pjac, haspj, np.zeros((n, n)), np.zeros((n, max(npar, 1))))


def tangent_directions(wrt, n, npar, npg):
    """Forward-sensitivity seeds: ``(du0, dp, names)``, one direction per entry of ``p``
    (``du0 = 0``, ``dp = e_k``) then of ``u0`` (``du0 = e_k``, ``dp = 0``); ``dp`` has
    ``npg`` columns; ``names`` the ``(name, count)`` blocks in order."""
    dirs_u, dirs_p, names = [], [], []
    if "p" in wrt:
        dirs_u.append(np.zeros((npar, n)))
        dirs_p.append(np.eye(npar, npg))
        names.append(("p", npar))
    if "u0" in wrt:
        dirs_u.append(np.eye(n))
        dirs_p.append(np.zeros((n, npg)))
        names.append(("u0", n))
    du0 = np.ascontiguousarray(np.concatenate(dirs_u), dtype=np.float64)
    dp = np.ascontiguousarray(np.concatenate(dirs_p).reshape(du0.shape[0], npg),
                              dtype=np.float64)
    return du0, dp, names


#: while set to a list, :func:`tangent_gradient` appends ``(g, S, names)`` to it: how
#: :mod:`jitsolve.local_sensitivity` reads the tangents themselves (a context variable, so
#: a thread's capture never sees another's)
TANGENT_SINK = contextvars.ContextVar("jitsolve_tangent_sink", default=None)


def tangent_gradient(prob, g, S, names):
    """``{name: sum_j g_j . S_j[direction]}`` from the loss gradients ``g`` (m x n) and the
    tangents ``S`` (m x ndir x n) at the loss's times, split by :func:`tangent_directions`'
    ``names``."""
    sink = TANGENT_SINK.get()
    if sink is not None:
        sink.append((g, S, names))
    grad = np.einsum("jn,jdn->d", g, S)
    out, k = {}, 0
    for name, cnt in names:
        gr = grad[k:k + cnt]
        out[name] = gr.reshape(prob.u0.shape) if name == "u0" else gr
        k += cnt
    return out


def _continuous_adjoint(prob, alg, loss, wrt, sensealg, solve_kw):
    from .kernels.cpu.continuous_adjoint import continuous_adjoint
    from .kernels.cpu.rhs import zero_f
    from .solvers.ode.explicit import tableau_arrays
    if isinstance(alg, StiffAlgorithm):
        from .stiff_gradient import stiff_continuous_adjoint
        return stiff_continuous_adjoint(prob, alg, loss, wrt, sensealg, solve_kw)
    if not (isinstance(alg, ExplicitRK) and alg.adaptive):
        raise UnsupportedAlgorithmError(
            f"alg: continuous adjoints integrate the adjoint ODE with the forward method, "
            f"which must be adaptive (explicit: Tsit5, DP5, Vern7; stiff: Rodas5P, "
            f"Rosenbrock23, KenCarp4, Kvaerno5, ImplicitEuler); got {type(alg).__name__}")
    if "kappa" in wrt:
        raise UnsupportedAlgorithmError("wrt: use DiscreteAdjoint for coefficient fields")
    t_data, o = _gradient_options(prob, loss, solve_kw)
    t0, t1 = prob.tspan
    rhs = problem_rhs(prob)
    need_dense = sensealg.mode != 1
    if not need_dense:
        # backsolve: save the loss's states and u(t1) only (the steps land on them: they
        # are tstops), so the forward keeps O(1) memory in the number of steps
        o["saveat"] = _loss_and_final_times(t_data, t1)
    raw = _run_explicit(prob, alg, o, rhs, dense=need_dense)
    if raw["retcode"] != "Success":
        raise SolveFailedError(f"gradient: the forward solve ended with ReturnCode.{raw['retcode']}")
    n = prob.u0.size
    lookup = {float(t): k for k, t in enumerate(raw["t"])}
    saved = np.stack([raw["u"][lookup[float(t)]] for t in t_data])
    u_saved = saved.reshape((t_data.size,) + prob.u0.shape)
    val = loss.value(u_saved)
    g = np.ascontiguousarray(loss.grad(u_saved).reshape(t_data.size, n), dtype=np.float64)
    vj, np_grad = _vjp_for(prob, rhs, wrt)
    krhs = (rhs.f, rhs.p, rhs.lin if rhs.lin is not None else zero_f,
            rhs.plin if rhs.plin is not None else np.zeros(0), rhs.lin is not None, np.empty(n))
    order = np.argsort(-(t_data - t0) * (1 if t1 >= t0 else -1))     # from t1 back to t0
    jump = order[t_data[order] != t0]
    tab = tableau_arrays(alg.tableau)
    if need_dense:
        dense = (raw["steps_t"], raw["steps_h"], np.ascontiguousarray(raw["dense_u"]),
                 np.ascontiguousarray(raw["dense_k"]))
    else:
        dense = (np.zeros(1), np.ones(1), np.zeros((1, n)), np.zeros((1, tab[5].shape[0], n)))
    rtol = float(np.min(o["rtol"]))
    atol = float(np.min(o["atol"]))
    dt0 = float(abs(raw["steps_h"][-1])) if raw["steps_h"].size else abs(t1 - t0) * 1e-3
    lam, mu, nst, nrej, ok = continuous_adjoint(
        krhs, vj, tab, sensealg.mode, dense, np.ascontiguousarray(raw["u"][-1]), float(t1),
        float(t0), np.ascontiguousarray(t_data[jump]), np.ascontiguousarray(g[jump]),
        (rtol, atol, dt0, int(o["maxiters"]), float(o["dtmin"] or 0.0)), np_grad)
    if not ok:
        raise SolveFailedError(f"gradient: the adjoint solve of {type(sensealg).__name__} failed "
                               f"after {nst} steps (step size below dtmin or underflow, or "
                               f"maxiters)")
    lam = lam.copy()
    for j in np.nonzero(t_data == t0)[0]:
        lam += g[j]
    out = {}
    for name in wrt:
        if name == "u0":
            out["u0"] = lam.reshape(prob.u0.shape)
        elif name == "p":
            out["p"] = mu.copy()
    return val, out


def _finite_difference(prob, alg, loss, wrt, step, solve_kw):
    from .problems import kappa_of, remake
    t_data = _loss_times(prob, loss)

    def J(pr):
        s = solve(pr, alg, saveat=t_data, **solve_kw)
        if not s.successful:
            where = f" at t = {s.t[-1]:.6g}" if len(s.t) else ""
            raise SolveFailedError(f"gradient: a finite-difference solve ended with "
                                   f"{s.retcode.value}{where}")
        return loss.value(s.u)
    val = J(prob)
    out = {}
    for name in wrt:
        if name == "kappa":
            base, with_kappa = kappa_of(prob)
        else:
            base = getattr(prob, name)
        x = np.array(base, dtype=np.float64)
        gr = np.zeros_like(x)
        flat = x.ravel()
        for k in range(flat.size):
            h = step or 1e-6 * max(1.0, abs(flat[k]))
            vals = []
            for sgn in (1, -1):
                y = flat.copy()
                y[k] += sgn * h
                if name == "kappa":
                    pr = with_kappa(y.reshape(x.shape))
                else:
                    pr = remake(prob, **{name: y.reshape(x.shape)})
                vals.append(J(pr))
            gr.ravel()[k] = (vals[0] - vals[1]) / (2 * h)
        out[name] = gr
    return val, out


@register_gradient(ODEProblem)
@register_gradient(SplitODEProblem)
def _ode_gradient(prob, alg, loss, wrt, sensealg, **solve_kw):
    wrt = _wrt_tuple(wrt)
    for name in wrt:
        if name not in ("p", "u0", "kappa"):
            raise InvalidProblemError(f"wrt: cannot differentiate with respect to {name!r} "
                                      f"(choose from 'p', 'u0', 'kappa')")
    if sensealg is None:
        sensealg = DiscreteAdjoint()
    if isinstance(sensealg, FiniteDifference):
        return _finite_difference(prob, alg, loss, wrt, sensealg.step, solve_kw)
    from .exponential import ETDRK4
    if solve_kw.get("callback") is not None and not (
            isinstance(sensealg, (DiscreteAdjoint, ForwardSensitivity))
            and isinstance(alg, ExplicitRK)):
        # the other adjoints do not carry the jumps of events and affects (the continuous
        # ones gave silently wrong gradients through them)
        raise UnsupportedAlgorithmError(
            "callback: gradients through callbacks are computed by js.DiscreteAdjoint() "
            "or js.ForwardSensitivity() with the explicit Runge-Kutta methods (a "
            "js.DiscreteCallback)" + ("" if isinstance(alg, ETDRK4) else
                                       ", or by js.FiniteDifference()")
            + f"; not by {type(sensealg).__name__} with {type(alg).__name__}"
            + (" (ETDRK4 takes no callbacks)" if isinstance(alg, ETDRK4) else ""))
    if isinstance(alg, ETDRK4):
        if not isinstance(sensealg, DiscreteAdjoint):
            raise UnsupportedAlgorithmError(
                f"sensealg: ETDRK4 is differentiated by js.DiscreteAdjoint() or "
                f"js.FiniteDifference(); got {type(sensealg).__name__}")
        from .exponential import etd_discrete_adjoint
        return etd_discrete_adjoint(prob, alg, loss, wrt, sensealg, solve_kw)
    if isinstance(sensealg, _ContinuousAdjoint):
        return _continuous_adjoint(prob, alg, loss, wrt, sensealg, solve_kw)
    if isinstance(alg, StiffAlgorithm) and isinstance(sensealg, DiscreteAdjoint):
        from .stiff_gradient import stiff_discrete_adjoint
        return stiff_discrete_adjoint(prob, alg, loss, wrt, sensealg, solve_kw)
    if isinstance(alg, StiffAlgorithm) and isinstance(sensealg, ForwardSensitivity):
        from .stiff_gradient import stiff_forward_sensitivity
        return stiff_forward_sensitivity(prob, alg, loss, wrt, sensealg, solve_kw)
    if isinstance(sensealg, (DiscreteAdjoint, ForwardSensitivity)):
        val, out, _info = _ode_discrete_adjoint(prob, alg, loss, wrt, sensealg, solve_kw)
        return val, out
    raise UnsupportedAlgorithmError(
        f"sensealg: {type(sensealg).__name__} is not implemented in this build; use "
        f"js.DiscreteAdjoint() or js.FiniteDifference()")


def _check_gradient_eps(eps):
    """User step sizes for :func:`check_gradient`: at least two distinct finite numbers
    > 0, returned largest first (the rates are read from the largest step down)."""
    try:
        e = np.asarray(eps, dtype=np.float64)
    except (TypeError, ValueError):
        e = None
    if e is None or e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or \
            not np.all(e > 0.0):
        shown = e.tolist() if e is not None else eps
        raise InvalidProblemError(f"eps: expected at least two step sizes > 0, got {shown!r}")
    e = np.sort(e)[::-1]
    if np.any(e[1:] == e[:-1]):
        raise InvalidProblemError(f"eps: the step sizes must be distinct, got {e.tolist()!r}")
    return e


def check_gradient(prob, alg, loss, wrt="p", sensealg=None, *, eps=None, seed=0, verbose=True,
                   **solve_kw):
    """Taylor remainder test of ``js.gradient``: for a random direction ``d`` the
    remainder ``|J(x + e d) - J(x) - e g.d|`` must fall as ``e^2``.

    Parameters
    ----------
    prob, alg, loss, wrt, sensealg, **solve_kw : as for ``js.gradient``
        ``wrt`` one name.  With ``wrt="kappa"`` (the js.Diffusion coefficient of a
        LinearProblem's ``A``, an ODEProblem's ``f`` or a SplitODEProblem's ``L``) the
        direction is relative to ``kappa`` and the default steps change it by at most
        3 %, so it stays positive.  An ``EnsembleProblem`` is tested wrt its shared
        ``p`` (``u0``) when it has no ``ps`` (``u0s``), else wrt all its rows at once
        (:func:`ensemble_wrt`); ``J`` is then the loss summed over the trajectories.
    eps : sequence of at least two distinct floats > 0, optional
        The steps ``e`` (sorted largest first); default ``0.1 s 2^-k``, ``k = 0..4``,
        with ``s = max(max |x|, 1e-3)`` (``s = 1`` for ``kappa``).
    seed : int >= 0
        Seeds the random direction ``d``; for an SDE problem (or an ensemble of one) it
        is also the solves' ``seed`` (the Brownian paths), as ``js.gradient(...,
        seed=seed)`` would take it, so ``J`` is one smooth function of ``x``.
    verbose : bool
        Print the steps, the remainders and the verdict (default True).

    Returns
    -------
    dict
        ``eps`` (the steps, largest first), ``remainder`` (one per step), ``order``
        (the log-log slope of the remainders over the steps; inf where every remainder
        is 0), ``rates`` (the slopes between successive steps), ``passed``, ``value``
        (``J(x)``) and ``hint`` (why a failure may not mean a wrong gradient; "" if
        none).  ``passed``: the order is > 1.8 and the rate at the two smallest steps
        > 1.5 (a slightly wrong gradient shows there: its first-order term takes over
        as the steps shrink) unless that remainder is at round-off (below
        ``1e-12 max(|J|, 1)``); or every remainder is below that and, at the largest
        step, the rate is > 1.5 or the remainder below 1 % of the first-order term
        ``e |g.d|`` (so a wrong gradient of a loss with a large constant part fails).
        A gradient wrong by less than about 0.5 % along ``d`` can pass with the
        default steps: give smaller ``eps`` to resolve it.

    References
    ----------
    Farrell, Ham, Funke, Rognes, *Automated derivation of the adjoint of high-level
    transient finite element programs*, SIAM J. Sci. Comput. 35 (2013), sec. 5.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> loss = js.L2Loss(np.array([1.0]), np.zeros((1, 1)))     # 0.5 u(1)^2
    >>> report = js.check_gradient(prob, js.Tsit5(), loss, wrt="p", verbose=False,
    ...                            rtol=1e-8, atol=1e-10)
    >>> report["passed"], round(report["order"], 1), report["eps"].size
    (True, 2.0, 5)

    Cost
    ----
    Per call: one ``js.gradient`` (forward solve and adjoint) and one forward solve
    per step size (5 by default), each with its own ``remake`` of the problem.
    """
    from .gradient import gradient
    from .problems import kappa_of, remake
    from .losses import observe_at_saveat
    if not isinstance(wrt, str):
        raise InvalidProblemError("wrt: check_gradient tests one input at a time (a string)")
    seed = check_seed(seed)
    if not isinstance(verbose, (bool, np.bool_)):
        raise InvalidProblemError(f"verbose: expected True or False, got {verbose!r}")
    if eps is not None:
        eps = _check_gradient_eps(eps)
    stochastic = isinstance(prob.prob if isinstance(prob, EnsembleProblem) else prob,
                            SDEProblem)
    if stochastic:                 # the Brownian paths of gradient's solve and of J's
        solve_kw = dict(solve_kw, seed=seed)
    loss, solve_kw = observe_at_saveat(prob, loss, solve_kw)
    val, grads = gradient(prob, alg, loss, wrt=(wrt,), sensealg=sensealg, **solve_kw)
    g = grads[wrt]
    ensemble = isinstance(prob, EnsembleProblem)
    if ensemble:
        x, with_x, shared = ensemble_wrt(prob, wrt)
        if shared:
            g = g.sum(axis=0)
    elif wrt == "kappa":
        x, with_x = kappa_of(prob)
    else:
        x, with_x = getattr(prob, wrt), lambda y: remake(prob, **{wrt: y})
    if np.size(x) == 0:
        raise InvalidProblemError(f"wrt: the problem has no {wrt} to test (it is empty)")
    rng = np.random.default_rng(seed)
    d = rng.standard_normal(np.shape(x))
    if wrt == "kappa":
        # relative steps (|e d| <= 3 % of kappa), so kappa stays > 0 at any scale
        d = 0.1 * np.abs(x) * np.clip(d, -3.0, 3.0)
        scale = 1.0
    else:
        scale = max(np.abs(x).max(), 1e-3)
    eps = eps if eps is not None else scale * 0.1 * 0.5 ** np.arange(5)

    def J(y):
        pr = with_x(y)
        if loss.t_data is None:
            return loss.value(solve(pr, alg, **solve_kw).u)
        s = solve(pr, alg, saveat=loss.t_data, **solve_kw)
        if ensemble:
            return ensemble_loss_value(loss, s.u)
        return loss.value(s.u)
    gd = float(np.sum(g * d))
    rem = np.array([abs(J(x + e * d) - val - e * gd) for e in eps])
    finite = bool(np.all(np.isfinite(rem)) and np.all(np.isfinite(g)))
    ok = np.isfinite(rem) & (rem > 1e-300)
    order = (np.polyfit(np.log(eps[ok]), np.log(rem[ok]), 1)[0] if ok.sum() >= 2 else
             (np.inf if finite else np.nan))
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = np.log(rem[1:] / rem[:-1]) / np.log(np.asarray(eps[1:]) / np.asarray(eps[:-1]))
    # the slope over all steps, and at the smallest steps: a gradient wrong by a few per
    # cent still gives a slope near 2 where the curvature term dominates (large steps),
    # but its first-order term takes over as the steps shrink
    floor = 1e-12 * max(abs(val), 1.0)
    last = float(rates[-1]) if rates.size else np.inf
    # every remainder below 1e-12 |J| (a loss with a large constant part): a pass only
    # where the remainder is second order at the largest step, where J moves the most,
    # or is far below the first-order term e |g.d| there (round-off); a wrong gradient's
    # remainder is about e |(g - g_true).d|, first order, however small against |J|
    tiny = bool(np.all(rem < floor) and (rem[0] <= 1e-2 * eps[0] * abs(gd)
                                         or float(rates[0]) > 1.5))
    passed = finite and bool(tiny or (order > 1.8 and (rem[-1] < floor or last > 1.5)))
    # adaptive steps at loose tolerances: the solution is a rough function of x (the step
    # sequence moves with it), so even an exact gradient fails the test
    loose = (not isinstance(prob, LinearProblem) and solve_kw.get("adaptive", True)
             and getattr(alg, "adaptive", True)        # fixed-step methods (RK4) are not
             and float(np.max(solve_kw.get("rtol", 1e-3))) > 1e-6)
    hint = ("" if passed or not loose else
            "; the solves are adaptive at rtol > 1e-6: the step sequence moves with x and "
            "the remainder stalls even for an exact gradient -- check at rtol=1e-10, "
            "atol=1e-12 or with fixed steps")
    if not passed and not hint and finite and np.all(rem < floor):
        hint = ("; every remainder is below 1e-12 max(|J|, 1) (round-off for the solves), "
                "but it is first order at the largest step: a wrong gradient, unless J's "
                "round-off dominates even there (then rescale the loss or give larger eps)")
    report = dict(eps=np.asarray(eps), remainder=rem, order=float(order), rates=rates,
                  passed=passed, value=float(val), hint=hint)
    if verbose:
        print(f"check_gradient wrt={wrt}: J = {val:.6e}")
        for e, r in zip(eps, rem):
            print(f"  eps = {e:9.3e}  remainder = {r:9.3e}")
        print(f"  observed order {order:.2f}, {last:.2f} at the smallest steps (expect 2): "
              f"{'PASSED' if passed else 'FAILED'}{hint}")
    return report


def _ensemble_gradient(eprob, alg, loss, wrt, sensealg, solve_kw):
    """Per-trajectory gradients of an ensemble in one compiled kernel (see
    :func:`jitsolve.kernels.cpu.erk_adjoint.erk_ensemble_gradient`).  Each trajectory's
    forward is exactly what ``solve(eprob, alg, saveat=t_data, **solve_kw)`` computes for
    it: where the method saves from its interpolant (:func:`jitsolve.ode.interpolates_saveat`)
    the loss times are not stops and the saves inside steps are differentiated through
    the interpolant (Hairer, Nørsett, Wanner I, II.6), as the single-trajectory
    ``DiscreteAdjoint`` does; elsewhere the steps land on the loss times."""
    from .kernels.cpu import erk_adjoint as K
    from .kernels.cpu.rhs import zero_f
    from .losses import L2Loss
    from .solvers.ode.explicit import _controller, make_stops, tableau_arrays
    from .losses import EnsembleLoss
    if solve_kw.get("callback") is not None and not isinstance(sensealg, FiniteDifference):
        # the ensemble kernels took no callback: the gradient was of another problem
        raise UnsupportedAlgorithmError(
            f"callback: ensemble gradients through callbacks are not supported by "
            f"{type(sensealg or DiscreteAdjoint()).__name__} (a single problem's are, by "
            f"js.DiscreteAdjoint() with a DiscreteCallback); use js.FiniteDifference()")
    if isinstance(loss, EnsembleLoss):
        from .ensemble_loss_gradient import ensemble_loss_gradient
        return ensemble_loss_gradient(eprob, alg, loss, wrt, sensealg, solve_kw)
    prob = eprob.prob
    if isinstance(prob, SDEProblem):
        from .sde_gradient import sde_ensemble_gradient
        return sde_ensemble_gradient(eprob, alg, loss, wrt, sensealg, solve_kw)
    if not isinstance(prob, (ODEProblem, SplitODEProblem)):
        raise UnsupportedAlgorithmError("prob: ensemble gradients cover ODE and SDE ensembles "
                                        "(ODEProblem, SplitODEProblem, SDEProblem)")
    if isinstance(alg, StiffAlgorithm) and isinstance(prob, (ODEProblem, SplitODEProblem)):
        from .stiff_gradient import ensemble_in_kernel, stiff_ensemble_gradient
        if ensemble_in_kernel(eprob, alg, loss, wrt, sensealg):
            return stiff_ensemble_gradient(eprob, alg, loss, wrt, dict(solve_kw))
    in_kernel = (isinstance(alg, ExplicitRK) and eprob.prob_func is None
                 and isinstance(loss, L2Loss)
                 and (sensealg is None or (isinstance(sensealg, DiscreteAdjoint)
                                           and sensealg.checkpoints == "all")))
    if not in_kernel:
        return _ensemble_gradient_loop(eprob, alg, loss, wrt, sensealg, solve_kw)
    if not isinstance(alg, ExplicitRK):
        raise UnsupportedAlgorithmError(f"alg: ensemble gradients need an explicit RK method, "
                                        f"got {type(alg).__name__}")
    if not isinstance(loss, L2Loss):
        raise UnsupportedAlgorithmError("loss: ensemble gradients are computed in the kernel for "
                                        "js.L2Loss only")
    if sensealg is not None and not (isinstance(sensealg, DiscreteAdjoint)
                                     and sensealg.checkpoints == "all"):
        raise UnsupportedAlgorithmError("sensealg: ensembles use DiscreteAdjoint(checkpoints='all')")
    N = ensemble_trajectories(eprob, wrt, solve_kw)
    t_data = _loss_times(prob, loss)
    o = dict(_DE_DEFAULTS, **solve_kw)
    _check_de_options(prob, o)
    o["backend"] = "cpu"
    oo = ode_options(prob, alg, o)
    rhs = problem_rhs(prob)
    n = prob.u0.size
    d, w, u0s, ps = ensemble_loss_arrays(eprob, loss, rhs, N, t_data.size)
    tab = tableau_arrays(alg.tableau)
    t0, t1 = prob.tspan
    interpolate = interpolates_saveat(alg, n)
    stops = make_stops(t0, t1, oo["tstops"], None if interpolate else t_data)
    ctrl = _controller(tab, oo["rtol"], oo["atol"], oo["adaptive"], oo["dt"], oo["dtmin"], np.inf,
                       oo["maxiters"], n)
    vj, np_grad = _vjp_for(prob, rhs, wrt)
    values = np.zeros(N)
    g_u0 = np.zeros((N, n))
    g_p = np.zeros((N, np_grad))
    rcs = np.zeros(N, np.int64)
    K.erk_ensemble_gradient(rhs.f, rhs.lin if rhs.lin is not None else zero_f,
                            rhs.plin if rhs.plin is not None else np.zeros(0), rhs.lin is not None,
                            u0s, ps, float(t0), tab, ctrl, stops, _callback_tuple(None, rhs.p), vj,
                            np.ascontiguousarray(t_data, dtype=np.float64),
                            d, w, bool(interpolate), values, g_u0, g_p, rcs)
    if (rcs != 0).any():
        bad = int(np.argmax(rcs != 0))
        raise SolveFailedError(f"gradient: trajectory {bad} of the ensemble failed "
                               f"(kernel return code {rcs[bad]}); its gradient is NaN")
    return float(values.sum()), ensemble_grads_out(prob, wrt, g_u0, g_p)


def ensemble_loss_arrays(eprob, loss, rhs, N, m):
    """The ensemble gradient kernels' inputs: ``(data, weights, u0s, ps)``, the L2 loss's
    data and weights as (1 or N, m, n), the trajectories' initial states (N, n) and
    parameters (N, np), all float64 and C-contiguous."""
    prob = eprob.prob
    n = prob.u0.size
    check_ensemble_data(loss, N, (m,) + prob.u0.shape)
    d = np.ascontiguousarray(loss.data.reshape(-1, m, n))
    w = (np.ones_like(d) if loss.weights is None else
         np.array(np.broadcast_to(loss.weights.reshape(-1, m, n), d.shape), order="C"))
    # writable copies (np.require): a broadcast view of an empty ``p`` is contiguous
    # already, and a read-only array is a type the kernels are not compiled for
    u0s = np.require(eprob.u0s[:N].reshape(N, n) if eprob.u0s is not None
                     else np.broadcast_to(prob.u0.ravel(), (N, n)), np.float64, ("C", "W"))
    ps = np.require(eprob.ps[:N].reshape(N, -1) if eprob.ps is not None
                    else np.broadcast_to(rhs.p, (N, rhs.p.size)), np.float64, ("C", "W"))
    return d, w, u0s, ps


def ensemble_wrt(eprob, wrt):
    """``(x, with_x, shared)`` for differentiating or fitting an ensemble wrt ``"p"`` or
    ``"u0"``: with ``shared`` (the ensemble has no ``ps``, resp. ``u0s``) ``x`` is the base
    problem's ``p`` (``u0``), used by every trajectory, whose gradient is the sum of the
    per-trajectory gradients; else ``x`` is ``ps`` (``u0s``), one row per trajectory.
    ``with_x(y)`` is the ensemble with ``y`` in that place."""
    from .problems import remake
    if wrt not in ("p", "u0"):
        raise InvalidProblemError(f"wrt: ensembles differentiate 'p' and 'u0', not {wrt!r}")
    rows = eprob.ps if wrt == "p" else eprob.u0s
    if rows is None:
        return (getattr(eprob.prob, wrt),
                lambda y: EnsembleProblem(remake(eprob.prob, **{wrt: y}), u0s=eprob.u0s,
                                          ps=eprob.ps, prob_func=eprob.prob_func), True)
    return rows, lambda y: remake(eprob, **{wrt + "s": y}), False


def ensemble_loss_value(loss, us):
    """The ensemble's loss on its saved states ``us`` (N, m, ...): the sum over the
    trajectories of each one's loss (its block of an ``L2Loss``'s per-trajectory data),
    or an ``EnsembleLoss`` (``MomentLoss``) of them all."""
    from .losses import EnsembleLoss, L2Loss
    if isinstance(loss, EnsembleLoss):
        return loss.value(us)
    N = us.shape[0]
    shape = us.shape[1:]
    if isinstance(loss, L2Loss):
        check_ensemble_data(loss, N, shape)
        return float(sum(loss.trajectory(i, shape).value(us[i]) for i in range(N)))
    return float(sum(loss.value(us[i]) for i in range(N)))


def ensemble_trajectories(eprob, wrt, solve_kw):
    """The number of trajectories of an ensemble gradient (``solve_kw``'s
    ``trajectories``, popped, or the rows of ``u0s``/``ps``); checks that ``wrt`` names
    only ``"p"`` and ``"u0"``."""
    N = check_trajectories(solve_kw.pop("trajectories", None), eprob.ntrajectories)
    for name in wrt:
        if name not in ("p", "u0"):
            raise InvalidProblemError(f"wrt: ensembles differentiate 'p' and 'u0', not {name!r}")
    return N


def check_ensemble_data(loss, N, shape):
    """Raise unless the L2 loss's data are one set ``shape`` = ``(m, *u0.shape)`` shared
    by the ``N`` trajectories or one per trajectory, ``(N, *shape)``."""
    size = int(np.prod(shape))
    if loss.data.size not in (size, N * size):
        s = ", ".join(map(str, shape))
        raise InvalidProblemError(f"data: expected shape ({s}) shared by the trajectories or "
                                  f"({N}, {s}) one per trajectory, got {loss.data.shape}")


def ensemble_grads_out(prob, wrt, g_u0, g_p):
    """``{"u0": (N, *u0.shape), "p": (N, np)}`` for the names in ``wrt``."""
    out = {}
    for name in wrt:
        if name == "u0":
            out["u0"] = g_u0.reshape((g_u0.shape[0],) + prob.u0.shape)
        elif name == "p":
            out["p"] = g_p
        else:
            raise InvalidProblemError(f"wrt: ensembles differentiate 'p' and 'u0', not {name!r}")
    return out


def _ensemble_gradient_loop(eprob, alg, loss, wrt, sensealg, solve_kw, one=None,
                            kinds=(ODEProblem, SplitODEProblem)):
    """Per-trajectory gradients one trajectory at a time, for what the ensemble kernels
    do not cover (``prob_func``, a custom ``js.Loss``, other ``sensealg``s, KenCarp4's
    IMEX form): trajectory ``i``'s gradient is ``js.gradient`` of its own problem (row
    ``i`` of ``u0s``/``ps``, or ``prob_func(prob, i)``) with the same loss (block ``i``
    of an ``L2Loss``'s per-trajectory data) and options, bit for bit; the value is the
    sum over trajectories.  ``one(pi, li, i) -> (value, grads)`` replaces that
    ``js.gradient`` call (the SDE ensembles': trajectory ``i`` on path ``i``), ``kinds``
    the problem types ``prob_func`` may return."""
    from .gradient import gradient
    from .losses import L2Loss
    from .problems import remake
    prob = eprob.prob
    N = ensemble_trajectories(eprob, wrt, solve_kw)
    blocks = isinstance(loss, L2Loss) and loss.t_data is not None
    if blocks:      # every trajectory has prob's u0 shape (_check_trajectory)
        shape = (loss.t_data.size,) + prob.u0.shape
        check_ensemble_data(loss, N, shape)
    total, g_u0, g_p = 0.0, [], []
    for i in range(N):
        if eprob.prob_func is None:
            pi = remake(prob, **({} if eprob.u0s is None else {"u0": eprob.u0s[i]}),
                        **({} if eprob.ps is None else {"p": eprob.ps[i]}))
        else:
            pi = eprob.prob_func(prob, i)
            _check_trajectory(prob, pi, i, kinds)
        li = loss.trajectory(i, shape) if blocks else loss
        try:
            v, g = (gradient(pi, alg, li, wrt=wrt, sensealg=sensealg, **solve_kw) if one is None
                    else one(pi, li, i))
        except SolveFailedError as e:
            raise SolveFailedError(f"gradient: trajectory {i} of the ensemble: {e}") from e
        total += float(v)
        if "u0" in wrt:
            g_u0.append(g["u0"])
        if "p" in wrt:
            g_p.append(g["p"])
    out = {}
    if "u0" in wrt:
        out["u0"] = np.stack(g_u0)
    if "p" in wrt:
        if len({x.size for x in g_p}) > 1:
            raise InvalidProblemError("prob_func: the trajectories' parameter vectors differ "
                                      "in size; their gradients cannot be stacked")
        out["p"] = np.stack(g_p)
    return total, out


@register_gradient(EnsembleProblem)
def _ens_gradient(eprob, alg, loss, wrt, sensealg, **solve_kw):
    return _ensemble_gradient(eprob, alg, loss, _wrt_tuple(wrt), sensealg, solve_kw)
from . import sde_gradient  # noqa
