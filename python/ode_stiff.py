"""Stiff ODE algorithms (Rosenbrock and ESDIRK) and their ``solve`` registrations.

Small and medium problems run in one compiled loop (:mod:`jitsolve.kernels.cpu.stiff`)
with a dense Jacobian: the user's ``jac`` when the ``ODEFunction`` has one, else the
exact complex-step Jacobian of ``f`` (``f`` must then also compile for complex128
states; coloured by ``jac_sparsity`` when given), plus the exact matrix of a
``SplitODEProblem``'s linear part.  ``df/dt`` for the Rosenbrock methods is a forward
difference (``t`` is real in the fixed signature, so complex step in ``t`` is not
available); pass ``autonomous=True`` when ``f`` does not depend on ``t`` to skip it.
Integer powers in ``f`` (``u**3``) are differentiated exactly at negative ``u`` too
(complex integer powers by multiplication, :mod:`jitsolve.kernels.cpu.complexpow`).

Problems with a grid operator (``ODEProblem(Diffusion(...))``,
``SplitODEProblem(Laplacian, f)``) and more than ``dense_max`` unknowns use
Newton-Krylov (GMRES on ``I - h gamma J`` with ``J`` the operator, plus the diagonal of
``f``'s Jacobian by complex step when ``f`` is treated implicitly; preconditioned by one
multigrid cycle of ``I - h gamma L`` when the operator is a Laplacian or a Diffusion,
scaled or shifted): ImplicitEuler, KenCarp4 and Kvaerno5.  The operator may be a sum
(``D + V``, ``sigma I + c L``: applied through its own ``apply``).  The Rosenbrock methods
need the exact Jacobian and take the dense path only.  No callbacks on this path, and no
adjoint: ``js.gradient`` takes ``js.FiniteDifference()`` there.  The Newton iterations
stop at 1/100 of the ``rtol``/``atol`` error, with fixed steps too (as OrdinaryDiffEq):
a fixed-step order study needs tight ``rtol``/``atol``.

``saveat``: adaptive steps on the compiled path save times inside a step from the
method's interpolant (Hairer, Wanner II, IV.6 and the methods' dense outputs), taking the
steps they take without ``saveat`` (SciML's rule; they stepped onto every saved time:
2,001 steps for 2,001 times where 18 do); fixed steps and the Newton-Krylov path land on
them.  ``js.gradient``'s forward solves land on the loss's times (the stiff discrete
adjoints differentiate steps that end there), so its value differs from that of a
``solve`` with ``saveat`` by the interpolant's error, within the tolerances.
"""
import numpy as np

from .algorithms import ODEAlgorithm, document
from .errors import InvalidProblemError, UnsupportedAlgorithmError
from .grid.operators import GridOperator, shifted_parts
from .grid.stencils import Diffusion, Identity, Laplacian
from .linear import Multigrid
from .ode import _callback_tuple, _solve_prob_func, ode_options, ode_solution, saveat_times
from .problems import EnsembleProblem, ODEProblem, SplitODEProblem
from .rhs import pack_grid_operator, probed_parameters, problem_rhs
from .solution import EnsembleSolution
from .solve import register

__all__ = ["StiffAlgorithm", "ImplicitEuler", "Rosenbrock23", "Rodas5P", "KenCarp4", "Kvaerno5"]


class StiffAlgorithm(ODEAlgorithm):
    """Base of the stiff methods.

    Parameters
    ----------
    autonomous : bool
        ``f`` does not depend on ``t`` (Rosenbrock methods then skip the finite-difference
        ``df/dt``, one evaluation of ``f`` per step).
    dense_max : int
        Grid problems with more unknowns than this go to Newton-Krylov.
    """

    method = None
    krylov = False

    def __init__(self, autonomous=False, dense_max=2000):
        self.autonomous = bool(autonomous)
        # an integer >= 0: int() silently truncated 1.5, took True as 1 and -5 (every grid
        # problem to Newton-Krylov), and raised a bare ValueError/TypeError for "x"/None
        if isinstance(dense_max, (bool, np.bool_)) or not isinstance(dense_max,
                                                                    (int, np.integer)):
            raise InvalidProblemError(f"dense_max: expected an integer >= 0 (the most "
                                      f"unknowns of the dense path), got {dense_max!r}")
        if dense_max < 0:
            raise InvalidProblemError(f"dense_max: expected an integer >= 0, got {dense_max}")
        self.dense_max = int(dense_max)


