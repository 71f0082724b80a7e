"""Stochastic differential equations: the algorithms ``EM``, ``EulerHeun``, ``Milstein``,
``SRIW1``, ``SRA1``, their ``solve`` implementations for ``SDEProblem`` and for
``EnsembleProblem`` of SDEs, streaming ensemble moments, and :func:`reverse_sde`.

Noise
-----
Brownian increments come from a virtual Brownian tree keyed by Philox4x32-10 on
(seed, trajectory, tree node, component): the same ``seed`` gives the same path on every
run and backend, a single solve is trajectory 0 and ensemble path ``i`` is trajectory
``i``, and any piece of the path can be regenerated without storing it
(:func:`brownian_path`).  ``seed=None`` means the fixed default seed 0, so an SDE solve
is reproducible unless you ask for another seed.  A fixed step ``dt`` reads a tree that
spans 2^M steps of dt (2^M >= (t1 - t0)/dt; exactly [t0, t1] when dt = (t1 - t0)/2^m), so
the grid points are exact tree nodes: solving with ``dt`` and ``dt/2`` uses the same
Brownian motion (the finer path is the Brownian bridge refinement of the coarser), for
dt = 1e-3 as for dt = 2^-10.  Adaptive
steps (SRIW1, SRA1) query the tree at any time, so a rejected step is retried on a
bridge of the same path.  SRIW1 and SRA1 draw from a tree that also carries the
space-time Lévy area, so their I_(1,0) is that of the same path at every step size; it is
another path than EM's for the same seed (see :func:`brownian_path`).

Saving
------
A fixed step lands on every ``saveat`` time that is not a grid point (the step there is
shortened, on a bridge of the same Brownian path), so ``saveat`` changes the step grid
and with it the numerical solution (by its discretisation error; StochasticDiffEq
interpolates between the grid's points instead).  For a strong-convergence study, or to
compare runs that save differently, give ``saveat`` times on the ``dt`` grid.

Failures come back as return codes with the path computed so far: ``Unstable`` when the
state becomes NaN/Inf, ``MaxIters``, ``DtLessThanMin``.
"""
from collections import namedtuple

import numpy as np

from .algorithms import SDEAlgorithm, document
from .errors import InvalidProblemError, UnsupportedAlgorithmError
from .functions import (compile_batch_cfunc, compile_cfunc, probe_derivatives,
                        probe_user_function)
from .problems import EnsembleProblem, SDEProblem
from .retcodes import ReturnCode
from .solution import EnsembleSolution, SDESolution, SolverStats
from .solve import register
from .validate import check_dtmin

__all__ = ["EM", "EulerHeun", "Milstein", "SRIW1", "SRA1", "reverse_sde", "ReverseSDE",
           "ensemble_moments", "EnsembleMoments", "brownian_path"]


class _SDEMethod(SDEAlgorithm):
    _module = None          # name of the method module in jitsolve.solvers.sde
    adaptive = False
    noise_kinds = ("diagonal", "scalar", "general")
    interpretations = ("ito",)

    def _mod(self):
        from .solvers.sde import METHODS  # lazy: keeps `import jitsolve` free of numba
        return METHODS[self._module]


class EM(_SDEMethod):
    """Euler-Maruyama for Itô SDEs: ``u + f h + G dW``.

    Strong order 1/2, weak order 1; diagonal, scalar and general noise; fixed step
    (``dt`` required).

    References
    ----------
    P. E. Kloeden, E. Platen, *Numerical Solution of Stochastic Differential Equations*,
    Springer (1992), sec. 9.1.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> from jitsolve.sde import EM
    >>> def f(du, u, p, t): du[0] = -u[0]
    >>> def g(gu, u, p, t): gu[0] = 0.5
    >>> prob = js.SDEProblem(f, g, np.array([1.0]), (0.0, 1.0))
    >>> sol = js.solve(prob, EM(), dt=2.0**-8, seed=1)
    >>> sol.u.shape
    (257, 1)
    """

    _module = "EM"
    strong_order = 0.5
    weak_order = 1.0
    reference = "Kloeden & Platen (1992), sec. 9.1"


class EulerHeun(_SDEMethod):
    """Euler-Heun for Stratonovich SDEs: predictor ``u + f h + G dW``, trapezoidal corrector.

    Strong order 1/2 (1 for additive or commutative noise), weak order 1; diagonal, scalar
    and general noise; fixed step.  The problem must say ``interpretation="stratonovich"``.

    References
    ----------
    Kloeden & Platen (1992), sec. 11.1.
    """

    _module = "EulerHeun"
    strong_order = 0.5
    weak_order = 1.0
    interpretations = ("stratonovich",)
    reference = "Kloeden & Platen (1992), sec. 11.1"


