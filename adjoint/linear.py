"""Gradients of linear solves by the implicit function theorem.

For ``A(theta) u = b(theta)`` and a loss ``J(u)``, one adjoint solve
``A^T lam = dJ/du`` gives every gradient:

    dJ/db     = lam
    dJ/dtheta = -(d(A u)/dtheta)^T lam          (the operator's parameter VJP)
    dJ/dA     = -lam u^T                        (dense matrices)

The forward and adjoint solves are supplied as callables (the API layer passes the
user's algorithm and preconditioner), so this module does not depend on how they are
carried out.  Cost: one forward solve, one adjoint solve and one VJP per parameter.

References: Blondel et al., "Efficient and modular implicit differentiation",
NeurIPS 2022; Giles & Pierce, "An introduction to the adjoint approach to design",
Flow Turb. Combust. 65 (2000).
"""

__all__ = ["implicit_gradient"]


def implicit_gradient(solve, solve_adjoint, value, grad, vjps):
    """Loss value and gradients of a linear solve.

    Parameters
    ----------
    solve : callable ``() -> u``
        The forward solve.
    solve_adjoint : callable ``g -> lam``
        Solves ``A^T lam = g``.
    value, grad : callable ``u -> float``, ``u -> dJ/du``
    vjps : dict name -> callable ``(u, lam) -> gradient``
        E.g. ``{"b": lambda u, lam: lam, "kappa": lambda u, lam: -A.param_vjp(u, lam)}``.

    Returns
    -------
    (value, grads, u, lam)
    """
    u = solve()
    val = float(value(u))
    g = grad(u)
    lam = solve_adjoint(g)
    grads = {name: f(u, lam) for name, f in vjps.items()}
    return val, grads, u, lam