class ImplicitEuler(StiffAlgorithm):
    """Backward Euler (order 1, L-stable), simplified Newton, adaptive steps from the
    W-filtered difference to the trapezoidal rule; linear interpolation.

    On a ``SplitODEProblem`` both parts are implicit.

    References
    ----------
    Hairer, Wanner, *Solving ODEs II* (1996), IV.3 and IV.8.
    """
    method, order, adaptive, dense, krylov = "implicit_euler", 1, True, True, True


class Rosenbrock23(StiffAlgorithm):
    """Shampine-Reichelt's L-stable Rosenbrock(W) method of order 2 with a 3rd-order
    error estimate and its 2nd-order interpolant (MATLAB's ``ode23s``); good at loose
    tolerances.

    References
    ----------
    Shampine, Reichelt, *The MATLAB ODE suite*, SIAM J. Sci. Comput. 18 (1997) 1-22;
    Hairer, Wanner, *Solving ODEs II* (1996), IV.7.
    """
    method, order, adaptive, dense = "rosenbrock23", 2, True, True


class Rodas5P(StiffAlgorithm):
    """Steinebach's stiffly accurate, L-stable Rosenbrock method of order 5(4) with a
    4th-order interpolant; the default for stiff problems at moderate to tight tolerances.

    References
    ----------
    Steinebach, *Construction of Rosenbrock-Wanner method Rodas5P and numerical
    benchmarks within the Julia Differential Equations package*, BIT 63 (2023) 27;
    Hairer, Wanner, *Solving ODEs II* (1996), IV.7.
    """
    method, order, adaptive, dense = "rodas5p", 5, True, True


class KenCarp4(StiffAlgorithm):
    """Kennedy-Carpenter ARK4(3)6L[2]SA: on a ``SplitODEProblem`` an IMEX method (``L``
    implicit, ``f`` explicit); on an ``ODEProblem`` the L-stable ESDIRK part alone.
    Simplified Newton with Jacobian reuse; 3rd-order interpolant.

    References
    ----------
    Kennedy, Carpenter, *Additive Runge-Kutta schemes for convection-diffusion-reaction
    equations*, Appl. Numer. Math. 44 (2003) 139-181.
    """
    method, order, adaptive, dense, krylov = "kencarp4", 4, True, True, True


class Kvaerno5(StiffAlgorithm):
    """Kværnø's stiffly accurate, L-stable ESDIRK 5(4) pair (7 stages); simplified Newton
    with Jacobian reuse; cubic Hermite interpolation.

    References
    ----------
    Kværnø, *Singly diagonally implicit Runge-Kutta methods with an explicit first
    stage*, BIT 44 (2004) 489-502.
    """
    method, order, adaptive, dense, krylov = "kvaerno5", 5, True, True, True


# ------------------------------------------------------------------------- plumbing
def _jacobian_tuple(rhs, alg, imex, n):
    from .kernels.cpu.rhs import zero_f
    from .solvers.ode.rosenbrock import jacobian_data
    fun = rhs.fun
    fjac_on = (fun is not None) and (rhs.f is not zero_f) and not imex
    if not fjac_on:
        return jacobian_data(n, rhs.p, fjac_on=False, autonomous=alg.autonomous)
    if fun.jac is not None:
        return jacobian_data(n, rhs.p, jac=fun.cfunc("jac"), autonomous=alg.autonomous)
    sp = fun.jac_sparsity
    if sp is not None and sp.shape != (n, n):
        raise InvalidProblemError(f"jac_sparsity: shape {sp.shape}, but the state has {n} "
                                  f"components")
    return jacobian_data(n, rhs.p, fc=fun.cfunc("f_complex"), sparsity=sp,
                         autonomous=alg.autonomous)


def _operator_products(op, name):
    """``(lin, jv)`` of the grid operator ``op``: ``lin(du, u, t)`` writes the affine
    right-hand side ``op u + op.boundary_term()``, ``jv(v, out)`` the product ``op v``
    (its Jacobian).  One compiled stencil pass for a single, possibly scaled, Laplacian,
    Diffusion or Advection; any other grid operator (a sum such as ``D + V`` or
    ``sigma I + c L``) through its own ``apply``."""
    from .kernels.cpu.rhs_grid import _grid_apply
    try:
        plin = pack_grid_operator(op, name=name)
        pj = pack_grid_operator(op, with_boundary=False, name=name)
    except UnsupportedAlgorithmError:
        b = np.ascontiguousarray(op.boundary_term(), dtype=np.float64).ravel()
        hasb = bool(np.any(b))

        def jv(v, out):
            op.apply(np.ascontiguousarray(v, dtype=np.float64), out)
            return out

        def lin(du, u, t):
            op.apply(u, du)
            if hasb:
                du += b
        return lin, jv

    def lin(du, u, t):        # noqa: F811
        _grid_apply(du, u, plin, False)

    def jv(v, out):           # noqa: F811
        _grid_apply(out, np.ascontiguousarray(v), pj, False)
        return out
    return lin, jv