class Milstein(_SDEMethod):
    """Milstein for diagonal and scalar noise, Itô (``dW^2 - h``) or Stratonovich (``dW^2``).

    Strong order 1, weak order 1; fixed step.  The ``g' g`` term is the problem's
    ``ggprime`` when given (``js.SDEProblem(..., ggprime=...)``, evaluated through its
    complex128 twin at real arguments; the discrete adjoint needs it), else it is
    computed by complex-step differentiation of ``g`` (exact to rounding; ``g`` must
    then also compile for complex128 states and parameters), or, when ``g`` does not
    compile for complex numbers, by central differences (two more evaluations of ``g``
    per step): diagonal noise ``g_i (g_i(u + d) - g_i(u - d)) / (2 d_i)``, which assumes
    ``g_i`` depends on ``u_i`` only (as the diagonal-noise scheme does: a ``g`` coupled
    across components, checked near ``u0``, gets a ``UserWarning``), scalar noise ``(g(u
    + e g) - g(u - e g)) / (2 e)`` (the directional derivative), with steps ``d_i = 6e-6
    max(|u_i|, atol_i)`` and ``e |g_j| <= d_j`` (truncation and rounding both near 1e-11
    relative where ``g`` varies on the scale of ``u``; ``atol`` sets the scale of a
    component near 0: a state of 1e-5 with ``atol=1e-6`` keeps 1e-11).  (Kloeden &
    Platen's one-sided derivative-free form ``(g(u + f h + g sqrt h) - g(u)) / sqrt h``
    errs by O(sqrt h), which the Stratonovich ``dW^2``, of mean ``h``, turns into strong
    order 1/2.)

    References
    ----------
    G. N. Milstein, Theory Probab. Appl. 19 (1975); Kloeden & Platen (1992), sec. 10.3,
    11.1;
    J. R. R. A. Martins, P. Sturdza, J. J. Alonso, ACM TOMS 29 (2003) (complex step).
    """

    _module = "Milstein"
    strong_order = 1.0
    weak_order = 1.0
    noise_kinds = ("diagonal", "scalar")
    interpretations = ("ito", "stratonovich")
    reference = "Kloeden & Platen (1992), sec. 10.3"


class SRIW1(_SDEMethod):
    """Rößler's SRIW1 stochastic Runge-Kutta method for Itô SDEs with diagonal or scalar noise.

    Strong order 1.5, weak order 2.  Adaptive by default (``adaptive=True``; ``dt`` is then
    the first step, default ``|t1 - t0|/100``) with the embedded error estimate
    ``delta |E1| + |E2|`` and rejection through Brownian bridges of the same path;
    ``adaptive=False`` takes fixed steps ``dt``.

    References
    ----------
    A. Rößler, "Runge-Kutta methods for the strong approximation of solutions of stochastic
    differential equations", SIAM J. Numer. Anal. 48 (2010) 922-952 (SRI1W1 coefficients;
    as tabulated in StochasticDiffEq.jl).
    C. Rackauckas, Q. Nie, "Adaptive methods for stochastic differential equations via
    natural embeddings and rejection sampling with memory", DCDS-B 22 (2017) 2731-2761.
    """

    _module = "SRIW1"
    strong_order = 1.5
    weak_order = 2.0
    adaptive = True
    noise_kinds = ("diagonal", "scalar")
    reference = "Rößler, SIAM J. Numer. Anal. 48 (2010); Rackauckas & Nie, DCDS-B 22 (2017)"


class SRA1(_SDEMethod):
    """Rößler's SRA1 stochastic Runge-Kutta method for additive noise (``g`` independent of ``u``).

    Strong order 1.5, weak order 2 on additive noise; diagonal, scalar and general noise;
    adaptive by default, like :class:`SRIW1`.

    Additive noise only: ``g(gu, u, p, t)`` may depend on ``p`` and ``t`` but not on ``u``.
    On multiplicative noise (e.g. ``g = sigma u``) the scheme converges to the
    Stratonovich solution, not the Itô one, so ``solve`` (and ``gradient``) refuse it:
    before integrating they evaluate ``g`` at ``u0`` and at two perturbed states (same
    ``p``, ``t0``; the first trajectory's ``u0``/``p`` for an ensemble, each remade
    problem for ``prob_func``) and raise
    :class:`~jitsolve.errors.UnsupportedAlgorithmError` naming ``g`` when the values
    differ.  Use :class:`SRIW1`, :class:`Milstein` or :class:`EM` for multiplicative Itô
    noise (:class:`EulerHeun` for Stratonovich).

    References
    ----------
    A. Rößler, SIAM J. Numer. Anal. 48 (2010) 922-952 (SRA1 coefficients; as tabulated in
    StochasticDiffEq.jl); Rackauckas & Nie, DCDS-B 22 (2017).
    """

    _module = "SRA1"
    strong_order = 1.5
    weak_order = 2.0
    adaptive = True
    interpretations = ("ito", "stratonovich")
    reference = "Rößler, SIAM J. Numer. Anal. 48 (2010)"


