"""Continuous adjoints of stiff ODE solves: the adjoint ODE integrated backwards by the
forward algorithm itself (Rosenbrock23, Rodas5P, ImplicitEuler, KenCarp4, Kvaerno5).

The adjoint system of ``u' = f(u, p, t) [+ L u + c]`` with ``z = (lam, mu)``,

    lam' = -(J + L)^T lam,    mu' = -J_p^T lam,       J = df/du (u(t)),  J_p = df/dp,

(``z = (u, lam, mu)`` with ``u' = f(u) + L u + c`` in front for the backsolve mode) is an
ODE like any other: :func:`adjoint_system` compiles its right-hand side and its exact
Jacobian ``[[-(J + L)^T, 0], [-J_p^T, 0]]`` as cfuncs of the fixed signatures, so the
stiff loop (:func:`jitsolve.kernels.cpu.stiff.stiff_solve`, already compiled and
disk-cached for every user problem) runs it unchanged; :func:`solve_adjoint` integrates
it from ``t1`` to ``t0`` piece by piece, ``lam`` jumping by the loss gradient at each
observation time.  ``dL/du0 = lam(t0)``, ``dL/dp = mu(t0)``.

Everything that varies per solve travels in the parameter vector ``P`` (:func:`pack`):
the sizes, the user's ``p``, the forward solve's dense output (steps, states, slopes,
interpolation weights) and the dense matrix and constant of the linear part.  The
cfuncs close over the user's functions only (its real and complex cfuncs and optional
``jac`` / ``paramjac``), so they compile once per user function per process.

- ``J`` and ``J_p``: the user's ``jac`` / ``paramjac`` when given, else rows of the
  user's ``vjp`` (``J^T e_i``, ``J_p^T e_i``: n calls), else exact complex step of
  ``f``'s complex twin (one evaluation per column; dense: the adjoint is for systems
  that fit the stiff methods' dense path).  The complex twin is then not needed (the
  caller passes a placeholder), so ``f`` need not compile for complex states.
- Backsolve: the ``u``-rows of the Jacobian of ``(J + L)^T lam`` and ``J_p^T lam`` (second
  derivatives of ``f``) by central differences of the complex-step products; documented as
  unstable on stiff and dissipative problems, which is where this module runs.
- Quadrature: ``mu`` integrated with the system but left out of the error control.

Accurate to the tolerance of the backward solve, not exact for the discrete forward
solution (that is :mod:`.stiff`'s discrete adjoint).

References
----------
Cao, Li, Petzold, Serban, *Adjoint sensitivity analysis for differential-algebraic
equations*, SIAM J. Sci. Comput. 24 (2003); Hairer, Wanner, *Solving ODEs II* (1996), IV.7
(Rosenbrock methods, which need the exact Jacobian supplied here); Kim, Ji, Deng, Ma,
Rackauckas, *Stiff neural ordinary differential equations*, Chaos 31 (2021) (the
interpolating and quadrature adjoints on stiff problems).
"""
import numpy as np
from numba import cfunc

from ..kernels.cpu import stiff_adjoint_system as K
from ..kernels.cpu.cfuncptr import as_pointer
from ..kernels.cpu.stiffjac import no_jac, no_vjp
from ..solvers.ode.rosenbrock import jacobian_data, solve_stiff

__all__ = ["adjoint_system", "sensitivity_system", "pack", "solve_adjoint", "linear_part_dense"]

_F_SIG = "void(float64[::1], float64[::1], float64[::1], float64)"
_J_SIG = "void(float64[:, ::1], float64[::1], float64[::1], float64)"
_SYSTEMS = {}


def pack(p, n, npg, mode, steps_t, steps_h, dense_u, dense_k, BTH, L=None, c=None, hasf=True,
         dp=None, colouring=None):
    """The system's parameter vector ``P`` (see the module docstring); mode 0
    interpolating, 1 backsolve, 2 quadrature, 3 forward sensitivity (``dp`` the
    directions' parameter tangents, ``ndir x npg``); ``colouring`` the
    ``(cptr, ccols, colptr, rowidx)`` of ``jac_sparsity``
    (:func:`jitsolve.solvers.ode.rosenbrock.color_columns`), for ``J`` by one complex
    evaluation per colour."""
    N = steps_t.size
    sd, deg = BTH.shape
    haslin = L is not None
    ndir = 0 if dp is None else dp.shape[0]
    ncol = 0 if colouring is None else colouring[0].size - 1
    nnz = 0 if colouring is None else colouring[3].size
    hdr = np.array([n, p.size, npg, mode, N, sd, deg, 1.0 if haslin else 0.0,
                    1.0 if hasf else 0.0, ndir, ncol, nnz], dtype=np.float64)
    assert hdr.size == K.HEADER
    parts = [hdr, p, steps_t, steps_h, dense_u.ravel(), dense_k.ravel(), BTH.ravel()]
    if haslin:
        parts += [np.ascontiguousarray(L, dtype=np.float64).ravel(),
                  np.ascontiguousarray(c, dtype=np.float64).ravel()]
    if ndir:
        parts.append(np.ascontiguousarray(dp, dtype=np.float64).ravel())
    if colouring is not None:
        parts += [np.asarray(a, dtype=np.float64) for a in colouring]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float64)


def linear_part_dense(lin, plin, n, t):
    """``(L, c)`` with ``lin(u) = L u + c`` (a grid operator's boundary values in ``c``):
    ``n + 1`` applications of the linear part's cfunc."""
    L = np.empty((n, n))
    c = np.empty(n)
    K.linear_dense(lin, np.ascontiguousarray(plin, dtype=np.float64), n, float(t), L, c)
    return L, c


