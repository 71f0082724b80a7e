"""Gradients through a DiscreteCallback: a dosing schedule (pharmacokinetics).

One-compartment model with first-order absorption, ``gut' = -ka gut``, ``central' = ka
gut - ke central``; a dose ``gut += D`` in ``u0`` and every 12 h after (the condition
holds at the ``tstops`` 12, ..., 108 and at t1 = 120, where the change is not seen), 40
observations of ``central``; parameters ``p = (ka, ke, D)``.  Times (best of
``--repeat``): the forward solve, ``js.gradient`` with ``js.DiscreteAdjoint()`` (every
state, and 4 checkpoints), ``js.ForwardSensitivity()`` and ``js.FiniteDifference()``,
each also as a multiple of the forward solve; the gradient's agreement with central
differences.

    python perf/callback_gradient.py [--repeat 7]
"""
import argparse

import numpy as np
from numba import njit

import jitsolve as js
from jitsolve.bench import best_time

DOSE_TIMES = np.arange(12.0, 120.0, 12.0)        # the first dose is in u0


@njit
def pk(du, u, p, t):
    du[0] = -p[0] * u[0]
    du[1] = p[0] * u[0] - p[1] * u[1]


@njit
def is_dose(u, t, p):
    r = t / 12.0
    return 1.0 if r == np.floor(r) and t > 0.0 else 0.0


@njit
def give(u, t, p):
    u[0] += p[2]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args(argv)
    p = np.array([1.2, 0.15, 100.0])
    prob = js.ODEProblem(pk, np.array([100.0, 0.0]), (0.0, 120.0), p=p)
    cb = js.DiscreteCallback(is_dose, give)
    t_obs = np.linspace(1.0, 119.0, 40)
    kw = dict(rtol=1e-8, atol=1e-8, tstops=DOSE_TIMES, callback=cb)
    sol = js.solve(prob, js.Tsit5(), saveat=t_obs, **kw)
    rng = np.random.default_rng(1)
    data = sol.u * (1 + 0.05 * rng.standard_normal(sol.u.shape))
    loss = js.L2Loss(t_obs, data, weights=np.array([0.0, 1.0]))
    rows = []

    def timed(name, fn):
        rows.append((name, best_time(fn, a.repeat)))

    timed("forward solve (saveat the 40 times)",
          lambda: js.solve(prob, js.Tsit5(), saveat=t_obs, **kw))
    timed("gradient, DiscreteAdjoint()",
          lambda: js.gradient(prob, js.Tsit5(), loss, wrt="p", **kw))
    timed("gradient, DiscreteAdjoint(checkpoints=4)",
          lambda: js.gradient(prob, js.Tsit5(), loss, wrt="p",
                              sensealg=js.DiscreteAdjoint(checkpoints=4), **kw))
    timed("gradient, ForwardSensitivity()",
          lambda: js.gradient(prob, js.Tsit5(), loss, wrt="p",
                              sensealg=js.ForwardSensitivity(), **kw))
    timed("gradient, FiniteDifference()",
          lambda: js.gradient(prob, js.Tsit5(), loss, wrt="p",
                              sensealg=js.FiniteDifference(), **kw))
    _, g = js.gradient(prob, js.Tsit5(), loss, wrt="p", **kw)
    _, fd = js.gradient(prob, js.Tsit5(), loss, wrt="p", sensealg=js.FiniteDifference(), **kw)
    print(f"doses: {len(sol.events)}, accepted steps: {sol.stats.naccept}")
    print(f"{'case':50s} {'time (ms)':>10s} {'/ forward':>10s}")
    for name, t in rows:
        print(f"{name:50s} {1e3 * t:10.3f} {t / rows[0][1]:10.2f}")
    print("gradient", np.array2string(g["p"], precision=6))
    print("max |DiscreteAdjoint - FiniteDifference| / max |FD| =",
          f"{np.abs(g['p'] - fd['p']).max() / np.abs(fd['p']).max():.2e}")


if __name__ == "__main__":
    main()
