"""Rosenbrock steps (Rosenbrock23, Rodas5P) for the compiled stiff loop (CPU, Numba).

The integration loop itself (step control, stops, saving, events, statistics) is
shared with the ESDIRK methods: :func:`jitsolve.kernels.cpu.stiff.stiff_solve`, which
calls :func:`ros23_step` (``kind`` 0) or :func:`rodas_step` (``kind`` 1) once per
attempted step.  ``rosenbrock_solve`` is that loop under this module's name.

Stiff tableau tuple (the same fields for every stiff kind):
``tab = (kind, GAMMA, A, Cm, C, D, B, BERR, BTH, AE, q, E32, imex)``.  Its *type* names
the step family (:func:`stiff_family`: ``E32`` None except for Rosenbrock23, ``AE`` None
for the Rosenbrock methods), so the loop is compiled once per family and a signature
holds only its own step kernel.

The exact Jacobian ``J = df/du(t0, u0)`` is evaluated once per step (Rodas5P is not a
W-method; Rosenbrock23's 3rd-order error estimate needs it too) and reused after a
rejection; the LU of ``W`` is shared by every stage of a step.  ``T = df/dt`` is a
forward difference (``f`` takes a real ``t``, so complex step in ``t`` is not
possible) unless the algorithm is told the problem is autonomous (``T = 0``).

References
----------
Hairer, Wanner, *Solving ODEs II* (1996), IV.7 (Rosenbrock methods, the transformed
variables of ``rodas``); Shampine, Reichelt, *The MATLAB ODE suite*, SIAM J. Sci.
Comput. 18 (1997) (Rosenbrock23, ``ode23s``); Steinebach, BIT 63 (2023) (Rodas5P).
"""
from numba import njit, types
from numba.extending import overload

from .rhs import eval_rhs
from .stiffjac import build_w, lu_factor, lu_solve

__all__ = ["ros23_step", "rodas_step", "ros_step", "rosenbrock_solve", "stiff_family",
           "KIND_ROS23", "KIND_RODAS", "FAMILY_SDIRK"]

KIND_ROS23, KIND_RODAS = 0, 1
#: :func:`stiff_family` of the (E)SDIRK kinds (``kind`` 2 ESDIRK and 3 ImplicitEuler)
FAMILY_SDIRK = 2


def stiff_family(tab):
    """Step family of a stiff tableau tuple's Numba type: ``KIND_ROS23`` (``E32`` a float),
    ``KIND_RODAS`` (``E32`` and ``AE`` None) or ``FAMILY_SDIRK`` (``AE`` an array)."""
    if not isinstance(tab.types[11], types.NoneType):
        return KIND_ROS23
    if isinstance(tab.types[9], types.NoneType):
        return KIND_RODAS
    return FAMILY_SDIRK


@njit(cache=True)
def ros23_step(f, p, lin, plin, haslin, tmp, tab, u, t, h, f0, T, J, W, piv, K, kd, unew,
               ytmp, err, fsal):
    """One Rosenbrock23 step (formulas in ``tableaus/rosenbrock23.py``).  ``K`` (>= 3, n)
    work rows; on success ``kd[:2] = (k1, k2)`` (dense output), ``fsal = f(t + h, unew)``.
    Returns ``(ok, nf, nsolve)``."""
    D = tab[1]
    E32 = tab[11]
    n = u.size
    gam = h * D
    build_w(W, J, 1.0, gam)
    if not lu_factor(W, piv):
        return False, 0, 0
    k1 = K[0]
    k2 = K[1]
    k3 = K[2]
    for i in range(n):
        k1[i] = f0[i] + gam * T[i]
    lu_solve(W, piv, k1)
    for i in range(n):
        ytmp[i] = u[i] + 0.5 * h * k1[i]
    eval_rhs(f, p, lin, plin, haslin, tmp, kd[1], ytmp, t + 0.5 * h)   # f1 (kept in kd[1])
    for i in range(n):
        k2[i] = kd[1, i] - k1[i]
    lu_solve(W, piv, k2)
    for i in range(n):
        k2[i] += k1[i]
        unew[i] = u[i] + h * k2[i]
    eval_rhs(f, p, lin, plin, haslin, tmp, fsal, unew, t + h)
    for i in range(n):
        k3[i] = (fsal[i] - E32 * (k2[i] - kd[1, i]) - 2.0 * (k1[i] - f0[i]) + gam * T[i])
    lu_solve(W, piv, k3)
    for i in range(n):
        err[i] = (h / 6.0) * (k1[i] - 2.0 * k2[i] + k3[i])
        kd[0, i] = k1[i]
        kd[1, i] = k2[i]
    return True, 2, 3