def _grid_krylov(prob, alg, oo, dense=False, record=False):
    """Newton-Krylov path for grid problems (``dense``: keep every step's stages for
    ``sol(t)``, the method's interpolant; ``record``: keep every step's stage states for
    the discrete adjoint)."""
    return grid_krylov_stepper(prob, alg)(prob.u0.ravel(), prob.tspan[0], prob.tspan[1],
                                          oo, dense=dense, record=record)


def grid_krylov_stepper(prob, alg):
    """``run(u0, t0, t1, oo, dense=False, record=False)``: the Newton-Krylov solve of
    ``prob``'s right-hand side from ``(t0, u0)`` to ``t1`` with the options ``oo`` (the
    raw dict of :func:`jitsolve.solvers.ode.esdirk.solve_sdirk_krylov`).  The products,
    the Jacobian update and the stage preconditioner are built once, and the last
    preconditioner is kept between calls (the checkpointed adjoint re-solves one step at
    a time with the same ``h``) and is ``run.precond`` (None when the operator has none)."""
    from .solvers.ode.esdirk import last_preconditioner, solve_sdirk_krylov
    split = isinstance(prob, SplitODEProblem)
    op = prob.L if split else prob.f
    p = probed_parameters(prob)
    fn = None
    if split:
        if isinstance(prob.f, GridOperator):
            raise UnsupportedAlgorithmError("f: a SplitODEProblem's f must be a function")
        fn = prob.f
    lin, jv_lin = _operator_products(op, "L" if split else "f")
    imex = split and isinstance(alg, KenCarp4)

    def fE(du, u, t):
        fn(du, u, p, t)

    diag = np.zeros(prob.u0.size)
    jv_update = None
    if split and not imex:
        fcx = fn.compiled("f", complex_state=True)
        pc = p.astype(np.complex128)

        def _diag_update(u, t):     # row sums of df/du (exact for pointwise f)
            uc = u + 1e-30j
            du = np.empty(u.size, np.complex128)
            fcx(du, uc, pc, t)
            diag[:] = du.imag / 1e-30
        jv_update = _diag_update

        tmpf = np.empty(prob.u0.size)

        def fI(du, u, t):
            lin(du, u, t)
            fn(tmpf, u, p, t)
            du += tmpf
    else:
        fI = lin

    def jv(v, out):
        jv_lin(v, out)
        if jv_update is not None:
            out += diag * v
        return out

    stage_pc = _stage_multigrid(op)
    precond = None if stage_pc is None else last_preconditioner(stage_pc)

    def run(u0, t0, t1, oo, dense=False, record=False):
        return solve_sdirk_krylov(alg.method, fE, fI, jv, u0, t0, t1, imex=imex,
                                  rtol=oo["rtol"], atol=oo["atol"],
                                  adaptive=oo["adaptive"], dt=oo["dt"], dtmin=oo["dtmin"],
                                  maxiters=oo["maxiters"], tstops=oo["tstops"],
                                  saveat=oo["saveat"], jv_update=jv_update,
                                  precond=precond, dense=dense, record=record)
    run.precond = precond          # the adjoint's transposed stage systems share it
    return run


#: the stage systems are preconditioned once ``hg`` times the operator's spectral radius
#: reaches this (below it GMRES needs a few iterations unpreconditioned: ImplicitEuler's
#: short steps on the 256^2 heat equation, 3.7 a solve, ran 2.5x slower with a cycle set
#: up for every step)
STIFF_PRECOND = 20.0


