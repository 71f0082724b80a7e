"""Gradients through a discrete callback: the state's jumps and their pullbacks.

A :class:`~jitsolve.ode.DiscreteCallback` changes the state after each step where its
condition holds, ``u <- A(u, p, t)``.  The discrete adjoint of such a solve
(:func:`jitsolve.adjoint.discrete.erk_adjoint_jumps`) reverses the steps between jumps as
usual and pulls the adjoint back across each jump with ``A``'s Jacobians, taken here by
complex-step differentiation of the user's ``affect`` (exact to rounding: Squire,
Trapp, *Using complex variables to estimate derivatives of real functions*, SIAM Review
40 (1998); Martins, Sturdza, Alonso, ACM TOMS 29 (2003)), one evaluation per state
component and per parameter.  Which steps end with a jump (the condition's value) is
held fixed, as the accepted step sizes are: the derivative of the computed solution,
not of the event times.  SciMLSensitivity differentiates ``DiscreteCallback`` affects
the same way (Rackauckas et al., *Universal differential equations for scientific
machine learning* (2020), the callback adjoints).
"""
import numpy as np

from .errors import CompileError, UnsupportedAlgorithmError

__all__ = ["AFFECT_JAC_MAX", "AffectJump", "check_affect", "discrete_jumps"]

#: the largest state whose jumps are differentiated (``n`` complex evaluations of
#: ``affect`` per jump, each O(n): a grid of 256^2 would take minutes per event)
AFFECT_JAC_MAX = 4096

_AFFECT_REAL = "void(float64[::1], float64, float64[::1])"
_AFFECT_COMPLEX = "void(complex128[::1], float64, complex128[::1])"


class AffectJump:
    """The jump ``u <- A(u, p, t)`` after step ``step`` of a solve.

    Attributes
    ----------
    step : int
        The accepted step after which the state jumps.
    t : float
        Its end time.
    before, after : (n,) arrays
        The state before and after the jump (``after`` by the real ``affect``, the
        value the solve continued from).
    """

    def __init__(self, step, t, before, after, affect_c, p, np_grad):
        self.step = int(step)
        self.t = float(t)
        self.before = before
        self.after = after
        self._affect_c = affect_c
        self._p = p
        self._np_grad = np_grad

    def jacobians(self):
        """``(A_u, A_p)`` at the state before the jump, ``n x n`` and ``n x np``, by
        complex step (a column per state component and per parameter).  Not kept: each
        jump's are used once (a list of jumps would hold ``n^2`` floats each)."""
        from .adjoint.vjp import COMPLEX_STEP as eps
        n = self.before.size
        uc = np.empty(n, np.complex128)
        pc = self._p.astype(np.complex128)
        Ju = np.empty((n, n))
        Jp = np.empty((n, self._np_grad))
        for j in range(n):
            uc[:] = self.before
            uc[j] += 1j * eps
            self._affect_c(uc, self.t, pc)
            Ju[:, j] = uc.imag / eps
        for k in range(self._np_grad):
            uc[:] = self.before
            pc[:] = self._p
            pc[k] += 1j * eps
            self._affect_c(uc, self.t, pc)
            Jp[:, k] = uc.imag / eps
        return Ju, Jp

    def vjp(self, lam):
        """``(A_u^T lam, A_p^T lam)`` (the discrete adjoint's pullback)."""
        Ju, Jp = self.jacobians()
        return lam @ Ju, lam @ Jp

    def jvp(self, du, dp):
        """``A_u du + A_p dp`` for rows of tangents ``du`` (k x n) and parameter
        directions ``dp`` (k x np) (the forward sensitivities' push-forward)."""
        Ju, Jp = self.jacobians()
        out = du @ Ju.T
        if Jp.shape[1]:
            out += dp[:, :Jp.shape[1]] @ Jp.T
        return out


def _check_analytic(jump, real):
    """Raise unless the complex-step Jacobians of the jump agree with central
    differences of the real ``affect`` (to 1e-5 of their scale): an affect with
    ``abs``, ``.real`` or ``conj`` compiles for complex numbers but its complex step is
    not its derivative (the gradient would be silently wrong)."""
    Ju, Jp = jump.jacobians()
    x, p = jump.before, jump._p
    n = x.size
    scale = max(float(np.abs(Ju).max(initial=0.0)), float(np.abs(Jp).max(initial=0.0)), 1.0)

    def diff(j, in_p):
        d = 1e-6 * max(abs(p[j] if in_p else x[j]), 1.0)
        out = []
        for sign in (1.0, -1.0):
            u, q = x.copy(), p.copy()
            if in_p:
                q[j] += sign * d
            else:
                u[j] += sign * d
            real(u, jump.t, q)
            out.append(u)
        return (out[0] - out[1]) / (2.0 * d)

    for j in range(n + Jp.shape[1]):
        col = diff(j, False) if j < n else diff(j - n, True)
        ref = Ju[:, j] if j < n else Jp[:, j - n]
        bad = np.abs(col - ref) > 1e-5 * scale
        if bad.any():
            what = f"u[{j}]" if j < n else f"p[{j - n}]"
            raise UnsupportedAlgorithmError(
                f"affect: its complex-step derivative with respect to {what} at t = "
                f"{jump.t:.6g} is {ref[bad][0]:.6g}, a difference quotient gives "
                f"{col[bad][0]:.6g}: it is not complex-analytic (abs, .real, conj or a "
                f"branch on a value), so the gradient through it would be wrong; write it "
                f"with analytic operations (sqrt(x*x) for |x| where x != 0), or use "
                f"js.FiniteDifference()")