# --------------------------------------------------------------------------- plumbing
def _dummy_vec(out, u, p, t):  # pragma: no cover - never called
    out[0] = 0.0


def _dummy_mat(out, u, p, t):  # pragma: no cover - never called
    out[0, 0] = 0.0


def _dummy_cplx(out, u, p, t):  # pragma: no cover - never called
    out[0] = 0.0


def _require_additive(prob, u0, p):
    """Refuse SRA1 on noise that depends on ``u``: evaluate ``g`` (in place, as the
    compiled loops call it) at ``u0`` and at two deterministic perturbations of it scaled
    to ``max|u0| + 1`` (same ``p`` and ``t0``), and raise when the values differ."""
    u0 = np.ascontiguousarray(u0, dtype=np.float64).ravel()
    p = np.ascontiguousarray(p, dtype=np.float64).ravel()
    t0 = float(prob.tspan[0])
    n = u0.size
    shape = (n, prob.nbrownian) if prob.noise == "general" else (n,)
    i = np.arange(n)
    scale = float(np.max(np.abs(u0), initial=0.0)) + 1.0
    pert = (0.3 + 0.1 * (i % 5), (-1.0) ** i * (0.2 + 0.15 * (3 * i % 4)))
    values = []
    for u in (u0,) + tuple(u0 + scale * d for d in pert):
        gu = np.zeros(shape)
        prob.g(gu, np.ascontiguousarray(u), p, t0)
        values.append(gu)
    if not all(np.array_equal(v, values[0], equal_nan=True) for v in values[1:]):
        alts = ("EulerHeun" + ("" if prob.noise == "general" else " or Milstein")
                if prob.interpretation == "stratonovich" else
                "EM" if prob.noise == "general" else "SRIW1, Milstein or EM")
        raise UnsupportedAlgorithmError(
            f"g: SRA1 requires additive noise (g independent of u), but g(gu, u, p, t0) "
            f"changes with u near u0 (multiplicative noise, on which SRA1 converges to the "
            f"wrong solution); use {alts}")


def _warn_coupled_diagonal(prob, u0, p):
    """Warn when diagonal noise couples components: Milstein's ``g'g`` for diagonal noise
    takes ``g_i dg_i/du_i`` only (the cross terms ``g_j dg_i/du_j`` would need iterated
    integrals of different Brownian motions), so with ``g_i`` depending on ``u_j`` the
    scheme is strong order 1/2, and its two derivative sources (complex step, central
    difference) drop the coupling differently.  ``g`` is evaluated at ``u0`` and with
    one component moved at a time (up to 8 components: first, last, spread); a change
    of another component of ``g`` warns (``UserWarning``), once per solve."""
    u0 = np.ascontiguousarray(u0, dtype=np.float64).ravel()
    p = np.ascontiguousarray(p, dtype=np.float64).ravel()
    n = u0.size
    if n < 2:
        return
    t0 = float(prob.tspan[0])
    g0 = np.zeros(n)
    prob.g(g0, u0, p, t0)
    for j in np.unique(np.linspace(0, n - 1, min(n, 8)).astype(int)):
        u = u0.copy()
        u[j] += 0.1 * (abs(u0[j]) + 1.0)
        gu = np.zeros(n)
        prob.g(gu, u, p, t0)
        changed = (gu != g0) & ~(np.isnan(gu) & np.isnan(g0))
        changed[j] = False
        if changed.any():
            i = int(np.flatnonzero(changed)[0])
            import warnings
            from .log import caller_stacklevel
            level = caller_stacklevel()                     # the caller outside jitsolve
            warnings.warn(
                f"g: Milstein with diagonal noise assumes g_i depends on u_i only, but g[{i}] "
                f"changes with u[{j}] near u0: its Milstein term drops that coupling, and the "
                f"strong order falls to 1/2 (EM's)", UserWarning, stacklevel=level)
            return