@njit(cache=True)
def rodas_step(f, p, lin, plin, haslin, tmp, tab, u, t, h, f0, T, J, W, piv, K, kd, unew,
               ytmp, err, fi):
    """One step of a Rosenbrock method in Hairer-Wanner's transformed form (Rodas5P;
    formulas in ``tableaus/rodas5p.py``).  ``K`` (s, n) holds the h-scaled increments;
    on success ``kd = K / h`` (dense output).  Returns ``(ok, nf, nsolve)``."""
    GAMMA = tab[1]
    A = tab[2]
    Cm = tab[3]
    C = tab[4]
    D = tab[5]
    B = tab[6]
    BERR = tab[7]
    n = u.size
    s = B.size
    build_w(W, J, 1.0 / (h * GAMMA), 1.0)
    if not lu_factor(W, piv):
        return False, 0, 0
    nf = 0
    for st in range(s):
        if st == 0:
            for i in range(n):
                fi[i] = f0[i]
        else:
            for i in range(n):
                acc = u[i]
                for j in range(st):
                    acc += A[st, j] * K[j, i]
                ytmp[i] = acc
            eval_rhs(f, p, lin, plin, haslin, tmp, fi, ytmp, t + C[st] * h)
            nf += 1
        ki = K[st]
        hd = h * D[st]
        for i in range(n):
            acc = fi[i] + hd * T[i]
            for j in range(st):
                acc += (Cm[st, j] / h) * K[j, i]
            ki[i] = acc
        lu_solve(W, piv, ki)
    for i in range(n):
        acc = u[i]
        e = 0.0
        for j in range(s):
            acc += B[j] * K[j, i]
            e += BERR[j] * K[j, i]
        unew[i] = acc
        err[i] = e
    for j in range(s):
        for i in range(n):
            kd[j, i] = K[j, i] / h
    return True, nf, s


def ros_step(f, p, lin, plin, haslin, tmp, tab, u, t, h, f0, T, J, W, piv, K, kd, unew, ytmp,
             err, fsal):
    """One Rosenbrock step of the tableau's own family (:func:`ros23_step` or
    :func:`rodas_step`, chosen when compiling): ``(ok, nf, nsolve)``."""
    raise NotImplementedError("compiled code only")


@overload(ros_step, jit_options={"cache": False}, inline="always")
def _ros_step_family(f, p, lin, plin, haslin, tmp, tab, u, t, h, f0, T, J, W, piv, K, kd, unew,
                     ytmp, err, fsal):
    if stiff_family(tab) == KIND_ROS23:
        def impl(f, p, lin, plin, haslin, tmp, tab, u, t, h, f0, T, J, W, piv, K, kd, unew, ytmp,
                 err, fsal):
            return ros23_step(f, p, lin, plin, haslin, tmp, tab, u, t, h, f0, T, J, W, piv, K, kd,
                              unew, ytmp, err, fsal)
        return impl

    def impl(f, p, lin, plin, haslin, tmp, tab, u, t, h, f0, T, J, W, piv, K, kd, unew, ytmp,
             err, fsal):
        return rodas_step(f, p, lin, plin, haslin, tmp, tab, u, t, h, f0, T, J, W, piv, K, kd,
                          unew, ytmp, err, fsal)
    return impl


def rosenbrock_solve(*args):
    """The shared stiff loop :func:`jitsolve.kernels.cpu.stiff.stiff_solve`."""
    from .stiff import stiff_solve
    return stiff_solve(*args)
