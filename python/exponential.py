"""Exponential integrators for semilinear problems ``du/dt = L u + f(u, p, t)``
(``SplitODEProblem``): ``ETDRK4`` and its ``solve`` registrations.

The linear part is integrated exactly (through functions of ``h L``), so the step size
is limited by ``f`` alone, however stiff ``L`` is; see
:mod:`jitsolve.solvers.ode.etdrk4` for how ``L`` is represented.
"""
import numpy as np

from .algorithms import ODEAlgorithm, document
from .errors import UnsupportedAlgorithmError
from .problems import EnsembleProblem, ODEProblem, SplitODEProblem
from .solve import register

__all__ = ["ETDRK4", "etd_discrete_adjoint"]


class ETDRK4(ODEAlgorithm):
    """Cox and Matthews' fourth-order exponential time-differencing Runge-Kutta method,
    for ``SplitODEProblem(L, f, u0, tspan)``; fixed steps (pass ``dt``: ``adaptive``,
    ``rtol``, ``atol`` and ``dtmin`` do not apply and are ignored).

    The steps land on every ``saveat`` and ``tstops`` time (saved states are computed,
    not interpolated): between two such times the steps are ``dt`` long and the last
    one is shortened to land (so is the last step before ``t1`` when ``dt`` does not
    divide the span).  With a dense ``L`` at most 64 different step sizes per solve
    (``saveat``/``tstops`` off the grid ``t0 + k dt``, and a gradient's loss times, which
    are ``tstops``); a diagonal or eigenbasis ``L`` takes as many as fit in 256 MiB of
    coefficients (``48 n`` bytes a size).

    The linear part ``L`` is integrated exactly, so stiff diffusion needs no step-size
    restriction: ``dt`` is set by the accuracy of the nonlinear part.  Its phi-function
    coefficients are computed once per step size (``dt``, and the shortened steps that
    land on ``saveat``/``tstops`` times off the grid ``t0 + k dt``): in the eigenbasis of
    a (scaled) ``Laplacian`` on any grid and boundary conditions (``O(n sum_a n_a)`` per
    transform, no dense ``n x n`` matrix), entrywise for a 1-D diagonal ``L``, or as
    dense matrices for other (small) matrices and operators.  Nonzero boundary values of
    a grid operator enter with ``f``.

    Order 4 on the Kassam-Trefethen problems (measured in the tests); its stiff order can
    be lower for general ``f`` (Hochbruck-Ostermann).  No error estimate, no interpolant
    of its own (``sol(t)`` interpolates the saved states linearly), no callbacks.
    ``js.gradient`` differentiates it with ``js.DiscreteAdjoint()`` (the exact
    derivative of the steps taken, any checkpointing; ``wrt`` ``"p"`` and ``"u0"``) or
    ``js.FiniteDifference()``.

    References
    ----------
    Cox, Matthews, *Exponential time differencing for stiff systems*, J. Comput. Phys.
    176 (2002); Kassam, Trefethen, *Fourth-order time-stepping for stiff PDEs*, SIAM J.
    Sci. Comput. 26 (2005); Hochbruck, Ostermann, *Exponential integrators*, Acta
    Numerica 19 (2010).
    """

    order, adaptive, dense = 4, False, False


def _run_etdrk4(prob, alg, o):
    """The raw result dict of an ETDRK4 solve (with ``etd``, what its adjoint replays)."""
    from .functions import probe_user_function
    from .grid.operators import GridOperator
    from .ode import ode_options
    from .solvers.ode.etdrk4 import linear_representation, solve_etdrk4
    if o["callback"] is not None:
        raise UnsupportedAlgorithmError(
            "callback: ETDRK4 takes no callbacks (it has no interpolant to locate a "
            "continuous callback's events on, and its fixed-step loop checks no discrete "
            "one); use js.KenCarp4() or an explicit method for a solve with callbacks")
    oo = ode_options(prob, alg, o)
    if isinstance(prob.f, GridOperator):
        raise UnsupportedAlgorithmError("f: a SplitODEProblem's f must be a function")
    p = np.ascontiguousarray(prob.p if prob.p is not None else np.zeros(0), dtype=np.float64)
    probe_user_function(prob.f.f, "f", prob.u0, p, prob.tspan[0], out_shape=(prob.u0.size,))
    rep = linear_representation(prob.L, prob.u0.size)
    nb = prob.L.boundary_term().ravel() if isinstance(prob.L, GridOperator) else None
    return solve_etdrk4(prob.f.cfunc("f"), p, nb, prob.u0.ravel(), prob.tspan[0], prob.tspan[1],
                        rep, oo["dt"], saveat=oo["saveat"], tstops=oo["tstops"],
                        maxiters=oo["maxiters"])