def _stage_multigrid(op):
    """``hg -> M``: one multigrid cycle of ``I - hg op`` for the stage systems, when the
    grid operator ``op`` is ``sigma I + c L`` or ``sigma I + c D(kappa)`` and ``hg`` times
    its spectral radius is at least :data:`STIFF_PRECOND` (None otherwise, and for an
    ``hg`` whose shifted operator is not definite)."""
    parts = shifted_parts(op)
    if parts is None or type(parts[2]) not in (Laplacian, Diffusion):
        return None
    sigma, c, leaf = parts
    ident = Identity(leaf.grid)
    rho = abs(c) * 4.0 * sum(1.0 / h ** 2 for h in leaf.grid.spacing)
    if type(leaf) is Diffusion:
        rho *= float(np.max(leaf.kappa))

    def precond(hg):
        if hg * rho < STIFF_PRECOND:
            return None
        try:
            return Multigrid().setup((1.0 - hg * sigma) * ident + (-hg * c) * leaf)
        except InvalidProblemError:
            return None

    return precond


def newton_krylov(prob, alg):
    """Whether the stiff ``alg`` solves ``prob`` by Newton-Krylov: a grid operator as the
    right-hand side (or the linear part) and more than ``alg.dense_max`` unknowns; else
    the dense path (one compiled loop, dense Jacobian and LU)."""
    op = prob.L if isinstance(prob, SplitODEProblem) else prob.f
    return isinstance(op, GridOperator) and prob.u0.size > alg.dense_max


def check_krylov(prob, alg):
    """Refuse a method without a Newton-Krylov form (the Rosenbrock methods) on a grid
    problem above its ``dense_max``."""
    if not alg.krylov:
        raise UnsupportedAlgorithmError(
            f"alg: {type(alg).__name__} needs a dense Jacobian; this grid problem has "
            f"{prob.u0.size} unknowns (> dense_max={alg.dense_max}). Use ImplicitEuler, "
            f"KenCarp4 or Kvaerno5 (Newton-Krylov)")


def _solve_stiff(prob, alg, o):
    from .solvers.ode.rosenbrock import solve_stiff
    oo = ode_options(prob, alg, o)
    n = prob.u0.size
    split = isinstance(prob, SplitODEProblem)
    if newton_krylov(prob, alg):
        check_krylov(prob, alg)
        if o.get("callback") is not None:
            raise UnsupportedAlgorithmError("callback: not supported by the Newton-Krylov "
                                            "path of the stiff methods yet")
        # every step saved: keep the stages for sol(t) (the method's interpolant, as
        # the dense path; it interpolated linearly between the steps, 3e-4 off at rtol
        # 1e-6 where the interpolant is within the tolerance)
        dense = oo["saveat"] is None and alg.dense
        raw = _grid_krylov(prob, alg, oo, dense=dense)
        return ode_solution(prob, alg, raw, raw["BTH"] if dense else None)
    rhs = problem_rhs(prob)
    imex = split and isinstance(alg, KenCarp4)
    jd = _jacobian_tuple(rhs, alg, imex, n)
    dense = oo["saveat"] is None and alg.dense
    raw = solve_stiff(alg.method, rhs.f, rhs.p, prob.u0.ravel(), prob.tspan[0], prob.tspan[1],
                      lin=rhs.lin, plin=rhs.plin, jd=jd, imex=imex, rtol=oo["rtol"],
                      atol=oo["atol"], adaptive=oo["adaptive"], dt=oo["dt"], dtmin=oo["dtmin"],
                      maxiters=oo["maxiters"], tstops=oo["tstops"], saveat=oo["saveat"],
                      dense=dense,
                      # adaptive steps save inside steps from the interpolant (SciML);
                      # fixed steps land on the saved times, as before (their grid
                      # t0 + k dt is rounded: a save time on it would be interpolated at
                      # theta = 1 - eps, other bits than the gradients' landing solve)
                      land_on_saveat=not oo["adaptive"],
                      # None without callbacks: the stiff loop compiles no event code
                      callbacks=(None if o["callback"] is None
                                 else _callback_tuple(o["callback"], rhs.p, prob.u0,
                                                      prob.tspan[0])))
    return ode_solution(prob, alg, raw, raw["BTH"] if dense else None)


@register(ODEProblem, StiffAlgorithm)
@register(SplitODEProblem, StiffAlgorithm)
def _solve_stiff_registered(prob, alg, **o):
    return _solve_stiff(prob, alg, o)