def _check_options(tspan, alg, o):
    """Check the solve options against the method and the span; returns ``(adaptive,
    seed)``."""
    adaptive = bool(o["adaptive"]) and alg.adaptive
    check_dtmin(o["dtmin"], tspan, o["dt"], adaptive)
    if not adaptive and o["dt"] is None:
        raise InvalidProblemError(
            f"dt: required for the fixed-step method {type(alg).__name__}"
            + (" (or pass adaptive=True)" if alg.adaptive else "")
            + "; e.g. dt=(t1 - t0)/2**10 (powers of two keep paths nested across dt)")
    if o.get("callback") is not None:
        raise UnsupportedAlgorithmError("callback: not supported by the SDE methods yet")
    if o.get("tstops") is not None:
        raise UnsupportedAlgorithmError("tstops: not supported by the SDE methods yet; use saveat")
    # a ``dt`` or ``saveat`` interval longer than the span: one step over it, the saves at
    # its ends (as an ODE solve and SciML do; the schedule clamps both to the span)
    seed = 0 if o["seed"] is None else int(o["seed"])
    if seed >= 2 ** 63:
        raise InvalidProblemError(f"seed: expected an integer below 2**63, got {seed}")
    return adaptive, seed


def _prepare(prob, alg, o, at=None):
    """Check the pair and the options, compile the first-class user functions.  ``at``:
    the ``(u0s, ps)`` rows at which SRA1 checks that the noise is additive (default the
    problem's ``(u0, p)``; an ensemble passes its rows: every row up to 64, else 64
    evenly spaced ones, first and last included)."""
    from .grid.operators import GridOperator
    if isinstance(prob.f, GridOperator):
        raise UnsupportedAlgorithmError(
            "f: a grid-operator drift is not supported by the SDE methods yet; pass a function "
            "f(du, u, p, t) (e.g. one that calls A.apply)")
    if prob.noise not in alg.noise_kinds:
        raise UnsupportedAlgorithmError(
            f"alg: {type(alg).__name__} supports noise {alg.noise_kinds}, the problem has "
            f"noise={prob.noise!r}")
    if prob.interpretation not in alg.interpretations:
        raise UnsupportedAlgorithmError(
            f"alg: {type(alg).__name__} integrates {' or '.join(alg.interpretations)} SDEs, the "
            f"problem has interpretation={prob.interpretation!r}"
            + (" (use EulerHeun for Stratonovich)" if prob.interpretation == "stratonovich" else
               " (use EM, Milstein or SRIW1 for Itô)"))
    adaptive, seed = _check_options(prob.tspan, alg, o)
    # before anything calls g compiled (SRA1's additivity check below): indices out of
    # bounds are refused before they read or write past the arrays
    _probe_sde(prob)
    if isinstance(alg, SRA1):
        if at is None:
            _require_additive(prob, prob.u0, prob.p)
        else:
            u0s, ps = at                  # one row of either stands for every trajectory
            N = max(u0s.shape[0], ps.shape[0])
            rows = range(N) if N <= 64 else np.unique(np.linspace(0, N - 1, 64).astype(int))
            for i in rows:
                _require_additive(prob, u0s[min(i, u0s.shape[0] - 1)],
                                  ps[min(i, ps.shape[0] - 1)])
    if isinstance(alg, Milstein) and prob.noise == "diagonal" and prob.ggprime is None:
        _warn_coupled_diagonal(prob, prob.u0, prob.p)
    F = prob.f
    f = F.cfunc("f")
    graw = prob._g_raw
    if prob.noise == "general":
        gv = compile_cfunc(_dummy_vec, "g", "f")
        gm = compile_cfunc(graw, "g", "g_general")
    else:
        gv = compile_cfunc(graw, "g", "f")
        gm = compile_cfunc(_dummy_mat, "g", "g_general")
    has_cs = False
    gc = None
    if isinstance(alg, Milstein) and prob.ggprime is not None:
        # the user's Milstein term, through its complex twin at real arguments (the
        # same function the discrete adjoint differentiates by complex step)
        try:
            gc = compile_cfunc(prob.ggprime, "ggprime", "f_complex")
        except Exception as e:
            raise UnsupportedAlgorithmError(
                "ggprime: Milstein evaluates the Milstein term through its complex128 twin (the "
                "discrete adjoint differentiates it by complex step), so ggprime must also "
                f"compile for complex128 states and parameters (avoid abs, min, max): {e}"
            ) from None
        has_cs = 2
    elif isinstance(alg, Milstein):
        try:
            gc = compile_cfunc(graw, "g", "f_complex")
            has_cs = True
        except Exception:   # g does not compile for complex: the kernel's central
            gc = None       # difference along g (has_cs == 0)
    if gc is None:
        gc = compile_cfunc(_dummy_cplx, "g", "f_complex")
    mod = alg._mod()
    t0, t1 = prob.tspan
    kw = dict(tspan=(float(t0), float(t1)), dt=o["dt"], adaptive=adaptive, rtol=o["rtol"],
              atol=o["atol"], dtmin=o["dtmin"], maxiters=o["maxiters"], seed=seed,
              noise=prob.noise, m=prob.nbrownian,
              strat=prob.interpretation == "stratonovich", has_cs=has_cs)
    return mod, (f, gv, gm, gc), kw


