"""Runge-Kutta coefficient tables ("tableaus") as pure data modules.

Each submodule holds NumPy float64 arrays and scalars only (no functions):

Explicit Runge-Kutta (``euler``, ``rk4``, ``tsit5``, ``dp5``, ``vern7``)
    NAME, ORDER, EMBEDDED_ORDER, STAGES, C (s,), A (s, s) strictly lower
    triangular, B (s,), BERR (s,) = B - Bhat, FSAL, INTERP_ORDER and
    BTHETA (s_dense, d) with b_i(theta) = sum_j BTHETA[i, j] * theta**(j + 1).
    ``vern7`` additionally has C_EXTRA (e,) and A_EXTRA (e, s + e).

Rosenbrock (``rosenbrock23``, ``rodas5p``)
    See the module docstrings for the exact step formulas.

Additive / diagonally implicit RK (``kencarp4``, ``kvaerno5``)
    ESDIRK tableaus with explicit first stage; see module docstrings.
"""