@register(EnsembleProblem, StiffAlgorithm)
def _solve_ensemble_stiff(eprob, alg, **o):
    """Stiff ensembles: rows of ``u0s``/``ps`` in one compiled kernel, one trajectory per
    thread (:func:`jitsolve.solvers.ode.rosenbrock.solve_stiff_ensemble`), each with its
    own steps, Jacobians and events (callbacks) and bit for bit its own single solve
    saved at the ensemble's times.  ``prob_func`` and the Newton-Krylov path of large
    grid problems take the general path (one compiled solve per trajectory in a Python
    loop)."""
    from .solvers.ode.rosenbrock import solve_stiff_ensemble
    prob = eprob.prob
    if not isinstance(prob, (ODEProblem, SplitODEProblem)):
        raise UnsupportedAlgorithmError(f"alg: {type(alg).__name__} integrates ODEs; the "
                                        f"ensemble holds a {type(prob).__name__}")
    N = o.pop("trajectories")
    split = isinstance(prob, SplitODEProblem)
    n = prob.u0.size
    if eprob.prob_func is not None or newton_krylov(prob, alg):
        return _solve_prob_func(eprob, alg, N, o)
    savet = saveat_times(prob.tspan, o["saveat"])
    if savet is None:
        savet = np.array(prob.tspan, dtype=np.float64)
    oo = ode_options(prob, alg, dict(o, saveat=savet))
    rhs = problem_rhs(prob)
    imex = split and isinstance(alg, KenCarp4)
    jd = _jacobian_tuple(rhs, alg, imex, n)
    u0s = (eprob.u0s[:N].reshape(N, n) if eprob.u0s is not None
           else np.broadcast_to(prob.u0.ravel(), (N, n)))
    ps = (eprob.ps[:N].reshape(N, -1) if eprob.ps is not None
          else np.broadcast_to(rhs.p, (N, rhs.p.size)))
    u, rcs, stats = solve_stiff_ensemble(
        alg.method, rhs.f, u0s, ps, prob.tspan[0], prob.tspan[1], oo["saveat"], lin=rhs.lin,
        plin=rhs.plin, jd=jd, imex=imex, rtol=oo["rtol"], atol=oo["atol"],
        adaptive=oo["adaptive"], dt=oo["dt"], dtmin=oo["dtmin"], maxiters=oo["maxiters"],
        tstops=oo["tstops"], land_on_saveat=not oo["adaptive"],
        # None without callbacks: the kernel compiles no event code
        callbacks=(None if o["callback"] is None
                   else _callback_tuple(o["callback"], rhs.p, prob.u0, prob.tspan[0])))
    return EnsembleSolution(oo["saveat"], u.reshape((N, savet.size) + prob.u0.shape), rcs,
                            alg=type(alg).__name__, stats=stats)


_EXAMPLE = """>>> import numpy as np, jitsolve as js
>>> def stiff(du, u, p, t):           # u' = -1000 (u - cos t): u follows cos t
...     du[0] = -1000.0 * (u[0] - np.cos(t))
>>> prob = js.ODEProblem(stiff, np.array([0.0]), (0.0, 1.0))
>>> sol = js.solve(prob, js.{name}(), rtol=1e-6, atol=1e-8)
>>> bool(abs(sol.u[-1][0] - np.cos(1.0)) < 1e-2), sol.successful
(True, True)"""
_COSTS = {
    ImplicitEuler: "Per step: one Jacobian (reused while Newton converges fast) and one LU "
                   "of W = I - h J (O(n^3) dense; sparse direct or Krylov + multigrid for "
                   "grids), 1-4 Newton iterations each one f evaluation and one LU solve.",
    Rosenbrock23: "Per step: one Jacobian and one LU of W = I - h d J, 3 f evaluations and 3 LU "
                  "solves, no Newton iteration (linearly implicit).  Adjoint: 3 transposed "
                  "solves and VJPs per step.",
    Rodas5P: "Per step: one Jacobian and one LU of W, 8 stages = 8 f evaluations and 8 LU "
             "solves, no Newton iteration.  Adjoint: transposed solves with the same LU and "
             "one Jacobian-direction derivative per stage (exact, complex step).",
    KenCarp4: "Per step: 5 implicit stages (ESDIRK), each a simplified-Newton solve with the "
              "step's LU of W = I - h gamma J (1-3 f evaluations and LU solves per stage); in "
              "IMEX form only L enters W and f is evaluated explicitly.  Adjoint: one "
              "transposed solve per stage.",
    Kvaerno5: "Per step: 6 implicit stages (ESDIRK), each a simplified-Newton solve with the "
              "step's LU of W = I - h gamma J.  Adjoint: one transposed solve per stage.",
}
for _cls, _cost in _COSTS.items():
    document(_cls, _cost, _EXAMPLE.format(name=_cls.__name__))