def _affects(callback):
    """The discrete callback's raw ``affect`` (refusing continuous callbacks)."""
    from .ode import ContinuousCallback, DiscreteCallback
    from .problems import callback_list
    cbs = callback_list(callback)
    if any(isinstance(c, ContinuousCallback) for c in cbs):
        raise UnsupportedAlgorithmError(
            "callback: gradients through a js.ContinuousCallback are not supported (its "
            "event time depends on the parameters); a js.DiscreteCallback is, or use "
            "js.FiniteDifference()")
    dc = [c for c in cbs if isinstance(c, DiscreteCallback)]
    return dc[0]._raw["affect"] if dc else None


def _compiled_affect(affect):
    """``(real, complex)`` dispatchers of ``affect``, the complex one for its derivatives."""
    from .functions import compile_user_function
    real = compile_user_function(affect, "affect", _AFFECT_REAL, nargs=3)
    try:
        cplx = compile_user_function(affect, "affect", _AFFECT_COMPLEX, nargs=3)
    except CompileError as exc:
        raise CompileError(
            f"{str(exc).split('; derivatives by complex step')[0]}; the gradient through "
            f"a DiscreteCallback differentiates affect by complex step, so it must also "
            f"compile for complex u and p (no comparisons of u, no math.* functions: use "
            f"numpy; work arrays and matrices in u's type: np.empty_like(u), "
            f"M.astype(u.dtype)); or use js.FiniteDifference()") from exc
    return real, cplx


def check_affect(callback, u0, t0, p):
    """Before a gradient's forward solve: the discrete callback's ``affect`` compiles for
    real and complex states, and does not change ``p`` at ``(u0, t0)`` (the gradient
    holds ``p`` fixed; the solve would change the caller's array)."""
    affect = _affects(callback)
    if affect is None:
        return
    real, _ = _compiled_affect(affect)
    q = np.array(p, dtype=np.float64)
    real(np.array(u0, dtype=np.float64).ravel(), float(t0), q)
    _refuse_p_writes(q, p, t0)


def _refuse_p_writes(q, p, t):
    if not np.array_equal(q, p, equal_nan=True):
        k = int(np.flatnonzero(~((q == p) | (np.isnan(q) & np.isnan(p))))[0])
        raise UnsupportedAlgorithmError(
            f"affect: it changes p[{k}] (at t = {float(t):.6g}); gradients through a "
            f"DiscreteCallback hold p fixed, so an affect may change u only (keep a "
            f"switched quantity in the state), or use js.FiniteDifference()")


def discrete_jumps(callback, raw, p, np_grad, n, fixed_times=None):
    """The :class:`AffectJump` list of a forward pass ``raw`` (a compiled explicit loop's
    result: its accepted steps and the events it recorded, each the state before the
    affect), in step order.

    ``fixed_times``: for adaptive steps, the times a step is made to end on (``tstops``
    and the span's end); a jump at another step end moves with the parameters in the
    solve (through the step sizes) but not in the gradient, which holds it fixed: a
    ``UserWarning`` says so.  None for fixed steps (every step end is fixed).

    Raises
    ------
    UnsupportedAlgorithmError
        A continuous callback; a state larger than :data:`AFFECT_JAC_MAX`; an affect
        that changes ``p`` or is not complex-analytic (its complex-step Jacobians at the
        first jump unlike difference quotients).
    CompileError
        ``affect`` does not compile for complex states (named, with the remedy).
    """
    affect = _affects(callback)
    ev_t, ev_u = raw["event_t"], raw["event_u"]
    if affect is None or ev_t.size == 0:
        return []
    if n > AFFECT_JAC_MAX:
        raise UnsupportedAlgorithmError(
            f"callback: the gradient through a DiscreteCallback takes its affect's Jacobian "
            f"by complex step, one evaluation per state component: states of at most "
            f"{AFFECT_JAC_MAX} entries (this one has {n}); use js.FiniteDifference()")
    real, cplx = _compiled_affect(affect)
    if fixed_times is not None:
        moving = ev_t[~np.isin(ev_t, fixed_times)]
        if moving.size:
            import warnings
            from .log import caller_stacklevel
            more = f" (and at {moving.size - 1} more)" if moving.size > 1 else ""
            warnings.warn(
                f"callback: the DiscreteCallback changed the state at t = {moving[0]:.6g}"
                f"{more}, the end of an adaptive step that is not a tstop: the solve's "
                f"event moves with the parameters through the step sizes, the gradient "
                f"holds its time fixed (as it holds the step sizes), so the two can differ "
                f"by O(1).  Make the times where the condition can hold tstops, or take "
                f"fixed steps (adaptive=False, dt=...)", UserWarning,
                stacklevel=caller_stacklevel())
    st = raw["steps_t"]
    t_after = np.append(st[1:], raw["t_end"])
    rev = t_after.size > 1 and t_after[-1] < t_after[0]
    at = np.searchsorted(-t_after if rev else t_after, -ev_t if rev else ev_t)
    p = np.ascontiguousarray(p, dtype=np.float64)
    jumps = []
    for k, te in enumerate(ev_t):
        i = int(at[k])
        if i >= t_after.size or t_after[i] != te:     # a discrete event ends a step
            raise RuntimeError(f"event at t = {te!r} ends no accepted step")
        before = np.ascontiguousarray(ev_u[k], dtype=np.float64).copy()
        after = before.copy()
        q = p.copy()
        real(after, float(te), q)
        _refuse_p_writes(q, p, te)
        jumps.append(AffectJump(i, te, before, after, cplx, p, np_grad))
    _check_analytic(jumps[0], real)
    return jumps