def _probe_sde(prob):
    """Probe the drift and the diffusion once for indexing out of bounds
    (:func:`jitsolve.functions.probe_user_function`), and with them their own derivatives
    (``f``'s and ``g``'s ``jac``/``paramjac``/``vjp``, which the SDE adjoints call:
    :func:`jitsolve.functions.probe_derivatives`), the Milstein term ``ggprime`` and the
    parts of a :func:`reverse_sde` drift (``f``, ``g``, ``score``).  A
    derivative written for three states on a two-state problem gave wrong gradients, or
    corrupted memory (``double free or corruption``), with ``retcode`` Success."""
    n = prob.u0.size
    p = prob.p if prob.p is not None else np.zeros(0)
    t0 = prob.tspan[0]
    # js.reverse_sde's drift: its parts first (the drift's Python form calls them compiled)
    for name, part in getattr(prob.f.f, "_jitsolve_parts", ()):
        probe_user_function(part, name, prob.u0, p, t0, out_shape=(n,))
    probe_user_function(prob.f.f, "f", prob.u0, p, t0, out_shape=(n,))
    probe_user_function(prob._g_raw, "g", prob.u0, p, t0,
                        out_shape=(n, prob.nbrownian) if prob.noise == "general" else (n,))
    probe_derivatives(prob.f, prob.u0, p, t0)
    if prob.g_function is not None:
        probe_derivatives(prob.g_function, prob.u0, p, t0, name="g")
    if prob.ggprime is not None:
        probe_user_function(prob.ggprime, "ggprime", prob.u0, p, t0, out_shape=(n,))


def _batch_spec(prob):
    """``(make, placeholders)`` for the lockstep EM kernels: ``make()`` compiles the batch
    forms of f and g (diagonal/scalar noise), called by the driver only for ensembles large
    enough to win back the compile."""
    def make():
        return (compile_batch_cfunc(prob.f.f, "f"), compile_batch_cfunc(prob._g_raw, "g"))
    ph = compile_batch_cfunc(None, "f")
    return make, (ph, ph)


_RC = {0: ReturnCode.Success, 1: ReturnCode.MaxIters, 2: ReturnCode.DtLessThanMin,
       3: ReturnCode.Unstable, 4: ReturnCode.MaxIters}
#: the names of the kernels' codes 0..4, indexed by code (an ensemble maps them at once)
_RC_NAMES = np.array([_RC[i].value for i in range(len(_RC))])


@register(SDEProblem, SDEAlgorithm)
def _solve_sde(prob, alg, **o):
    if not isinstance(alg, _SDEMethod):
        raise UnsupportedAlgorithmError(f"alg: {type(alg).__name__} is not a jitsolve SDE method")
    return _solve_path(prob, alg, o, o["saveat"])


def _solve_path(prob, alg, o, saveat, trajectory=0):
    """One compiled solve of ``prob``, path keyed ``trajectory``, as an SDESolution."""
    mod, funcs, kw = _prepare(prob, alg, o)
    from .solvers.sde.driver import solve_path
    u0 = np.ascontiguousarray(prob.u0, dtype=np.float64).ravel()
    t, u, W, rc, st = solve_path(mod, funcs, u0, prob.p, saveat=saveat,
                                 save_noise=bool(o["save_noise"]), trajectory=trajectory, **kw)
    stats = SolverStats(nf=st["nf"], naccept=st["naccept"], nreject=st["nreject"])
    return SDESolution(t, u.reshape((t.size,) + prob.u0.shape), _RC[rc], stats, W=W,
                       alg=type(alg).__name__)


def _ensemble_inputs(eprob, N):
    prob = eprob.prob
    n = prob.u0.size
    if eprob.u0s is not None:
        u0s = np.ascontiguousarray(eprob.u0s[:N], dtype=np.float64).reshape(N, n)
    else:
        u0s = np.ascontiguousarray(prob.u0, dtype=np.float64).reshape(1, n)
    if eprob.ps is not None:
        ps = np.ascontiguousarray(eprob.ps[:N], dtype=np.float64)
    else:
        ps = np.ascontiguousarray(prob.p, dtype=np.float64).reshape(1, -1)
    if ps.shape[1] == 0:
        ps = np.zeros((ps.shape[0], 1))
    return u0s, ps