@register(SplitODEProblem, ETDRK4)
def _solve_etdrk4(prob, alg, **o):
    from .ode import ode_solution
    return ode_solution(prob, alg, _run_etdrk4(prob, alg, o))


def etd_discrete_adjoint(prob, alg, loss, wrt, sensealg, solve_kw):
    """Value and gradients (``wrt`` ``"p"``, ``"u0"``) of an ETDRK4 solve's loss by the
    discrete adjoint (:mod:`jitsolve.adjoint.etdrk4`): the steps land on the loss times
    (they are ``tstops``), as ``solve(prob, ETDRK4(), saveat=t_data, dt=...)`` does."""
    from .adjoint.etdrk4 import etd_adjoint
    from .errors import InvalidProblemError, SolveFailedError
    from .rhs import RHS
    from .sensitivity import _gradient_options, _grads_out, _vjp_for, loss_on_landed_steps
    if "kappa" in wrt:
        raise InvalidProblemError("wrt: ETDRK4's gradient differentiates 'p' and 'u0' (its "
                                  "linear part enters through exact matrix functions)")
    t_data, o = _gradient_options(prob, loss, solve_kw)     # the loss times are tstops
    t0 = prob.tspan[0]
    all_states = sensealg.checkpoints == "all"
    o["saveat"] = None if all_states else t_data[t_data != t0]
    raw = _run_etdrk4(prob, alg, o)
    if raw["retcode"] != "Success":
        raise SolveFailedError(f"gradient: the forward solve ended with ReturnCode."
                               f"{raw['retcode']} at t = {raw['t_end']:.6g}")
    steps = raw["etd"]
    # the steps land on every loss time (they are tstops); step i ends at tg[i + 1]
    val, g, save_after, g_initial_row = loss_on_landed_steps(prob, loss, t_data, steps.tg[1:],
                                                             raw, all_states)
    vj, np_grad = _vjp_for(prob, RHS(steps.f, steps.p, fun=prob.f), wrt)
    lam, pbar, _nre = etd_adjoint(
        steps, vj, states=raw["u"] if all_states else None, u0=prob.u0, gsave=g,
        save_after=save_after, g_initial=None if g_initial_row is None else g[g_initial_row],
        checkpoints=sensealg.checkpoints, store=sensealg.store, np_grad=np_grad)
    return val, _grads_out(prob, wrt, lam, pbar, None)


@register(ODEProblem, ETDRK4)
def _refuse_plain_ode(prob, alg, **o):
    raise UnsupportedAlgorithmError(
        "prob: ETDRK4 integrates a semilinear js.SplitODEProblem(L, f, u0, tspan) (it needs "
        "the linear part L apart); got an ODEProblem")


@register(EnsembleProblem, ETDRK4)
def _solve_ensemble_etdrk4(eprob, alg, **o):
    from .ode import _solve_prob_func
    if not isinstance(eprob.prob, SplitODEProblem):
        _refuse_plain_ode(eprob.prob, alg)
    return _solve_prob_func(eprob, alg, o.pop("trajectories"), o)


document(ETDRK4, "4 evaluations of f per step and, in the eigenbasis of a separable "
         "operator, 8 transforms (matrix products along each axis, O(n sum_a n_a) flops "
         "each); a diagonal L costs O(n) per stage, a dense one 7 matrix-vector products "
         "per step.  Set-up per step size: the phi functions of h L (n exponentials; a "
         "dense L: one matrix exponential of a 4n x 4n block matrix, or one eigh when L "
         "is symmetric).",
         """>>> import numpy as np, jitsolve as js
>>> g = js.Grid((64,), bc=js.Periodic())
>>> def reaction(du, u, p, t):
...     for i in range(u.size):
...         du[i] = u[i] - u[i] ** 3
>>> u0 = np.sin(2 * np.pi * g.cell_centers()[0])
>>> prob = js.SplitODEProblem(0.01 * js.Laplacian(g), reaction, u0, (0.0, 1.0))
>>> sol = js.solve(prob, js.ETDRK4(), dt=0.1)
>>> sol.retcode, sol.u.shape
(<ReturnCode.Success: 'Success'>, (11, 64))""")
