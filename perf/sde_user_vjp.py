"""SDE pathwise gradient with the complex steps of the drift and the noise against the user's
own ``vjp``s.

    python perf/sde_user_vjp.py [--n 128] [--repeat 20]

A stochastic Allen-Cahn chain (1-D, ``n`` points, Dirichlet ends, multiplicative
diagonal noise ``0.1 u dW``), ``js.EM()`` with ``dt = 1/512`` on [0, 1], an
``L2Loss`` at 8 times, ``js.gradient(..., wrt=("p", "u0"), seed=1)``, nine ways: the
drift's products by a dense complex step (``n`` complex evaluations of ``f`` per
product), by the coloured complex step of a declared tridiagonal ``jac_sparsity`` (3),
or by the drift's own ``vjp`` (one call); the noise term's by a dense complex step of
``g``, the coloured one of its declared diagonal pattern (``js.ODEFunction(g,
jac_sparsity=identity)``, one evaluation) or ``g``'s own ``vjp`` (one real call).  Same gradient to 1e-12 (checked).  Best of ``--repeat`` interleaved calls in one process.
"""
import argparse
import os

import numpy as np
import scipy.sparse as sp
from numba import njit

import jitsolve as js
from heat_nonlinear import interleaved_best   # perf/, the script's directory


@njit
def allen_cahn(du, u, p, t):
    n = u.size
    for i in range(n):
        left = u[i - 1] if i > 0 else 0.0
        right = u[i + 1] if i < n - 1 else 0.0
        du[i] = p[0] * (left - 2.0 * u[i] + right) + p[1] * (u[i] - u[i] ** 3)


@njit
def allen_cahn_vjp(ou, op, lam, u, p, t):
    n = u.size
    op[0] = 0.0
    op[1] = 0.0
    for i in range(n):
        left = lam[i - 1] if i > 0 else 0.0
        right = lam[i + 1] if i < n - 1 else 0.0
        ou[i] = p[0] * (left - 2.0 * lam[i] + right) + p[1] * (1.0 - 3.0 * u[i] ** 2) * lam[i]
        ul = u[i - 1] if i > 0 else 0.0
        ur = u[i + 1] if i < n - 1 else 0.0
        op[0] += (ul - 2.0 * u[i] + ur) * lam[i]
        op[1] += (u[i] - u[i] ** 3) * lam[i]


def noise(gu, u, p, t):
    for i in range(u.size):
        gu[i] = 0.1 * u[i]


@njit
def noise_vjp(ou, op, lam, u, p, t):
    for i in range(u.size):
        ou[i] = 0.1 * lam[i]
    for k in range(op.size):
        op[k] = 0.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args(argv)
    n = a.n
    x = np.linspace(0, 1, n + 2)[1:-1]
    u0 = 0.5 * np.sin(np.pi * x)
    p = np.array([1e-3 * (n + 1) ** 2, 5.0])           # D / h^2 with D = 1e-3; reaction 5
    t = np.linspace(0.125, 1.0, 8)
    tri = sp.diags_array([np.ones(n - 1), np.ones(n), np.ones(n - 1)], offsets=[-1, 0, 1])
    fs = {"f dense CS": js.ODEFunction(allen_cahn),
          "f coloured CS": js.ODEFunction(allen_cahn, jac_sparsity=tri),
          "f user vjp": js.ODEFunction(allen_cahn, vjp=allen_cahn_vjp)}
    gs = {"g dense CS": noise, "g coloured CS": js.ODEFunction(noise, jac_sparsity=sp.identity(n)),
          "g user vjp": js.ODEFunction(noise, vjp=noise_vjp)}
    kw = dict(dt=1 / 512, seed=1)
    ref = js.solve(js.SDEProblem(allen_cahn, noise, u0, (0.0, 1.0), p), js.EM(), saveat=t, **kw)
    loss = js.L2Loss(t, ref.u * 1.01)
    probs = {f"{kf}, {kg}": js.SDEProblem(f, g, u0, (0.0, 1.0), p)
             for kg, g in gs.items() for kf, f in fs.items()}
    last = list(probs)[-1]
    grads = {k: js.gradient(pr, js.EM(), loss, wrt=("p", "u0"), **kw)[1] for k, pr in probs.items()}
    g0 = np.concatenate([grads[last]["p"], grads[last]["u0"]])
    for k, g in grads.items():
        rel = np.abs(np.concatenate([g["p"], g["u0"]]) - g0).max() / np.abs(g0).max()
        assert rel < 1e-12, (k, rel)
    best = interleaved_best({k: (lambda pr=pr: js.gradient(pr, js.EM(), loss, wrt=("p", "u0"),
                                                            **kw))
                             for k, pr in probs.items()}, a.repeat)
    print(f"n = {n}, EM, 512 steps, best of {a.repeat} interleaved calls; "
          f"1-minute load {os.getloadavg()[0]:.2f}")
    print(f"| VJP sources (CS: complex step) | gradient (ms) | vs {last} |")
    print("|---|---:|---:|")
    for k in probs:
        print(f"| {k} | {best[k] * 1e3:.2f} | {best[k] / best[last]:.2f} |")

if __name__ == "__main__":
    main()