@register(EnsembleProblem, SDEAlgorithm)
def _solve_sde_ensemble(eprob, alg, **o):
    if not isinstance(eprob.prob, SDEProblem):
        raise UnsupportedAlgorithmError(
            f"alg: {type(alg).__name__} solves SDEs; the ensemble holds a {type(eprob.prob).__name__}")
    if not isinstance(alg, _SDEMethod):
        raise UnsupportedAlgorithmError(f"alg: {type(alg).__name__} is not a jitsolve SDE method")
    prob = eprob.prob
    N = o["trajectories"]
    if eprob.prob_func is not None:
        return _solve_prob_func(eprob, alg, N, o)
    u0s, ps = _ensemble_inputs(eprob, N)
    mod, funcs, kw = _prepare(prob, alg, o, at=(u0s, ps))
    from .solvers.sde.driver import solve_ensemble
    t, u, W, rcs, st = solve_ensemble(mod, funcs, u0s, ps, trajectories=N, saveat=o["saveat"],
                                      save_noise=bool(o["save_noise"]),
                                      batch=_batch_spec(prob), **kw)
    # a failed path keeps its saved prefix; the rest of its rows are NaN
    nsaved = st[:, 0]
    if (nsaved < u.shape[1]).any():
        mask = np.arange(u.shape[1])[None, :] >= nsaved[:, None]
        u[mask] = np.nan
        if W is not None:
            W[mask] = np.nan
    stats = SolverStats(nf=int(st[:, 2].sum()), naccept=int(st[:, 4].sum()),
                        nreject=int(st[:, 5].sum()))
    return EnsembleSolution(t, u.reshape((N, t.size) + prob.u0.shape),
                            _RC_NAMES[np.asarray(rcs, dtype=np.int64)], alg=type(alg).__name__,
                            stats=stats, W=W)


def _solve_prob_func(eprob, alg, N, o):
    """The general (slow) path: one compiled solve per remade problem ``prob_func(prob,
    i)``, trajectory i keyed i, saved at the times of the compiled path (``saveat``, else
    every grid point of a fixed step, else ``tspan``'s ends).  A trajectory that fails
    keeps its retcode and its saved prefix (NaN after it, in ``u`` and ``W``)."""
    from .solve import _prob_func_trajectories
    from .solvers.sde.driver import ensemble_times
    prob = eprob.prob
    tspan = tuple(float(t) for t in prob.tspan)
    adaptive, _seed = _check_options(tspan, alg, o)
    savet = ensemble_times(tspan, o["dt"], adaptive, o["saveat"])

    def solve_one(pi, i):
        if o["save_noise"] and pi.nbrownian != prob.nbrownian:
            raise InvalidProblemError(
                f"prob_func: trajectory {i} has {pi.nbrownian} Brownian motions; with "
                f"save_noise every trajectory needs prob's {prob.nbrownian}")
        return _solve_path(pi, alg, o, savet, trajectory=i)

    u, W, rcs, st = _prob_func_trajectories(eprob, N, savet, (SDEProblem,), solve_one)
    stats = SolverStats(**dict(zip(SolverStats().asdict(), st.sum(axis=0).tolist())))
    return EnsembleSolution(savet, u, rcs, alg=type(alg).__name__, stats=stats, W=W)


EnsembleMoments = namedtuple("EnsembleMoments", "t mean var n failed stats")
EnsembleMoments.__doc__ = """Streaming ensemble statistics: ``mean``/``var`` (nt, *u0.shape) at
``t``, the number of paths used ``n`` and of failed paths ``failed`` (left out)."""