def _system(kind, fr, fc, jac, paramjac, vjp):
    """The ``(rhs, jac)`` cfunc pair of ``kind`` ("adjoint" or "sensitivity") for these
    user functions, built once per process."""
    key = (kind, id(fr), id(fc), id(jac), id(paramjac), id(vjp))
    hit = _SYSTEMS.get(key)
    if hit is not None and hit[0] == (fr, fc, jac, paramjac, vjp):
        return hit[1]
    hasjac, haspj, hasvjp = jac is not None, paramjac is not None, vjp is not None
    jf = jac if hasjac else no_jac
    pj = paramjac if haspj else no_jac
    vj = vjp if hasvjp else no_vjp
    rhs_body, jac_body = ((K.adjoint_rhs, K.adjoint_jac) if kind == "adjoint"
                          else (K.sensitivity_rhs, K.sensitivity_jac))

    @as_pointer
    @cfunc(_F_SIG, error_model="numpy")
    def system_rhs(dz, z, P, t):
        rhs_body(fr, fc, jf, pj, vj, hasjac, haspj, hasvjp, dz, z, P, t)

    @as_pointer
    @cfunc(_J_SIG, error_model="numpy")
    def system_jac(Jz, z, P, t):
        jac_body(fc, jf, pj, vj, hasjac, haspj, hasvjp, Jz, z, P, t)

    _SYSTEMS[key] = ((fr, fc, jac, paramjac, vjp), (system_rhs, system_jac))
    return system_rhs, system_jac


def adjoint_system(fr, fc, jac=None, paramjac=None, vjp=None):
    """``(rhs, jac)`` cfuncs of the adjoint system (modes 0-2 of :func:`pack`) for the
    user's real and complex cfuncs ``fr``, ``fc`` (and optional ``jac`` / ``paramjac`` /
    ``vjp`` cfuncs); built once per user function per process (about 1.4 s with the
    compiled bodies in the disk cache)."""
    return _system("adjoint", fr, fc, jac, paramjac, vjp)


def sensitivity_system(fr, fc, jac=None, paramjac=None, vjp=None):
    """``(rhs, jac)`` cfuncs of the forward sensitivity system ``u' = f``,
    ``S_k' = (J + L) S_k + J_p dp_k`` (mode 3 of :func:`pack`), built once per user
    function per process.  The Jacobian's ``u``-columns of the tangent rows (second
    derivatives of ``f``) are central differences of the exact Jacobians."""
    return _system("sensitivity", fr, fc, jac, paramjac, vjp)


def solve_adjoint(method, system, P, z_end, t1, t0, t_jump, g_jump, *, n, off, quadrature,
                  rtol, atol, maxiters, stops=None):
    """Integrate the adjoint system from ``t1`` to ``t0`` with the stiff ``method``;
    ``g_jump[k]`` is added to ``lam`` (entries ``off .. off + n`` of ``z``) at
    ``t_jump[k]`` (ordered from ``t1`` towards ``t0``, not ``t0`` itself).

    Returns ``(z(t0), stats, retcode, t_reached)``: on a failed piece the state where it
    stopped.  ``quadrature``: the entries after ``lam`` are left out of the error norm
    (the others' tolerances scaled so the norm keeps its meaning).

    ``stops``: the forward solve's step boundaries (the interpolating and quadrature
    modes), made stops of the backward solve.  The system's right-hand side is the
    forward dense output, a different polynomial on each forward step and only
    continuous across their ends: a backward step across an end loses the method's
    order, and the Rosenbrock methods' ``df/dt`` (a forward difference in ``t``) comes
    from the wrong piece.  The error control caught most of it for ``lam`` and the
    interpolating ``mu``, but the quadrature's ``mu`` (outside the error norm) was off
    by far more than the tolerance (a relative 2e-2 on a backward-in-time span with
    Rodas5P at rtol=1e-8; 1e-13 with the stops).
    """
    adj_rhs, adj_jac = system
    z = np.array(z_end, dtype=np.float64)
    nz = z.size
    rt = np.full(nz, float(rtol))
    at = np.full(nz, float(atol))
    if quadrature and nz > off + n:
        scale = np.sqrt((off + n) / nz)
        rt[:off + n] *= scale
        at[:off + n] *= scale
        rt[off + n:] = 0.0
        at[off + n:] = np.inf
    jd = jacobian_data(nz, P, jac=adj_jac, autonomous=False)
    stats = np.zeros(5, np.int64)
    t = float(t1)
    pieces = [(float(tj), g) for tj, g in zip(t_jump, g_jump)] + [(float(t0), None)]
    srt = None if stops is None or not len(stops) else np.unique(np.asarray(stops, np.float64))
    for tj, g in pieces:
        if tj != t:
            # maxiters bounds the whole backward solve, as it bounds the forward one
            left = max(int(maxiters) - int(stats[3] + stats[4]), 1)
            inner = None
            if srt is not None:
                lo, hi = min(t, tj), max(t, tj)
                inner = srt[np.searchsorted(srt, lo, "right"):np.searchsorted(srt, hi, "left")]
            raw = solve_stiff(method, adj_rhs, P, z, t, tj, jd=jd, rtol=rt, atol=at,
                              maxiters=left, saveat=np.array([tj]), tstops=inner)
            stats += raw["stats"]
            if raw["retcode"] != "Success":
                return raw["u_end"], stats, raw["retcode"], raw["t_end"]
            z = raw["u_end"].copy()
            t = tj
        if g is not None:
            z[off:off + n] += g
    return z, stats, "Success", t