def ensemble_moments(eprob, alg, *, trajectories=None, block=256, **solve_kw):
    """Mean and (unbiased) variance of an SDE ensemble at the save times, without storing paths.

    Paths run in one parallel compiled kernel, in fixed blocks of ``block`` paths merged in
    a fixed order (the result does not depend on the number of threads; Euler-Maruyama
    integrates a block's paths together, up to 256 at a time, so smaller blocks are
    slower).  ``saveat`` defaults to ``(t0, t1)``; other options are those of
    :func:`jitsolve.solve`.

    Returns
    -------
    EnsembleMoments(t, mean, var, n, failed, stats)

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> from jitsolve.sde import EM, ensemble_moments
    >>> def f(du, u, p, t): du[0] = -u[0]
    >>> def g(gu, u, p, t): gu[0] = 1.0
    >>> ep = js.EnsembleProblem(js.SDEProblem(f, g, np.array([1.0]), (0.0, 1.0)))
    >>> m = ensemble_moments(ep, EM(), trajectories=1000, dt=2.0**-6)
    >>> m.mean.shape
    (2, 1)
    """
    from .solve import _DE_DEFAULTS, _check_de_options
    if not isinstance(eprob, EnsembleProblem) or not isinstance(eprob.prob, SDEProblem):
        raise InvalidProblemError("eprob: expected an EnsembleProblem of an SDEProblem")
    if not isinstance(alg, _SDEMethod):
        raise InvalidProblemError(f"alg: expected an SDE method (e.g. EM()), got {type(alg).__name__}")
    unknown = set(solve_kw) - set(_DE_DEFAULTS)
    if unknown:
        raise InvalidProblemError(f"{sorted(unknown)[0]}: not an option of ensemble_moments")
    o = dict(_DE_DEFAULTS, **solve_kw)
    _check_de_options(eprob.prob, o)
    N = trajectories if trajectories is not None else eprob.ntrajectories
    if N is None or isinstance(N, bool) or int(N) < 2:
        raise InvalidProblemError(f"trajectories: expected an integer >= 2, got {N!r}")
    N = int(N)
    if eprob.ntrajectories is not None and N > eprob.ntrajectories:
        raise InvalidProblemError(f"trajectories: {N} requested but u0s/ps hold {eprob.ntrajectories}")
    if eprob.prob_func is not None:
        raise UnsupportedAlgorithmError("prob_func: streaming moments need u0s/ps (the compiled path)")
    if isinstance(block, bool) or int(block) < 1:
        raise InvalidProblemError(f"block: expected a positive integer, got {block!r}")
    u0s, ps = _ensemble_inputs(eprob, N)
    mod, funcs, kw = _prepare(eprob.prob, alg, o, at=(u0s, ps))
    from .solvers.sde.driver import ensemble_moments as _moments
    t, mean, var, c = _moments(mod, funcs, u0s, ps, trajectories=N, saveat=o["saveat"],
                               block=int(block), batch=_batch_spec(eprob.prob), **kw)
    shp = (t.size,) + eprob.prob.u0.shape
    stats = SolverStats(nf=c["nf"], naccept=c["naccept"], nreject=c["nreject"])
    return EnsembleMoments(t, mean.reshape(shp), var.reshape(shp), c["used"], c["failed"], stats)


def brownian_path(times, tspan, *, seed=None, trajectory=0, nbrownian=1, alg=None, dt=None):
    """The Brownian path W(times) that a solve over ``tspan`` with ``seed`` uses
    (trajectory 0 for a single solve, ``i`` for ensemble path ``i``), regenerated without
    storing it; (len, nbrownian).

    ``alg`` selects the path family: EM, EulerHeun and Milstein share one path per seed;
    SRIW1 and SRA1 use the tree that also carries the space-time Lévy area (for their
    I_(1,0)), another path for the same seed.  ``dt``: the fixed step of the solve (its
    tree spans 2^M steps of dt, past t1 unless dt = (t1 - t0)/2^m); None for adaptive
    solves, whose tree spans ``tspan``.  Identical to ``sol.W`` at the grid points of a
    fixed-step solve with that ``dt`` and at the accepted times of adaptive solves."""
    from .solvers.sde.brownian import brownian_path as _bp
    seed = 0 if seed is None else int(seed)
    levy = isinstance(alg, (SRIW1, SRA1))
    return _bp(times, tspan, seed=seed, trajectory=int(trajectory), nbrownian=int(nbrownian),
               levy=levy, dt=None if dt is None else float(dt))


# --------------------------------------------------------------------------- reverse time
ReverseSDE = namedtuple("ReverseSDE", "f g")


def reverse_sde(f, g, score, *, noise="diagonal"):
    """The reverse-time SDE of a forward SDE ``du = f dt + g dW`` with marginal scores
    ``score(s, u, p, t)`` (writes grad_u log p_t(u) into ``s``):

    ``du = [f - G G^T score] dt + G dW-bar``, integrated from t1 back to t0 (Anderson 1982;
    Song et al., ICLR 2021).  For diagonal noise ``G G^T score`` is ``g_i^2 s_i``, for
    scalar noise ``g_i sum_k g_k s_k``.

    Returns ``ReverseSDE(f, g)``: build the problem with the reversed span, e.g.
    ``fr, gr = js.reverse_sde(f, g, score); js.SDEProblem(fr, gr, uT, (T, 0.0), p)``.
    ``f``, ``g``, ``score`` must be Numba-compilable (plain functions are jitted).

    References
    ----------
    Anderson, *Reverse-time diffusion equation models*, Stoch. Proc. Appl. 12 (1982);
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole, *Score-based generative modeling
    through stochastic differential equations*, ICLR (2021).

    Examples
    --------
    An Ornstein-Uhlenbeck process ``du = -u dt + dW`` started in its stationary law
    ``N(0, 1/2)``, whose score is ``-2 u``:

    >>> import numpy as np, jitsolve as js
    >>> def f(du, u, p, t):
    ...     du[0] = -u[0]
    >>> def g(gu, u, p, t):
    ...     gu[0] = 1.0
    >>> def score(s, u, p, t):
    ...     s[0] = -2.0 * u[0]
    >>> fr, gr = js.reverse_sde(f, g, score)
    >>> prob = js.SDEProblem(fr, gr, np.zeros(1), (1.0, 0.0))   # from t = 1 back to 0
    >>> sol = js.solve(prob, js.EM(), dt=1 / 64, seed=0)
    >>> sol.retcode, float(sol.t[0]), float(sol.t[-1]), bool(np.isfinite(sol.u).all())
    (<ReturnCode.Success: 'Success'>, 1.0, 0.0, True)

    Cost
    ----
    Per evaluation of the reversed drift: one call each of ``f``, ``g`` and ``score``
    plus one pass over ``n`` entries (two for scalar noise), and two temporary vectors
    allocated inside the compiled function; the diffusion is ``g`` itself.
    """
    import numba
    from .functions import is_numba_function
    if noise not in ("diagonal", "scalar"):
        raise InvalidProblemError(f"noise: reverse_sde supports 'diagonal' and 'scalar', got {noise!r}")
    for name, fn in (("f", f), ("g", g), ("score", score)):
        if not callable(fn):
            raise InvalidProblemError(f"{name}: expected a function ({name}(out, u, p, t)), got "
                                      f"{type(fn).__name__}")
    fj = f if is_numba_function(f) else numba.njit(error_model="numpy")(f)
    gj = g if is_numba_function(g) else numba.njit(error_model="numpy")(g)
    sj = score if is_numba_function(score) else numba.njit(error_model="numpy")(score)
    scalar = noise == "scalar"

    @numba.njit
    def f_rev(du, u, p, t):
        n = u.size
        gu = np.empty(n)
        s = np.empty(n)
        fj(du, u, p, t)
        gj(gu, u, p, t)
        sj(s, u, p, t)
        if scalar:
            acc = 0.0
            for k in range(n):
                acc += gu[k] * s[k]
            for i in range(n):
                du[i] -= gu[i] * acc
        else:
            for i in range(n):
                du[i] -= gu[i] * gu[i] * s[i]

    # the parts, for the probe for indexing out of bounds (_probe_sde): f_rev's Python
    # form calls them compiled, where indices are not checked (a score written for four
    # states on a two-state problem returned Success)
    f_rev._jitsolve_parts = (("f", f), ("g", g), ("score", score))
    return ReverseSDE(f_rev, g)


_COSTS = {
    EM: "Per step and path: 1 evaluation of f and of g, one Brownian increment "
        "(Philox4x32-10 + Box-Muller, regenerated, never stored).  An ensemble with a fixed "
        "step (t1 - t0)/2^m and diagonal or scalar noise runs 256 paths per thread in "
        "lockstep (normals drawn in SIMD loops; from 2^22 path-steps f and g are called once "
        "per step for the 256 paths, after a compile of about 0.3 s per process): about "
        "3.5-4 ns per path-step and thread for a 1-D OU process; other ensembles run one path "
        "per thread.  Adjoint: VJPs of f and g per step (general noise: n + len(p) "
        "complex evaluations of g).",
    EulerHeun: "Per step and path: 2 evaluations of f and of g (predictor and corrector), "
               "one Brownian increment.  Adjoint: 4 VJPs per step.",
    Milstein: "Per step and path: 1 evaluation of f and g and of g'g (the user's ``ggprime``, "
              "else a complex-step derivative of g: n more g evaluations for diagonal "
              "noise, 1 for scalar noise; 2 for the central difference when g does not "
              "compile for complex numbers), one increment.",
    SRIW1: "Per step and path: 4 f and 4 g evaluations (Rößler's SRI stages), one increment "
           "and one space-time Lévy area from the Brownian tree, plus the embedded error "
           "estimate; rejected steps re-use the tree (Brownian bridge).",
    SRA1: "Per step and path: 2 f evaluations and 1 g evaluation (additive noise), one "
          "increment and one Lévy area.  Adjoint: stage VJPs per step.",
}
_EXAMPLE = """>>> import numpy as np, jitsolve as js
>>> def f(du, u, p, t):              # Ornstein-Uhlenbeck: du = -u dt + 0.5 dW
...     du[0] = -u[0]
>>> def g(gu, u, p, t):
...     gu[0] = 0.5
>>> prob = js.SDEProblem(f, g, np.array([1.0]), (0.0, 1.0){kw})
>>> sol = js.solve(prob, js.{name}(), dt=2.0**-8, seed=1)
>>> sol.successful, bool(np.isfinite(sol.u).all())
(True, True)"""
for _cls, _cost in _COSTS.items():
    _kw = (',\n...                    interpretation="stratonovich"' if _cls is EulerHeun
           else "")
    document(_cls, _cost, _EXAMPLE.format(name=_cls.__name__, kw=_kw))
